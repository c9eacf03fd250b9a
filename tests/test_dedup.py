"""Near-duplicates through a real SQLite store: tests/fixtures/dedup/<case>.{first,second}.txt.

Each case's expected.json says whether the second text is a near-duplicate of the first (and
why). The threshold is the Deduper's default: these cases are what it was chosen on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import db
from crawler.dedup import (
    BANDS,
    DEFAULT_THRESHOLD,
    Deduper,
    buckets,
    jaccard,
    shingles,
    signature,
    similarity,
)

CASES_DIR = Path(__file__).parent / "fixtures" / "dedup"
CASES = sorted(p.name.removesuffix(".expected.json") for p in CASES_DIR.glob("*.expected.json"))


def _texts(case: str) -> tuple[str, str, dict]:
    return (
        (CASES_DIR / f"{case}.first.txt").read_text("utf-8"),
        (CASES_DIR / f"{case}.second.txt").read_text("utf-8"),
        json.loads((CASES_DIR / f"{case}.expected.json").read_text("utf-8")),
    )


@pytest.fixture
def store(tmp_path: Path):
    with db.open_store(tmp_path / "dedup.db") as opened:
        opened.sync_sources([{
            "id": "news", "name": "News", "kind": "feed", "url": "https://news.example/rss",
            "country": "EU", "language": "en", "org_type": "news",
        }])
        yield opened


def _item(store: db.Store, url: str) -> int:
    [(item_id, _)] = store.save_items([{"url": url, "source_id": "news", "body": "x"}])
    return item_id


def test_fixture_files_are_complete() -> None:
    stems = {p.name.split(".")[0] for p in CASES_DIR.iterdir()}
    assert stems == set(CASES)
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES)
def test_dedup_fixture(case: str, store: db.Store) -> None:
    first, second, expected = _texts(case)
    deduper = Deduper(store)
    assert deduper.find(first) is None  # an empty store holds no earlier copy
    first_id = _item(store, "https://news.example/first")
    deduper.remember(first_id, first)
    found = deduper.find(second)
    assert (found == first_id) is expected["duplicate"], expected["why"]
    # a stored text finds its own row (the pipeline tells a refetch from a copy by that id)
    if expected["duplicate"]:
        assert Deduper(store).find(first) == first_id


@pytest.mark.parametrize("case", CASES)
def test_threshold_margin(case: str) -> None:
    """Every case is clear of the threshold by a margin, not by luck of the hash."""
    first, second, expected = _texts(case)
    score = similarity(signature(first), signature(second))
    if expected["duplicate"]:
        assert score >= DEFAULT_THRESHOLD + 0.05, score
    elif len(shingles(first)) >= 30 and len(shingles(second)) >= 30:
        assert score <= DEFAULT_THRESHOLD - 0.05, score


def test_earliest_copy_is_the_one_pointed_at(store: db.Store) -> None:
    first, second, _ = _texts("syndicated_other_boilerplate")
    deduper = Deduper(store)
    original = _item(store, "https://a.example/1")
    deduper.remember(original, first)
    copy = _item(store, "https://b.example/1")
    assert deduper.find(second) == original
    deduper.remember(copy, second)
    third = second + "\n\nPosted in: Policy, Quantum."
    assert deduper.find(third) == original


def test_signatures_are_stored_with_their_bands(store: db.Store) -> None:
    text, _, _ = _texts("identical")
    item_id = _item(store, "https://a.example/1")
    Deduper(store).remember(item_id, text)
    assert store.scalar("SELECT count(*) FROM signature_bands WHERE item_id = ?", [item_id]) \
        == BANDS
    stored = store.scalar("SELECT signature FROM item_signatures WHERE item_id = ?", [item_id])
    assert stored == signature(text)


def test_short_texts_are_not_remembered(store: db.Store) -> None:
    item_id = _item(store, "https://a.example/short")
    Deduper(store).remember(item_id, "Minister announces quantum programme.")
    assert store.scalar("SELECT count(*) FROM item_signatures") == 0


def test_signature_is_deterministic_and_compact() -> None:
    text, _, _ = _texts("identical")
    # Pinned values: a change here would orphan every signature already stored.
    pinned = signature("The national research agency funds quantum sensing, open access and "
                       "doctoral training in every region.")
    assert hashlib.sha256(pinned).hexdigest()[:16] == "e651491ddb025aed"
    assert buckets(pinned)[:2] == [1578320689184911774, -7211052552792988876]
    assert len(signature(text)) == 5 + 128 * 4
    assert buckets(signature(text)) == buckets(signature(text.upper()))
    assert jaccard(signature(text), signature(text)) == 1.0
    assert similarity(signature(""), signature(text)) == 0.0


def test_threshold_must_be_a_fraction(store: db.Store) -> None:
    with pytest.raises(ValueError, match="threshold"):
        Deduper(store, threshold=1.5)


def test_signatures_of_another_format_are_skipped_not_fatal(store: db.Store) -> None:
    text, _, _ = _texts("identical")
    old_id = _item(store, "https://a.example/old")
    sig = signature(text)
    store.save_signature(old_id, b"\x01" + sig[1:], buckets(sig))  # format version 1
    deduper = Deduper(store)
    assert deduper.find(text) is None
    deduper.remember(old_id, text)  # remembering again replaces it
    assert Deduper(store).find(text) == old_id


def test_extracted_pages_syndicated_vs_same_template(store: db.Store) -> None:
    """Through extraction: the same story in two site templates is one story; two stories in
    one template (same menus, footer, related links) are two."""
    from crawler.extract import extract_article

    pages = Path(__file__).parent / "fixtures" / "extract"

    def text(name: str) -> str:
        return extract_article((pages / name).read_bytes(), f"https://site.example/{name}").text

    deduper = Deduper(store)
    original = _item(store, "https://a.example/quantum")
    deduper.remember(original, text("canonical_link.html"))
    assert deduper.find(text("boilerplate_heavy.html")) == original  # other chrome, same story
    assert deduper.find(text("meta_date.html")) is None  # same template, another story
    assert deduper.find(text("no_date.html")) is None
