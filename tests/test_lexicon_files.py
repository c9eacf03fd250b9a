"""Analysts' lexicon files as `stiwatch classify` reads them: a misspelt table is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

import db

SHIPPED_TABLES = {
    "domains": "version, settings, domain",
    "areas": "version, settings, relevance, area",
    "places": "version, settings, ambiguous, shared, groups, negative, international, country, "
              "company_forms",
}


@pytest.fixture
def store(db_path: Path) -> Path:
    with db.open_store(db_path) as store:
        store.sync_sources([{"id": "wire", "name": "Wire", "kind": "feed",
                             "url": "https://wire.example/f"}])
        store.save_items([{"url": "https://wire.example/1", "source_id": "wire",
                           "title": "Quantum strategy approved", "body": "A quantum plan."}])
    return db_path


@pytest.mark.parametrize("lexicon", sorted(SHIPPED_TABLES))
def test_a_misspelt_top_level_table_is_refused_naming_file_key_and_the_allowed_ones(
        stiwatch, store: Path, tmp_path: Path, lexicon: str) -> None:
    user = tmp_path / "ours.toml"
    user.write_text('[domains.quantum]\nstrong = ["Quantum Valley"]\n', encoding="utf-8")
    result = stiwatch("classify", env={f"STIWATCH_{lexicon.upper()}_LEXICON": str(user)})
    assert result.exit_code == 2
    variable = f"STIWATCH_{lexicon.upper()}_LEXICON"
    assert result.stderr == (f"Error: {user}: unknown top-level key 'domains' "
                             f"(expected one of: {SHIPPED_TABLES[lexicon]}). "
                             f"({lexicon}_lexicon is set by env {variable})\n")
    with db.open_store(store) as s:
        assert s.tags_of(1) == []  # nothing classified with half the analyst's file


@pytest.mark.parametrize("lexicon", sorted(SHIPPED_TABLES))
def test_a_file_saved_in_shift_jis_names_its_line(stiwatch, store: Path, tmp_path: Path,
                                                  lexicon: str) -> None:
    """An analyst's Japanese terms saved by a Windows editor: the error was the decoder's,
    "'utf-8' codec can't decode byte 0x97 in position 23: invalid start byte"."""
    user = tmp_path / "ours.toml"
    user.write_bytes('version = 2\n# 量子\n'.encode("shift_jis"))
    result = stiwatch("classify", env={f"STIWATCH_{lexicon.upper()}_LEXICON": str(user)})
    assert result.exit_code == 2
    variable = f"STIWATCH_{lexicon.upper()}_LEXICON"
    assert result.stderr == (f"Error: lexicon file {user} is not UTF-8 (byte 0x97 on line 2): "
                             f"save it as UTF-8. ({lexicon}_lexicon is set by env {variable})\n")


@pytest.mark.parametrize("lexicon, content", [
    ("domains", 'version = 2\n[domain.quantum]\nstrong = ["Quantum Valley"]\n'),
    ("areas", '[area.research_security]\nstrong = ["knowledge security desk"]\n'),
    ("places", '[country.NL]\nagencies = ["Loket Kennisveiligheid"]\n[negative]\nterms = ["x"]\n'),
])
def test_a_well_formed_user_file_still_loads(stiwatch, store: Path, tmp_path: Path,
                                             lexicon: str, content: str) -> None:
    user = tmp_path / "ours.toml"
    user.write_text(content, encoding="utf-8")
    result = stiwatch("classify", env={f"STIWATCH_{lexicon.upper()}_LEXICON": str(user)})
    assert result.exit_code == 0, result.output
