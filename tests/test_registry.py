"""Registry validation: one fixture file per case, its expected errors beside it."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from conftest import FIXTURES
from crawler.registry import RegistryError, load_registry

INVALID = sorted((FIXTURES / "registry" / "invalid").glob("*.toml"))
VALID = sorted((FIXTURES / "registry" / "valid").glob("*.toml"))


def test_every_registry_fixture_has_its_expectation():
    """The parametrized tests below run once per file: an empty or moved folder (or an
    .expected left without its .toml) would pass them by running nothing."""
    assert len(INVALID) >= 5 and len(VALID) >= 2
    folder = FIXTURES / "registry" / "invalid"
    assert sorted(p.stem for p in folder.glob("*.expected")) == [p.stem for p in INVALID]


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_registry_reports_every_problem_with_file_line_source_and_field(path: Path):
    expected = path.with_suffix(".expected").read_text().strip().replace("{file}", str(path))
    with pytest.raises(RegistryError) as caught:
        load_registry(path)
    assert str(caught.value) == expected
    assert caught.value.problems == expected.splitlines()


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_registry_loads_with_defaults(path: Path):
    registry = load_registry(path)
    assert registry.sources
    for source in registry.sources:
        assert set(source) >= {"id", "url", "kind", "enabled", "homepage", "links"}
        assert isinstance(source["enabled"], bool)


def test_disabled_flag_is_kept():
    registry = load_registry(FIXTURES / "registry" / "valid" / "all_kinds.toml")
    assert {s["id"]: s["enabled"] for s in registry.sources} == {
        "ec-rtd": True, "oecd-sti": True, "jst-news": False,
    }


def test_missing_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(RegistryError, match=r"nope\.toml: no such file"):
        load_registry(tmp_path / "nope.toml")


def test_bundled_registry_is_valid_and_spread_over_regions_and_kinds():
    sources = load_registry().sources
    assert len(sources) >= 40
    kinds = collections.Counter(s["kind"] for s in sources)
    assert kinds["feed"] and kinds["html"] and kinds["sitemap"]
    countries = {s["country"] for s in sources}
    # North America, Europe/EU, East Asia incl. Japan, and elsewhere.
    assert {"US", "CA", "EU", "GB", "DE", "FR", "JP", "CN", "KR", "international"} <= countries
    assert countries & {"IN", "AU", "BR", "ZA", "SG"}
    org_types = {s["org_type"] for s in sources}
    assert {"ministry", "funding_agency", "intergovernmental", "news"} <= org_types


def test_dump_registry_round_trips_the_bundled_registry() -> None:
    from crawler.registry import dump_registry, load_registry, parse_registry

    bundled = load_registry()
    again = parse_registry(dump_registry(bundled.sources, "a comment\nover two lines"))
    assert again.sources == bundled.sources
