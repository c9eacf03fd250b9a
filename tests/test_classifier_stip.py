"""Reading the OECD STIP Compass export: folding instrument rows, theme codes -> areas, bad files."""

from __future__ import annotations

import gzip
from pathlib import Path
import shutil

import pytest

from classifier.errors import StipError
from classifier.stip import read_stip
from conftest import FIXTURES, shared_data

SMALL = FIXTURES / "stip" / "stip_small.csv"


def test_reads_one_example_per_initiative_with_mapped_areas():
    examples = read_stip(SMALL)
    assert len(examples) == 72  # 80 rows: eight initiatives have two instrument rows
    first = examples[0]
    assert first.id == "stip2021-90001"
    assert first.title == "Research Council Reform 1"
    assert first.text.splitlines()[0] == (
        "The government evaluates its innovation policy instruments and publishes impact "
        "assessments.")
    assert first.areas == ("governance",) and first.countries == ("KR",)
    assert first.policy == 1
    by_id = {e.id: e for e in examples}
    # Belgian sub-entities are Belgium; the EU stays EU.
    assert by_id["stip2021-90004"].countries == ("BE",)
    assert by_id["stip2021-90005"].countries == ("EU",)
    # A COVID-19 theme (TH96) has no area but is kept as a theme.
    covid = by_id["stip2021-90012"]
    assert "TH96" in covid.themes and all(a in {
        "governance", "public_research", "business_innovation", "knowledge_transfer",
        "human_resources", "society", "international", "open_science"} for a in covid.areas)


def test_gzip_is_read_whatever_the_name_and_limit_counts_initiatives(tmp_path: Path):
    packed = tmp_path / "export.csv"  # gzip content under a plain name
    with SMALL.open("rb") as source, gzip.open(packed, "wb") as target:
        shutil.copyfileobj(source, target)
    examples = read_stip(packed, limit=10)
    assert [e.id for e in examples] == [f"stip2021-{90001 + i}" for i in range(10)]


def test_flags_written_as_floats_read_as_flags(tmp_path: Path):
    # An export that went through pandas writes its theme flags as 0.0 and 1.0.
    import re

    text = SMALL.read_text(encoding="utf-8")
    floats = tmp_path / "floats.csv"
    floats.write_text(re.sub(r"(?<=,)([01])(?=,|$)", r"\1.0", text, flags=re.MULTILINE),
                      encoding="utf-8")
    assert [(e.id, e.areas) for e in read_stip(floats)] == [
        (e.id, e.areas) for e in read_stip(SMALL)]


def _write(tmp_path: Path, text: str, name: str = "bad.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


HEADER = SMALL.read_text(encoding="utf-8").splitlines()[0]


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    (HEADER.replace("NameEnglish,", "Name,") + "\n", "missing column 'NameEnglish'"),
    ("InitiativeID,NameEnglish,ShortDescription\nx,Name,Text\n", "missing theme columns"),
    (HEADER + "\n", "no initiatives found"),
    (HEADER + "\n" + SMALL.read_text(encoding="utf-8").splitlines()[1].replace(",1,", ",yes,", 1)
     + "\n", "should be 0 or 1"),
], ids=["empty", "missing-column", "no-themes", "header-only", "bad-flag"])
def test_bad_csv_is_one_clear_error_naming_file_and_problem(tmp_path: Path, content: str,
                                                            message: str):
    path = _write(tmp_path, content)
    with pytest.raises(StipError) as caught:
        read_stip(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_and_binary_files(tmp_path: Path):
    with pytest.raises(StipError, match="no such file"):
        read_stip(tmp_path / "absent.csv")
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(StipError, match=str(broken)):
        read_stip(broken)


def test_train_command_reports_bad_csv_without_traceback(stiwatch, tmp_path: Path):
    path = _write(tmp_path, HEADER.replace("ShortDescription,", "Description,") + "\n")
    result = stiwatch("train", "--stip", str(path), "--model-dir", str(tmp_path / "m"))
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        f"Error: {path}: missing column 'ShortDescription'; expected the STIP Compass CSV export "
        "(InitiativeID, NameEnglish, ShortDescription, ..., theme flags TH9..TH99)")
    assert "Traceback" not in result.output
    assert not (tmp_path / "m").exists()


def test_real_export_sample_reads():
    path = shared_data("stip-compass-2021/stip_2021_train.csv.gz")
    examples = read_stip(path, limit=300)
    assert len(examples) == 300
    assert all(e.countries for e in examples)
    assert sum(bool(e.areas) for e in examples) > 250
