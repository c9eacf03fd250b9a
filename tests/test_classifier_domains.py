"""Technology domains from the curated lexicon: acronyms, multi-word terms, negatives, evidence."""

from __future__ import annotations

from pathlib import Path
import tomllib

import pytest

from classifier.domains import DomainTagger
from classifier.lexicon import LexiconError
from classifier.taxonomy import load_taxonomy

CASES = tomllib.loads(
    (Path(__file__).parent / "fixtures" / "classifier_rules" / "domains.toml").read_text("utf-8")
)["case"]


@pytest.fixture(scope="module")
def tagger() -> DomainTagger:
    return DomainTagger.load()


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_domain_case(tagger: DomainTagger, case: dict) -> None:
    tags = tagger.tag(case["title"], case["text"])
    labels = [label for label, _ in tags]
    if "expect" in case:
        assert sorted(labels) == sorted(case["expect"]), tags
    for label in case.get("include", []):
        assert label in labels, tags
    for label in case.get("exclude", []):
        assert label not in labels, tags
    assert all(0.0 < score <= 1.0 for _, score in tags)


def test_shipped_lexicon_is_versioned_and_covers_every_domain(tagger: DomainTagger) -> None:
    assert tagger.version
    assert set(tagger.entries) == set(load_taxonomy().ids("domain"))


def test_title_hit_scores_higher_than_the_same_hit_in_the_body(tagger: DomainTagger) -> None:
    in_title = dict(tagger.tag("Quantum computing roadmap", "The plan was published."))
    in_body = dict(tagger.tag("Roadmap published",
                              "The plan was published. It has four parts. Part three "
                              "covers quantum computing and a quantum network."))
    assert in_title["quantum"] > 0
    assert 0 < in_body.get("quantum", 0) < in_title["quantum"]


def test_user_file_extends_a_domain(tmp_path: Path) -> None:
    user = tmp_path / "agency_terms.toml"
    user.write_text('version = "a1"\n[domain.space]\nstrong = ["Zorblax hopper"]\n', encoding="utf-8")
    title, text = "Zorblax hopper test delayed", "Engineers found a leak."
    assert DomainTagger.load().tag(title, text) == []
    extended = DomainTagger.load(user)
    assert [label for label, _ in extended.tag(title, text)] == ["space"]
    assert extended.version.endswith("+agency_terms-a1")
    # the shipped terms are still there
    assert "space" in dict(extended.tag("Space agency budget", "Satellites and launchers."))


def test_a_term_listed_as_ordinary_and_strong_counts_once_as_strong(tmp_path: Path) -> None:
    # "entanglement" ships as an ordinary quantum term (1 unit, 1.5 in the lead); a user file
    # promotes it to strong (2 units)
    text = "The lab reported entanglement."
    shipped = DomainTagger.load()
    assert shipped.evidence("", text) == {"quantum": 1.5}
    user = tmp_path / "promote.toml"
    user.write_text('[domain.quantum]\nstrong = ["entanglement"]\n', encoding="utf-8")
    promoted = DomainTagger.load(user)
    assert "entanglement" not in promoted.entries["quantum"]["terms"]
    assert promoted.evidence("", text) == {"quantum": 3.0}
    # three hits count (max_repeats), each once and as strong
    many = "Entanglement, entanglement, entanglement and entanglement."
    assert shipped.evidence("", many) == {"quantum": 4.5}
    assert promoted.evidence("", many) == {"quantum": 9.0}


def test_user_file_replaces_a_domain_and_adds_negatives(tmp_path: Path) -> None:
    user = tmp_path / "mine.toml"
    user.write_text(
        '[domain.ai]\nreplace = true\nstrong = ["machine intelligence"]\n'
        '[domain.semiconductors]\nnegative = ["chip shop"]\n'
        '[settings]\nmin_evidence = 1.0\n', encoding="utf-8")
    tagger = DomainTagger.load(user)
    assert tagger.tag("Artificial intelligence plan", "") == []
    assert [label for label, _ in tagger.tag("Plan", "Machine intelligence for all.")] == ["ai"]
    assert tagger.tag("Chip shop opens", "A chip shop.") == []


def test_a_longer_negative_prefix_masks_a_positive_prefix(tmp_path: Path) -> None:
    # both read the whole word "Zorblaxhopper": the longer written prefix must win
    user = tmp_path / "prefixes.toml"
    user.write_text('[domain.space]\nstrong = ["Zorblax*"]\nnegative = ["Zorblaxhop*"]\n',
                    encoding="utf-8")
    tagger = DomainTagger.load(user)
    assert tagger.tag("Zorblaxhopper rules", "The Zorblaxhoppers met.") == []
    assert [label for label, _ in tagger.tag("Zorblaxrakete startet", "Die Zorblaxraketen.")] \
        == ["space"]


@pytest.mark.parametrize("content, fragment", [
    ("[domain.blockchain]\nterms = ['ledger']\n", "[domain.blockchain]"),
    ("[domain.ai]\nterms = 'AI'\nstrong = [1, 2]\n", "[domain.ai] strong"),
    ("[domain.ai]\nsynonyms = ['bot']\n", "unknown key 'synonyms'"),
    ("[domain.ai]\nreplace = 'yes'\n", "replace must be true or false"),
    ("[settings]\ntitle_weight = -1\n", "settings.title_weight"),
    ("[settings]\nspeed = 2\n", "unknown key 'speed'"),
    ("version = [1]\n", "'version'"),
    ("[domain.ai\n", "not valid TOML"),
    ("[domain.ai]\nterms = ['']\n", "non-empty strings"),
])
def test_malformed_lexicon_error_names_file_and_key(tmp_path: Path, content: str,
                                                    fragment: str) -> None:
    user = tmp_path / "broken.toml"
    user.write_text(content, encoding="utf-8")
    with pytest.raises(LexiconError) as error:
        DomainTagger.load(user)
    assert "broken.toml" in str(error.value)
    assert fragment in str(error.value)


def test_empty_item_has_no_domain(tagger: DomainTagger) -> None:
    assert tagger.tag("", "") == []


def test_malformed_lexicon_is_a_clean_cli_error(tmp_path: Path) -> None:
    """The CLI maps LexiconError to exit status 2 with the message, no traceback."""
    from stiwatch.errors import translate

    user = tmp_path / "broken.toml"
    user.write_text("[domain.nope]\n", encoding="utf-8")
    with pytest.raises(LexiconError) as error:
        DomainTagger.load(user)
    user_error = translate(error.value)
    assert user_error is not None and user_error.exit_code == 2
    assert "broken.toml" in user_error.format_message()


def test_explain_lists_the_hits(tagger: DomainTagger) -> None:
    rows = tagger.explain("Quantum plan", "It funds quantum computing, not chocolate chip cookies.")
    assert ("quantum", "quantum computing", "quantum computing", 3.0) in rows
    assert not any(label == "semiconductors" for label, *_ in rows)
