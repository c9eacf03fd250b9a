"""Countries and regions from the gazetteer: names, demonyms, capitals, agencies, ambiguity traps."""

from __future__ import annotations

from pathlib import Path
import tomllib

import pytest

from classifier.lexicon import LexiconError
from classifier.places import Gazetteer, region_of, regions_for
from classifier.taxonomy import load_taxonomy

# places.toml: English cases; places_cjk.toml: Chinese, Japanese and Korean ones;
# places_europe.toml: German, French and Spanish ones
CASES = [case for name in ("places.toml", "places_cjk.toml", "places_europe.toml")
         for case in tomllib.loads((Path(__file__).parent / "fixtures" / "classifier_rules"
                                    / name).read_text("utf-8"))["case"]]


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer.load()


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_gazetteer_case(gazetteer: Gazetteer, case: dict) -> None:
    tags = gazetteer.tag(case["title"], case["text"], case.get("source_country"))
    codes = [code for code, _ in tags]
    if "expect" in case:
        assert sorted(codes) == sorted(case["expect"]), tags
    for code in case.get("include", []):
        assert code in codes, tags
    for code in case.get("exclude", []):
        assert code not in codes, tags
    if "first" in case:
        assert codes and codes[0] == case["first"], tags
    if "international" in case:
        assert gazetteer.international(case["title"], case["text"]) is case["international"]
    assert all(0.0 < score <= 1.0 for _, score in tags)


def test_scores_rank_title_country_above_body_country(gazetteer: Gazetteer) -> None:
    tags = gazetteer.tag("Canada expands a research security review",
                         "Ottawa said the review follows a similar policy in Australia and "
                         "in Australian universities.")
    assert tags[0][0] == "CA"
    assert dict(tags)["CA"] > dict(tags).get("AU", 0.0)


def test_regions_from_countries_and_eu() -> None:
    assert regions_for(["JP", "KR"]) == ["east_asia"]
    assert regions_for(["EU", "DE"]) == ["europe"]
    assert regions_for(["US", "BR", "NG", "IN", "SG", "KZ", "EG", "NZ"]) == [
        "north_america", "latin_america", "sub_saharan_africa", "south_asia",
        "southeast_asia", "central_asia", "middle_east_north_africa", "oceania"]
    assert regions_for([], international=True) == ["international"]
    assert region_of("AQ") is None


def test_every_region_id_is_in_the_taxonomy() -> None:
    regions = set(load_taxonomy().ids("region"))
    from classifier.taxonomy import country_codes

    for code in country_codes():
        region = region_of(code)
        assert region is None or region in regions


def test_every_tagged_code_is_a_taxonomy_country(gazetteer: Gazetteer) -> None:
    from classifier.taxonomy import country_codes

    valid = set(country_codes())
    text = ("Delegations from Germany, Japan, Brazil, India, Kenya, Chile and the European Union "
            "met in Geneva with the Swiss, the Koreans and Taiwan's NSTC.")
    for code, _ in gazetteer.tag(text, text):
        assert code in valid


def test_user_file_adds_an_agency(tmp_path: Path) -> None:
    user = tmp_path / "my_places.toml"
    user.write_text('[country.FI]\nagencies = ["Zorblax Research Fund"]\n', encoding="utf-8")
    title, text = "Zorblax Research Fund opens a call", "Applications close in May."
    assert Gazetteer.load().tag(title, text) == []
    tagged = Gazetteer.load(user)
    assert [code for code, _ in tagged.tag(title, text)] == ["FI"]
    # the version says which tables tagged (a model trained on other ones is told apart), and
    # the shipped gazetteer stays untouched
    assert tagged.version != Gazetteer.load().version
    assert Gazetteer.load().tag(title, text) == []


@pytest.mark.parametrize("content, fragment", [
    ("[country.XX]\nnames = ['Nowhere']\n", "[country.XX]"),
    ("[country.FI]\nnicknames = ['Suomi']\n", "unknown key 'nicknames'"),
    ("[country.FI]\nnames = 'Suomi'\nagencies = [3]\n", "agencies"),
    ("[ambiguous]\nParis = ['ZZ']\n", "unknown country code 'ZZ'"),
    ("[groups]\n'Andean states' = ['PE', 'ZZ']\n", "groups.'Andean states' lists unknown country code 'ZZ'"),
    ("[company_forms]\nZZ = ['Ltd']\n", "[company_forms] has unknown country code 'ZZ'"),
    ("[settings]\nmin_evidence = 'high'\n", "settings.min_evidence"),
    ("[country.FI\nnames = []\n", "not valid TOML"),
])
def test_malformed_user_file_names_file_and_key(tmp_path: Path, content: str, fragment: str) -> None:
    user = tmp_path / "bad_places.toml"
    user.write_text(content, encoding="utf-8")
    with pytest.raises(LexiconError) as error:
        Gazetteer.load(user)
    assert "bad_places.toml" in str(error.value)
    assert fragment in str(error.value)


