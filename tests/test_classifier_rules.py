"""Rule-based policy relevance and policy areas (used when no model is trained)."""

from __future__ import annotations

from pathlib import Path
import tomllib

import pytest

from classifier.lexicon import LexiconError
from classifier.rules import RuleTagger
from classifier.taxonomy import load_taxonomy

CASES = tomllib.loads(
    (Path(__file__).parent / "fixtures" / "classifier_rules" / "rules.toml").read_text("utf-8")
)["case"]


@pytest.fixture(scope="module")
def rules() -> RuleTagger:
    return RuleTagger.load()


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_rules_case(rules: RuleTagger, case: dict) -> None:
    score = rules.relevance(case["title"], case["text"])
    assert 0.0 <= score <= 1.0
    if "policy" in case:  # a case about areas only may leave relevance out
        assert (score >= 0.5) == bool(case["policy"]), score
    areas = [label for label, _ in rules.areas(case["title"], case["text"])]
    for label in case.get("include_areas", []):
        assert label in areas, areas
    for label in case.get("exclude_areas", []):
        assert label not in areas, areas


def test_policy_items_score_above_research_news(rules: RuleTagger) -> None:
    policy = rules.relevance("Science ministry announces research budget",
                             "The budget for the research council grows by 5%.")
    research = rules.relevance("Astronomers find a new exoplanet",
                               "The study, published in a journal, used a telescope.")
    neutral = rules.relevance("Weather", "Rain is expected tomorrow.")
    assert policy > neutral > research


def test_areas_are_taxonomy_ids_and_need_evidence(rules: RuleTagger) -> None:
    valid = set(load_taxonomy().ids("area"))
    text = ("The strategy funds research infrastructures, doctoral training, open access, "
            "start-ups, technology transfer, international cooperation and research security.")
    areas = rules.areas("New measures announced", text)
    assert {label for label, _ in areas} <= valid
    assert len(areas) >= 5
    assert rules.areas("Weather", "Rain is expected tomorrow.") == []


def test_shipped_cues_cover_every_area(rules: RuleTagger) -> None:
    assert set(rules.entries) == set(load_taxonomy().ids("area"))
    assert rules.version


def test_user_file_adds_cues(tmp_path: Path) -> None:
    user = tmp_path / "my_cues.toml"
    user.write_text('[relevance]\npolicy_strong = ["zorblax"]\n'
                    '[area.open_science]\nstrong = ["zorblax"]\n', encoding="utf-8")
    title, text = "Zorblax is here", "Everyone talks about zorblax."
    assert RuleTagger.load().relevance(title, text) < 0.5
    tagger = RuleTagger.load(user)
    assert tagger.relevance(title, text) >= 0.5
    assert "open_science" in dict(tagger.areas(title, text))


def test_user_file_extends_who_acts(tmp_path: Path) -> None:
    # An analyst names a company phrase the shipped list lacks, and a public body it lacks.
    title = "Quantum start-up closes a bridge round"
    text = ("The quantum computing start-up will use the research funding to hire scientists "
            "and build a national research programme with universities.")
    shipped = RuleTagger.load()
    assert shipped.relevance(title, text) >= 0.5
    user = tmp_path / "my_cues.toml"
    user.write_text('[relevance]\ncorporate = ["bridge round"]\n', encoding="utf-8")
    assert RuleTagger.load(user).relevance(title, text) < 0.5
    user.write_text('[relevance]\ncorporate = ["bridge round"]\n'
                    'public_actor = ["Zorblax Office"]\n', encoding="utf-8")
    backed = text + " The Zorblax Office matches every euro raised."
    assert RuleTagger.load(user).relevance(title, backed) >= 0.5


def test_an_area_with_its_own_min_evidence_is_judged_on_its_own(tmp_path: Path) -> None:
    # open science, mentioned twice, beside a much better evidenced public-research story
    title = "Research council funds new research institutes"
    text = ("The research council will fund three research institutes with research grants "
            "for basic research. Their data will be open data, and their papers open access.")
    shipped = RuleTagger.load()
    evidence = shipped.area_evidence(title, text)
    assert evidence["open_science"] < evidence["public_research"] / 2
    assert "open_science" not in dict(shipped.areas(title, text))
    user = tmp_path / "own.toml"
    user.write_text("[area.open_science]\nmin_evidence = 3.0\n", encoding="utf-8")
    own = RuleTagger.load(user)
    assert own.own_evidence["open_science"] == 3.0
    assert own.own_evidence["research_security"] == 4.0  # shipped, kept
    assert "open_science" in dict(own.areas(title, text))
    # ... and never below the length threshold, however low it is set
    user.write_text("[area.open_science]\nmin_evidence = 0.1\n", encoding="utf-8")
    text = "Papers go to a repository."  # one ordinary term in the lead: 1.5 of the 2 needed
    assert RuleTagger.load(user).area_evidence(title, text)["open_science"] == 1.5
    assert "open_science" not in dict(RuleTagger.load(user).areas(title, text))


def test_an_area_judged_on_its_own_does_not_raise_the_others_bar():
    from classifier.domains import above_threshold
    evidence = {"research_security": 20.0, "public_research": 6.0, "governance": 2.5}
    # half of the best is the bar for the main areas: research security's 20 is not "the best"
    tagged = dict(above_threshold(evidence, 2.0, 0.5, {"research_security": 4.0}))
    assert set(tagged) == {"research_security", "public_research"}
    assert set(dict(above_threshold(evidence, 2.0, 0.5))) == {"research_security"}