def test_missing_user_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LexiconError, match="does not exist"):
        Gazetteer.load(tmp_path / "nope.toml")


def test_user_file_adds_masking_and_ambiguous_terms(tmp_path: Path) -> None:
    user = tmp_path / "places_mine.toml"
    user.write_text('[negative]\nterms = ["Peru Street"]\n'
                    '[ambiguous]\n"Lima" = ["PE", "US"]\n', encoding="utf-8")
    gazetteer = Gazetteer.load(user)
    assert gazetteer.tag("Lab moves to Peru Street", "The lab moved to Peru Street.") == []
    ohio = gazetteer.tag("Lima, Ohio, opens a battery lab",
                         "Lima in Ohio said the lab will train technicians from Ohio and Indiana.")
    assert [code for code, _ in ohio] == ["US"]


def test_a_group_name_stays_the_groups_when_a_file_lists_it_for_a_member(tmp_path: Path) -> None:
    user = tmp_path / "places_mine.toml"
    user.write_text('[country.BE]\nplaces = ["Benelux"]\n', encoding="utf-8")
    tags = Gazetteer.load(user).tag("Benelux ministers agree a joint research pact",
                                    "The three governments will fund shared infrastructure.")
    assert sorted(code for code, _ in tags) == ["BE", "LU", "NL"]


def test_explain_lists_the_evidence(gazetteer: Gazetteer) -> None:
    from classifier.places import explain

    rows = explain(gazetteer, "JSPS grants", "Tokyo said the Japanese grants grow.")
    assert ("JP", "agency", "JSPS", 3.0) in rows
    assert {(code, kind) for code, kind, _, _ in rows} >= {("JP", "capital"), ("JP", "demonym")}


def test_tag_with_method_says_where_a_country_came_from(gazetteer: Gazetteer) -> None:
    short = "The call funds ten doctoral networks. It closes in May."
    assert gazetteer.tag_with_method("Agency opens call", short, "DK") == [("DK", 0.5, "source")]
    named = gazetteer.tag_with_method("France opens call", short, "DK")
    assert [(code, method) for code, _, method in named] == [("FR", "gazetteer")]
    # a lone passing mention loses to the source's home country...
    passing = short + " A similar call once ran in Brazil."
    assert [c for c, _, _ in gazetteer.tag_with_method("Agency opens call", passing, "NO")] == ["NO"]
    # ...but without a source, a short text naming one country only is about it
    assert [c for c, _, _ in gazetteer.tag_with_method("Agency opens call", passing)] == ["BR"]


def test_a_lone_mention_deep_in_a_long_japanese_article_stays_a_passing_one(
        gazetteer: Gazetteer) -> None:
    # Japanese puts no spaces between words: its length is counted in characters, or a
    # 1,000-character article would count as one "word" and any lone mention would tag it.
    sentence = "大学の研究者は新しい材料の性質を調べ、その成果を学会で発表した。"
    mention = "フランスの研究所との共同研究も続いている。"
    long_text = sentence * 30 + mention + sentence * 5
    short_text = sentence + mention
    assert gazetteer.tag("新材料の研究成果を発表", long_text) == []
    assert [code for code, _ in gazetteer.tag("新材料の研究成果を発表", short_text)] == ["FR"]


@pytest.mark.parametrize("lead, mention, filler", [
    ("人工知能の研究拠点を公募する。支援は5年間続く。", "米国も同様の拠点を整備している。",
     "大学の研究者は新しい材料の性質を調べ、その成果を学会で発表した。"),
    ("정부는 인공지능 연구거점을 공모한다. 지원은 5년간 이어진다. ",
     "미국도 비슷한 거점을 만들고 있다. ",
     "대학 연구자들은 새로운 소재의 성질을 조사하고 그 성과를 학회에서 발표했다. "),
], ids=["ja", "ko"])
def test_a_cjk_lead_is_its_first_two_sentences(gazetteer: Gazetteer, lead: str, mention: str,
                                               filler: str) -> None:
    # 。 (and a Korean sentence's ". ") ends a lead sentence as ". " does in English: a
    # mention in the third sentence is a passing one, where the lead was the first 300
    # characters, three sentences' worth and more
    text = lead + mention + filler * 30
    assert gazetteer.tag("研究拠点の公募", text) == []
    assert [code for code, _ in gazetteer.tag("研究拠点の公募", mention + lead + filler * 30)] \
        == ["US"]