def test_an_area_with_min_strong_evidence_is_tagged_on_its_strong_terms(tmp_path: Path) -> None:
    """An analyst's `min_strong_evidence` for an area: its strong terms alone giving that much
    tag it beside a main area with far more evidence; its ordinary terms do not count."""
    title = "Funder opens research programme for public research institutes"
    lead = ("Results must be published open access. The research programme funds research "
            "institutes, research infrastructure and laboratories in calls for proposals.")
    shipped = RuleTagger.load()
    assert shipped.area_evidence(title, lead)["open_science"] == 3.0  # one strong term, lead
    assert "open_science" not in dict(shipped.areas(title, lead))  # under half the main area's
    user = tmp_path / "cues.toml"
    user.write_text("[area.open_science]\nmin_strong_evidence = 3.0\n", encoding="utf-8")
    own = RuleTagger.load(user)
    assert own.strong_evidence["open_science"] == 3.0
    assert own.strong_evidence["research_security"] == 3.0  # shipped, kept
    assert "open_science" in dict(own.areas(title, lead))
    # ordinary terms (repository, publications) giving as much are no strong evidence
    ordinary = ("Papers go to a repository and publications are listed. The research programme "
                "funds research institutes, research infrastructure and laboratories.")
    assert own.area_evidence(title, ordinary)["open_science"] >= 3.0
    assert "open_science" not in dict(own.areas(title, ordinary))


@pytest.mark.parametrize("content, fragment", [
    ("[area.space]\nterms = ['rocket']\n", "[area.space]"),
    ("[area.governance]\nmin_evidence = 'high'\n", "[area.governance] min_evidence"),
    ("[area.governance]\nmin_strong_evidence = 'high'\n",
     "[area.governance] min_strong_evidence"),
    ("[area.governance]\nmin_strong = 3\n", "unknown key 'min_strong'"),
    ("[relevance]\npolicy_words = ['x']\n", "unknown key 'policy_words'"),
    ("[relevance]\nbias = 'low'\n", "relevance.bias"),
    ("[relevance]\nresearch = 5\n", "relevance.research"),
    ("[area.governance]\nterms = [['nested']]\n", "[area.governance] terms"),
])
def test_malformed_cue_file_names_file_and_key(tmp_path: Path, content: str, fragment: str) -> None:
    user = tmp_path / "cues.toml"
    user.write_text(content, encoding="utf-8")
    with pytest.raises(LexiconError) as error:
        RuleTagger.load(user)
    assert "cues.toml" in str(error.value) and fragment in str(error.value)


def test_explain_lists_cues_and_area_terms(rules: RuleTagger) -> None:
    rows = rules.explain("Scientists discover a comet", "The study was funded by the research council.")
    assert ("cue", "research", "scientists discover", "Scientists discover", 4.5) in rows
    assert any(layer == "area" and label == "public_research" for layer, label, *_ in rows)


def test_the_shared_scan_finds_what_each_lexicon_finds_alone() -> None:
    """The pipeline's one scan for the rules, domain and place lexicons (its automaton remade
    compact from its pickle) gives each of them the hits its own scan gives: case-sensitive
    and plural terms, prefix terms, ALL-CAPS headlines, Chinese and Japanese text."""
    import json

    from classifier.pipeline import Classifier

    classifier = Classifier.load(None)
    texts = ["EU AND JAPAN SIGN AI RESEARCH PACT", "LLMs, CNRS and the AI Act",
             "Nanotechnology and quantum-computing grants for start-ups in the U.S.",
             "文部科学省は量子技術の研究開発に予算を計上した。JSTは新しい公募を開始。"]
    fixtures = Path(__file__).parent / "fixtures" / "classifier"
    for name in ("news_dev_articles.jsonl", "news_dev_cjk.jsonl", "news_dev_europe.jsonl"):
        for line in (fixtures / name).read_text("utf-8").splitlines()[:15]:
            record = json.loads(line)
            texts += [record["title"], record["text"]]
    scan = classifier._scan
    for matcher in scan.matchers:
        matcher._shared = None
    alone = [[matcher.find(text) for matcher in scan.matchers] for text in texts]
    scan.activate()
    shared = [[matcher.find(text) for matcher in scan.matchers] for text in texts]
    assert shared == alone
    assert sum(len(hits) for found in shared for hits in found) > 500


def test_the_non_ascii_characters_of_a_text_are_found_whatever_its_script() -> None:
    """The taggers and both models look up a text's few non-ASCII characters (curly quotes,
    dashes, accents, CJK) from its UTF-8 bytes: the same characters as a pass over all of
    them, lone surrogates and characters beyond the BMP included."""
    from classifier.lexicon import non_ascii_chars

    texts = ["", "plain ASCII only", "Café “quoted” — 5 € and naïve résumé",
             "文部科学省は量子技術の研究開発。JSTは公募を開始", "한국의 AI 연구",
             "e\u0301 \u210c \u034f", "a\ud800b\udc00c \U0001F600 x\xa0y"]
    for text in texts:
        assert non_ascii_chars(text) == {ch for ch in text if ord(ch) > 127}
