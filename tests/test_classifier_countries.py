"""The country model: the gazetteer's second signal (classifier/countries.py)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from classifier.domains import DomainTagger
from classifier.rules import RuleTagger
from classifier.countries import (META_FILE, OFF, _margins, _standardised, analyst_examples,
                                  by_feature, choose_thresholds, combine, load_country_model,
                                  save_country_model, scores, train_countries)
from classifier.country_ranker import FEATURES as RANKER_FEATURES, MIN_ITEMS
from classifier.errors import ModelMismatch
from classifier.pipeline import Classifier, ItemText
from classifier.places import Gazetteer
from classifier.stip import Example

FIXTURES = Path(__file__).parent / "fixtures"
SMALL = FIXTURES / "stip" / "stip_small.csv"

# Invented programme vocabulary, one set per country: no name the gazetteer knows.
VOCAB = {
    "KR": ["zolvani", "hanbrae", "kestrup"],
    "DE": ["moravel", "tunstadt", "ebrecht"],
    "CL": ["quillaro", "paneque", "aysenta"],
}
TOPICS = ["doctoral training", "quantum sensing", "battery research", "open access fees",
          "startup vouchers", "research infrastructure", "climate observation",
          "technology transfer offices", "gender balance in science", "hydrogen pilots",
          "AI ethics", "graduate mobility"]


def synthetic_examples() -> list[Example]:
    examples = []
    for code, words in VOCAB.items():
        for n, topic in enumerate(TOPICS):
            a, b, c = words
            examples.append(Example(
                id=f"{code}-{n}", title=f"{a.title()} {topic} programme",
                text=f"The {a} agency funds {topic} through the {b} scheme. Applications are "
                     f"reviewed by the {c} council every year.",
                countries=(code,)))
    return examples


PARTNERS = ["France", "Japan", "Canada", "Norway"]
DEMONYMS = {"KR": "Korean", "DE": "German", "CL": "Chilean"}


def partnership_examples() -> list[Example]:
    """Programmes naming their own country, and joint calls naming only a partner: the
    thresholds keep the one country named, the partner; the ranker learns otherwise."""
    examples = []
    for code, (a, b, c) in VOCAB.items():
        rest = f"through the {b} scheme. The {c} council reviews applications every year."
        for n, topic in enumerate(TOPICS):
            for k, opening in enumerate((f"The {DEMONYMS[code]} {a} agency funds",
                                         f"The {a} agency, a {DEMONYMS[code]} funder, supports")):
                examples.append(Example(id=f"{code}-{n}-own{k}",
                                        title=f"{a.title()} {topic} programme",
                                        text=f"{opening} {topic} {rest}", countries=(code,)))
            for partner in PARTNERS:
                examples.append(Example(
                    id=f"{code}-{n}-{partner}", title=f"{partner} joint call on {topic}",
                    text=f"The {a} agency and partners in {partner} fund {topic} {rest}",
                    countries=(code,)))
    return examples


@pytest.fixture(scope="module")
def policy_model():
    """A relevance model trained on the small STIP export and non-policy news: its genre job
    tells programme descriptions from news."""
    from classifier.model import feed_negatives, stip_samples, train
    from classifier.stip import read_stip

    return train(stip_samples(read_stip(SMALL))
                 + stip_samples(feed_negatives([FIXTURES / "stip" / "nonpolicy_news.rss"])),
                 rule_areas=RuleTagger.load().areas)


def saved_model(path: Path, examples: list[Example]) -> Path:
    """A country model trained on ``examples``, saved in ``path``."""
    model = train_countries(examples, Gazetteer.load(), data_sha256="synthetic")
    assert model is not None
    save_country_model(model, path)
    return path


@pytest.fixture(scope="module")
def ranked_folder(tmp_path_factory) -> Path:
    return saved_model(tmp_path_factory.mktemp("ranked"), partnership_examples())


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return saved_model(tmp_path_factory.mktemp("countries"), synthetic_examples())


# -- the combination rule ------------------------------------------------------------------

def test_model_fills_in_only_when_nothing_names_a_country_and_it_is_sure_enough():
    assert combine([], "KR", 0.2, fill=-0.5, prune=OFF) == [("KR", pytest.approx(0.943, abs=1e-3),
                                                           "model")]
    assert combine([], "KR", -0.7, fill=-0.5, prune=OFF) == []
    # only in what the model learnt from: STI-policy items and programme descriptions
    assert combine([], "KR", 0.2, fill=-0.5, prune=OFF, policy=False) == []
    assert combine([], "KR", 0.2, fill=-0.5, prune=OFF, policy=False, programme=True) == [
        ("KR", pytest.approx(0.943, abs=1e-3), "model")]
    # The source's home country (or a named country) stands: the model never overrides it.
    source = [("JP", 0.5, "source")]
    assert combine(source, "KR", 3.0, fill=-0.5, prune=-0.5) == source
    named = [("FR", 0.9, "gazetteer")]
    assert combine(named, "KR", 3.0, fill=-0.5, prune=-0.5) == named


def test_partners_named_in_a_policy_text_are_dropped_but_not_those_in_a_news_title():
    tags = [("DE", 0.9, "gazetteer"), ("FR", 0.6, "gazetteer"), ("PL", 0.5, "gazetteer")]
    # A programme of Germany that names its partners: the model says Germany.
    assert combine(tags, "DE", 0.1, fill=OFF, prune=-0.5) == [("DE", 0.9, "gazetteer")]
    # "Germany and France agree ...": both are in the title, both stay.
    assert combine(tags, "DE", 0.1, fill=OFF, prune=-0.5, title_codes={"DE", "FR"}) == tags[:2]
    # Not an STI-policy item (market news naming several countries): nothing is dropped.
    assert combine(tags, "DE", 0.1, fill=OFF, prune=-0.5, policy=False) == tags
    # In news the EU is another level, not a partner: "UK researchers win ERC grants" stays
    # two. In a programme description it is context like a partner ("complements ERC grants").
    eu = [("GB", 0.9, "gazetteer"), ("EU", 0.8, "gazetteer"), ("FR", 0.5, "gazetteer")]
    assert combine(eu, "GB", 0.1, fill=OFF, prune=-0.5) == eu[:2]
    assert combine(eu, "GB", 0.1, fill=OFF, prune=-0.5, programme=True) == eu[:1]
    # A programme description's title names its partners too ("Korean-Swiss joint call"
    # described by Korea): there the title is no exception.
    assert combine(eu, "GB", 0.1, fill=OFF, prune=-0.5, programme=True,
                   title_codes={"EU", "FR"}) == eu[:1]
    assert combine(tags, "DE", 0.1, fill=OFF, prune=-0.5, title_codes={"DE", "FR"},
                   programme=True) == tags[:1]
    # Unsure, or the model's country is not among the named ones: nothing is dropped.
    assert combine(tags, "DE", -0.8, fill=OFF, prune=-0.5) == tags
    assert combine(tags, "KR", 2.0, fill=OFF, prune=-0.5) == tags


def test_a_programme_naming_only_the_eu_takes_the_models_country():
    eu = [("EU", 0.7, "gazetteer")]
    # "Supports Slovenian teams in Horizon Europe" described by Slovenia's ministry
    assert combine(eu, "SI", 0.2, fill=OFF, prune=OFF, replace=0.0, programme=True) == [
        ("SI", pytest.approx(0.690, abs=1e-3), "model")]
    # not when unsure, when the model says EU, or in news (even with the EU in the title)
    assert combine(eu, "SI", -0.2, fill=OFF, prune=OFF, replace=0.0, programme=True) == eu
    assert combine(eu, "SI", 0.2, fill=OFF, prune=OFF, title_codes={"EU"}, replace=0.0) == eu
    assert combine(eu, "EU", 2.0, fill=OFF, prune=OFF, replace=0.0, programme=True) == eu
    assert combine(eu, "SI", 2.0, fill=OFF, prune=OFF, replace=0.0) == eu
    # never off the source's home country or a named member state
    assert combine([("EU", 0.5, "source")], "SI", 2.0, fill=OFF, prune=OFF, replace=0.0,
                   programme=True) == [("EU", 0.5, "source")]


def test_an_ambiguous_name_read_by_default_gives_way_to_the_models_other_reading():
    # "NRF" alone reads as Korea's; a model sure of South Africa takes the tag
    nrf = [("KR", 0.7, "gazetteer")]
    alternatives = {"KR": frozenset({"SG", "ZA"})}
    assert combine(nrf, "ZA", 0.1, fill=-0.5, prune=OFF, alternatives=alternatives) == [
        ("ZA", pytest.approx(0.917, abs=1e-3), "model")]
    # not when the model's country is no reading of the name, or it is unsure
    assert combine(nrf, "JP", 2.0, fill=-0.5, prune=OFF, alternatives=alternatives) == nrf
    assert combine(nrf, "ZA", -0.8, fill=-0.5, prune=OFF, alternatives=alternatives) == nrf
    # the same in news and non-policy items: which country a name means is no genre matter
    assert combine(nrf, "ZA", 0.1, fill=-0.5, prune=OFF, policy=False,
                   alternatives=alternatives)[0][0] == "ZA"
    # never over a country the text names unambiguously, nor twice the same country
    both = [("KR", 0.7, "gazetteer"), ("ZA", 0.6, "gazetteer")]
    assert combine(both, "ZA", 0.1, fill=-0.5, prune=OFF, alternatives=alternatives) == both
    assert combine(nrf, "ZA", 0.1, fill=-0.5, prune=OFF) == nrf


def test_the_gazetteer_tells_which_countries_rest_on_an_ambiguous_name_alone():
    gazetteer = Gazetteer.load()
    title, text = "NRF opens a call for research chairs", "Applications close in March."
    assert [c for c, _s in gazetteer.tag(title, text)] == ["KR"]
    assert gazetteer.alternatives(title, text, ["KR"]) == {"KR": frozenset({"SG", "ZA"})}
    # with South Africa named, the name is read as its agency and nothing is in doubt
    title = "South Africa's NRF opens a call for research chairs"
    assert [c for c, _s in gazetteer.tag(title, text)] == ["ZA"]
    assert gazetteer.alternatives(title, text, ["ZA"]) == {}
    # a country named outright is never in doubt
    title = "Seoul's NRF opens a call for research chairs"
    assert gazetteer.alternatives(title, text, ["KR"]) == {}
    # a [shared] name beside the ambiguous one gave the default reading nothing of its own
    # (Taiwan's NSTC, or the US's National Science and Technology Council)
    title, text = "NSTC", "The National Science and Technology Council coordinates research."
    assert [c for c, _s in gazetteer.tag(title, text)] == ["TW"]
    assert gazetteer.alternatives(title, text, ["TW"]) == {"TW": frozenset({"US"})}
    # a name with a single reading leaves nothing to choose ("Paris" is France's)
    title, text = "Paris", "Paris opens a call for research chairs."
    assert [c for c, _s in gazetteer.tag(title, text)] == ["FR"]
    assert gazetteer.alternatives(title, text, ["FR"]) == {}
    # nor is a country whose group is named ("Baltic states"): that is evidence of its own
    title, text = "Baltic states and the NRF", "Baltic states and the NRF sign an agreement."
    assert "KR" in gazetteer.alternatives(title, text, ["KR", "LT"])
    assert "LT" not in gazetteer.alternatives(title, text, ["KR", "LT"])


def test_thresholds_are_the_best_on_out_of_fold_margins():
    gold = [{"KR"}, {"DE"}, {"CL"}, {"DE"}, {"SI"}, {"SI"}, {"EU"}]
    eu = [("EU", 0.7, "gazetteer")]
    tags = [[], [], [], [("DE", 0.9, "gazetteer"), ("FR", 0.6, "gazetteer")], eu, eu, eu]
    best = [("KR", 0.4), ("DE", 0.1), ("KR", -0.6), ("DE", 0.0), ("SI", 0.3), ("SI", 0.5),
            ("SI", -0.4)]
    fill, prune, replace, metrics = choose_thresholds(gold, tags, best)
    # Filling from 0.1 up gains two right answers and no wrong one; pruning is always right;
    # replacing the EU from 0.3 up gains two and loses none (the EU's own is at -0.4).
    assert -0.6 < fill <= 0.1
    assert prune <= 0.0
    assert -0.4 < replace <= 0.3
    assert metrics["combined"] == {"precision": 1.0, "recall": pytest.approx(6 / 7, abs=1e-4),
                                   "f1": pytest.approx(12 / 13, abs=1e-4)}
    assert metrics["gazetteer"]["f1"] < metrics["combined"]["f1"]
    assert (metrics["filled"], metrics["pruned"], metrics["replaced"]) == (2, 1, 2)
    # An ambiguous name's other reading counts with the items filled in (one threshold).
    resolved = choose_thresholds([{"ZA"}, {"KR"}], [[("KR", 0.7, "gazetteer")]] * 2,
                                 [("ZA", 0.2), ("ZA", -0.9)],
                                 alternatives=[{"KR": frozenset({"ZA"})}] * 2)
    assert -0.9 < resolved[0] <= 0.2
    assert resolved[3]["resolved"] == 1 and resolved[3]["combined"]["f1"] == 1.0
    # Items that read as news never have their EU replaced: the rule stays off.
    news = choose_thresholds(gold, tags, best, programme=[False] * len(gold))
    assert news[2] == OFF and news[3]["replaced"] == 0


# -- trained, saved, used by the classifier ------------------------------------------------

def test_classifier_uses_the_saved_country_model(folder: Path):
    meta = json.loads((folder / META_FILE).read_text())
    assert meta["countries"] == ["CL", "DE", "KR"]
    assert meta["training_counts"]["samples"] == 36
    assert math.isfinite(meta["thresholds"]["fill"])
    classifier = Classifier.load(folder)
    assert classifier.model is None and classifier.country_model is not None
    results = classifier.classify([
        ItemText("Tunstadt scheme opens new call", "The moravel agency funds hydrogen pilots "
                 "through the tunstadt scheme; the ebrecht council reviews applications."),
        ItemText("Tunstadt scheme opens new call", "The moravel agency funds hydrogen pilots.",
                 "JP"),
        ItemText("Chile's quillaro council opens a call", "The quillaro council funds research."),
    ])
    assert [(c, m) for c, _s, m in results[0].countries] == [("DE", "model")]
    assert [r for r, _s, _m in results[0].regions] == ["europe"]
    assert [(c, m) for c, _s, m in results[1].countries] == [("JP", "source")]
    assert [(c, m) for c, _s, m in results[2].countries] == [("CL", "gazetteer")]
    # A multilateral body's news naming no country is about no country.
    oecd = classifier.classify([ItemText("OECD opens tunstadt review", "The OECD will review "
                                         "the moravel agency and the tunstadt scheme.")])[0]
    assert oecd.countries == [] and [r for r, _s, _m in oecd.regions] == ["international"]
    # Without the model folder the gazetteer works alone.
    plain = Classifier.load(None).classify([ItemText("Tunstadt scheme opens new call",
                                                     "The moravel agency funds research.")])
    assert plain[0].countries == []


def test_the_classifier_lets_the_model_read_an_ambiguous_name(folder: Path, tmp_path: Path):
    from classifier.domains import DomainTagger
    from classifier.rules import RuleTagger

    # an analyst's gazetteer file: a council name two countries use, Germany's by default
    extra = tmp_path / "places.toml"
    extra.write_text('version = "test"\n[ambiguous]\n"Hanbrae Council" = ["DE", "KR"]\n')
    gazetteer = Gazetteer.load(extra)
    item = ItemText("Hanbrae Council opens a call",
                    "The zolvani agency and the kestrup council fund doctoral training.")
    plain = Classifier(None, RuleTagger.load(), DomainTagger.load(), gazetteer)
    assert [(c, m) for c, _s, m in plain.classify([item])[0].countries] == [("DE", "gazetteer")]
    with_model = Classifier(None, RuleTagger.load(), DomainTagger.load(), gazetteer,
                            country_model=load_country_model(folder))
    result = with_model.classify([item])[0]
    assert [(c, m) for c, _s, m in result.countries] == [("KR", "model")]
    assert [r for r, _s, _m in result.regions] == ["east_asia"]


def test_the_eu_gives_way_to_the_models_country_in_programme_descriptions_only(
        folder: Path, policy_model):
    """The relevance model's genre job tells a programme description from news: in the first
    a lone EU mention ("supports teams in Horizon Europe") is context, in news the EU acts."""
    countries = load_country_model(folder)
    assert countries.ranker is None  # too few initiatives: the thresholds decide
    countries.replace = -10.0  # whatever the margin: the rule itself is under test
    classifier = Classifier(policy_model, RuleTagger.load(), DomainTagger.load(),
                            Gazetteer.load(), country_model=countries)
    programme, news = classifier.classify([
        ItemText("Innovation vouchers for SMEs",
                 "The programme provides vouchers to small and medium-sized enterprises for "
                 "buying research services from universities and preparing Horizon Europe "
                 "proposals. To increase the innovation capacity of SMEs. Managed by the "
                 "moravel agency through the tunstadt scheme."),
        ItemText("Minister welcomes Horizon Europe results for moravel teams",
                 "The science minister said on Tuesday that teams funded by the moravel "
                 "agency won more Horizon Europe grants this year, after weeks of debate about "
                 "the tunstadt scheme."),
    ])
    assert (programme.news_like, news.news_like) == (False, True)
    assert [(c, m) for c, _s, m in programme.countries] == [("DE", "model")]
    assert [c for c, _s, _m in news.countries] == ["EU"]
    # A programme description naming only a multilateral body is still some country's
    # programme; news of the body itself is no country's.
    countries.fill = -10.0
    body_programme, body_news = classifier.classify([
        ItemText("Participation in OECD working parties",
                 "The programme funds national experts taking part in OECD working parties on "
                 "science and technology policy. To strengthen evidence for policy. Managed by "
                 "the moravel agency through the tunstadt scheme."),
        ItemText("OECD ministers meet on science policy",
                 "Ministers met in Paris on Tuesday and said the OECD would publish new "
                 "guidance on research careers next year, after weeks of debate."),
    ])
    assert (body_programme.news_like, body_news.news_like) == (False, True)
    assert [(c, m) for c, _s, m in body_programme.countries] == [("DE", "model")]
    assert body_news.countries == []
    # News naming no country is the model's only when it is about STI policy, like what it
    # learnt from: its best country for a weather story is a guess.
    weather, funding = classifier.classify([
        ItemText("Cloud cover could spoil festival weekend",
                 "Forecasters said on Tuesday that clouds would drift over the moravel valley "
                 "and the tunstadt fair by Saturday, after weeks of sunshine."),
        ItemText("Minister announces new research funding for universities",
                 "The science minister said on Tuesday that the moravel agency would fund "
                 "research grants for universities through the tunstadt scheme next year."),
    ])
    assert (weather.is_policy, funding.is_policy) == (False, True)
    assert weather.countries == []
    assert [(c, m) for c, _s, m in funding.countries] == [("DE", "model")]


JOINT_CALL = ItemText(
    "Norway joint call on graduate mobility",
    "The programme provides grants to universities for joint doctoral projects with partners "
    "in Norway. To increase the international mobility of doctoral candidates. Managed by the "
    "zolvani agency through the hanbrae scheme; the kestrup council reviews applications.")
JOINT_NEWS = ItemText(
    "Minister announces research funding with Norway for universities",
    "The science minister said on Tuesday that the zolvani agency would fund research grants "
    "for universities with partners in Norway through the hanbrae scheme next year.")


def test_the_ranker_gives_a_programme_naming_only_its_partner_its_own_country(
        ranked_folder: Path, policy_model, tmp_path: Path):
    meta = json.loads((ranked_folder / META_FILE).read_text())
    cv = meta["cv_metrics"]["ranker"]
    assert cv["used"] and cv["f1"] > cv["rules_f1"] and cv["items"] == 216
    assert meta["features"]["ranker"] == list(RANKER_FEATURES)
    model = load_country_model(ranked_folder)
    assert model.ranker is not None
    classifier = Classifier(policy_model, RuleTagger.load(), DomainTagger.load(),
                            Gazetteer.load(), country_model=model)
    programme, news = classifier.classify([JOINT_CALL, JOINT_NEWS])
    assert (programme.news_like, news.news_like) == (False, True)
    assert programme.is_policy and news.is_policy
    assert [(c, m) for c, _s, m in programme.countries] == [("KR", "model")]
    assert [r for r, _s, _m in programme.regions] == ["east_asia"]
    # news is the thresholds': the country it names stands
    assert [(c, m) for c, _s, m in news.countries] == [("NO", "gazetteer")]
    # a programme naming no country from a source with a home country: that stands
    unnamed = ItemText(JOINT_CALL.title.replace("Norway", "International"),
                       JOINT_CALL.text.replace("in Norway", "abroad"))
    assert classifier.classify([unnamed])[0].countries[0][0] == "KR"
    sourced = classifier.classify([ItemText(unnamed.title, unnamed.text, "JP")])[0]
    assert [(c, m) for c, _s, m in sourced.countries] == [("JP", "source")]
    # a model saved before the ranker existed: the thresholds decide, the partner stands
    old = saved_without(ranked_folder, tmp_path, "ranker")
    assert old.ranker is None
    before = Classifier(policy_model, RuleTagger.load(), DomainTagger.load(), Gazetteer.load(),
                        country_model=old).classify([JOINT_CALL])[0]
    assert [(c, m) for c, _s, m in before.countries] == [("NO", "gazetteer")]


def saved_without(folder: Path, tmp_path: Path, key: str):
    """The saved model as an older version wrote it (in joblib's format, as versions before
    2026-11-27 22:00 UTC saved models): a copy whose payload lacks ``key``."""
    import joblib

    for name in ("countries.joblib", META_FILE):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    payload = joblib.load(tmp_path / "countries.joblib")
    del payload[key]
    joblib.dump(payload, tmp_path / "countries.joblib", compress=3)
    return load_country_model(tmp_path)


def test_a_country_model_saved_before_the_eu_rule_loads_with_it_off(folder: Path,
                                                                    tmp_path: Path):
    model = saved_without(folder, tmp_path, "replace")
    assert model.replace == OFF
    assert not model.needs([("EU", 0.7, "gazetteer")], programme=True)


def test_a_country_model_saved_before_naive_bayes_uses_the_svm_alone(folder: Path,
                                                                     tmp_path: Path):
    current = load_country_model(folder)
    assert current.bayes is not None and current.bayes.shape == (
        3, len(current.vectorizer.vocabulary_))
    old = saved_without(folder, tmp_path, "bayes")
    assert old.bayes is None
    texts = ["Quillaro hydrogen pilots programme", "The moravel agency funds the tunstadt scheme"]
    margins = old.svm.decision_function(old.vectorizer.transform(texts))
    assert old.best(texts) == [(str(old.svm.classes_[row.argmax()]), pytest.approx(row.max()))
                               for row in margins]
    assert [code for code, _m in current.best(texts)] == ["CL", "DE"]
    # the weight naive Bayes was trained with is the one used: on a text mixing the countries'
    # words where the two models clearly disagree, the weight decides between them
    def picks(text: str) -> tuple[str, str] | None:
        x = current.vectorizer.transform([text])
        svm, bayes = current.svm.decision_function(x)[0], (x @ current.bayes.T)[0]
        if any(sorted(s)[-1] - sorted(s)[-2] < 0.05 for s in (svm, bayes)):
            return None  # a near tie says nothing
        return (str(current.svm.classes_[svm.argmax()]),
                str(current.svm.classes_[bayes.argmax()]))

    words = [word for vocabulary in VOCAB.values() for word in vocabulary]
    mixed = next([" ".join(four)] for four in itertools.combinations_with_replacement(words, 4)
                 if (found := picks(" ".join(four))) and found[0] != found[1])
    by_svm, by_bayes = picks(mixed[0])
    current.metadata["features"]["naive_bayes"]["weight"] = 0.0
    assert [code for code, _m in current.best(mixed)] == [by_svm]
    current.metadata["features"]["naive_bayes"]["weight"] = 100.0
    assert [code for code, _m in current.best(mixed)] == [by_bayes]


def test_the_country_model_reads_the_lengths_of_text_it_was_trained_on(folder: Path):
    model = load_country_model(folder)
    assert (model.max_chars, model.named_chars) == (6000, 1500)
    # the programme's own words come after 2,000 characters of general description
    general = "The programme supports doctoral candidates in all fields. " * 35
    own = "It is run by the moravel agency through the tunstadt scheme, reviewed by the ebrecht " \
          "council."
    classifier = Classifier(None, RuleTagger.load(), DomainTagger.load(), Gazetteer.load(),
                            country_model=model)

    def countries(item: ItemText, programme: bool = True) -> list[tuple[str, str]]:
        result = classifier.classify([item])[0]
        if programme and result.news_like is not False:  # a programme description, to prune
            result.news_like = False
            result.countries = Gazetteer.load().tag_with_method(item.title, item.text, None)
            model.apply([item], [result], Gazetteer.load())
        return [(c, m) for c, _s, m in result.countries]

    # naming no country, the text is read to 6,000 characters: the model finds Germany
    nameless = ItemText("Doctoral training programme", general + own)
    assert countries(nameless, programme=False) == [("DE", "model")]
    # where the gazetteer named countries the model only arbitrates between them, on the first
    # 1,500 characters: the same words after 2,000 no longer prune the partner (pruning is
    # switched on here: these one-country examples never needed it)
    model.prune = 0.0
    partners = ItemText("Doctoral training programme", "Partners in Germany and France. "
                        + general + own)
    assert countries(partners) == [("DE", "gazetteer"), ("FR", "gazetteer")]
    model.metadata["features"]["named_chars"] = 6000
    assert countries(partners) == [("DE", "gazetteer")]
    # a model saved before these lengths were recorded read 1,500 throughout
    del model.metadata["features"]["named_chars"]
    model.metadata["features"]["max_chars"] = 1500
    assert countries(nameless, programme=False) == []


def test_country_model_for_other_versions_is_refused(folder: Path, tmp_path: Path):
    for name in ("countries.joblib", META_FILE):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    meta = json.loads((tmp_path / META_FILE).read_text())
    meta["sklearn_version"] = "0.1"
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelMismatch, match=r"scikit-learn 0\.1.*retrain it with `stiwatch train"):
        load_country_model(tmp_path)


def test_too_few_countries_gives_no_model():
    one = [e for e in synthetic_examples() if e.countries == ("KR",)]
    assert train_countries(one, Gazetteer.load()) is None


def test_train_command_saves_the_country_model_beside_the_other(stiwatch, tmp_path: Path):
    models = tmp_path / "models"
    result = stiwatch("train", "--stip", str(SMALL), "--model-dir", str(models))
    assert result.exit_code == 0, result.output
    assert "countries (cv, with the gazetteer): micro-F1" in result.output
    # a small export trains no ranker, and the command says why
    assert f"countries: no ranker (fewer than {MIN_ITEMS} initiatives" in result.output
    meta = json.loads((models / META_FILE).read_text())
    assert meta["cv_metrics"]["ranker"]["used"] is False and meta["features"]["ranker"] is None
    assert meta["version"] == json.loads((models / "model.json").read_text())["version"]
    assert meta["training_counts"]["countries"] == 6


def _export_with(tmp_path: Path, name: str, change) -> Path:
    """The small export rewritten row by row by ``change`` (header included)."""
    import csv

    export = tmp_path / name
    with SMALL.open(newline="", encoding="utf-8") as source, \
            export.open("w", newline="", encoding="utf-8") as target:
        out = csv.writer(target)
        for number, row in enumerate(csv.reader(source)):
            out.writerow(change(number, row))
    return export


def test_train_says_when_it_trains_no_country_model_and_removes_the_older(stiwatch,
                                                                         tmp_path: Path):
    header = SMALL.read_text(encoding="utf-8").splitlines()[0].split(",")
    dropped = {header.index("CountryCode"), header.index("CountryLabel")}
    export = _export_with(tmp_path, "nocountry.csv",
                          lambda _n, row: [v for i, v in enumerate(row) if i not in dropped])
    models = tmp_path / "models"
    assert stiwatch("-q", "train", "--stip", str(SMALL), "--model-dir", str(models)
                    ).exit_code == 0
    assert (models / META_FILE).exists()

    result = stiwatch("train", "--stip", str(export), "--model-dir", str(models))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "  countries: no CountryCode or CountryLabel column: country model not trained" in lines
    assert (f"  countries: the country model of an earlier training was removed from {models}"
            in lines)
    assert sorted(p.name for p in models.iterdir()) == ["model.joblib", "model.json"]

    result = stiwatch("train", "--stip", str(export), "--model-dir", str(models), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "countries" not in report
    assert report["countries_not_trained"] == {
        "reason": "no CountryCode or CountryLabel column", "removed_older_model": False}


def test_train_says_when_too_few_countries_make_no_country_model(stiwatch, tmp_path: Path):
    code = SMALL.read_text(encoding="utf-8").splitlines()[0].split(",").index("CountryCode")
    export = _export_with(tmp_path, "korea.csv",
                          lambda n, row: row if n == 0 else [*row[:code], "KOR", *row[code + 1:]])
    result = stiwatch("train", "--stip", str(export), "--model-dir", str(tmp_path / "m"),
                      "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["countries_not_trained"] == {
        "reason": "fewer than two countries with 2 initiatives or more",
        "removed_older_model": False}


def test_classify_stores_the_model_country_for_a_source_without_country(stiwatch, db_path: Path,
                                                                       folder: Path):
    import db

    with db.open_store(db_path) as store:
        store.sync_sources([{"id": "wire", "name": "Wire", "kind": "feed",
                             "url": "https://wire.example/f"}])
        store.save_items([{"url": "https://wire.example/1", "source_id": "wire",
                           "title": "Quillaro council opens doctoral training call",
                           "body": "The quillaro council funds doctoral training through the "
                                   "paneque scheme; the aysenta council reviews applications."}])
    result = stiwatch("classify", "--model-dir", str(folder))
    assert result.exit_code == 0, result.output
    with db.open_store(db_path) as store:
        rows = {(t["facet"], t["value"]): t["method"] for t in store.tags_of(1)}
    assert rows[("country", "CL")] == "model"
    assert rows[("region", "latin_america")] == "model"


def test_two_countries_are_enough_to_learn():
    two = [e for e in synthetic_examples() if e.countries[0] in ("KR", "CL")]
    model = train_countries(two, Gazetteer.load())
    assert model is not None and model.metadata["countries"] == ["CL", "KR"]
    assert [code for code, _m in model.best(["Quillaro paneque aysenta call",
                                             "Zolvani hanbrae kestrup call"])] == ["CL", "KR"]


def test_the_models_scores_are_the_same_with_its_weights_laid_out_once(folder: Path):
    """The country model reads naive Bayes' weights laid out once per feature (scipy copied
    the saved layout, transposed, on every call): the same scores to the last digit as the
    product with the weights as saved, for many countries and for two (one hyperplane)."""
    texts = ["Quillaro hydrogen pilots programme", "The moravel agency funds the tunstadt scheme",
             "Zolvani hanbrae kestrup call", "unknown words only"]
    two = train_countries([e for e in synthetic_examples() if e.countries[0] in ("KR", "CL")],
                          Gazetteer.load())
    for model in (load_country_model(folder), two):
        x = model.transform(texts)
        decision = model.svm.decision_function(x)
        if decision.ndim == 1:
            decision = np.column_stack([-decision, decision])
        margins, combined = scores(model.svm, by_feature(model.bayes), x, model.nb_weight)
        assert np.array_equal(margins, decision) and margins.dtype == decision.dtype
        bayes = np.asarray(x @ model.bayes.T, dtype=np.float64)
        assert np.array_equal(combined, _standardised(decision)
                              + model.nb_weight * _standardised(bayes))
        assert model.best(texts) == [(str(model.svm.classes_[k]), float(margins[row, k]))
                                     for row, k in enumerate(combined.argmax(axis=1))]


def test_train_learns_from_countries_analysts_gave(stiwatch, db_path: Path, tmp_path: Path):
    import db

    with db.open_store(db_path) as store:
        store.sync_sources([{"id": "wire", "name": "Wire", "kind": "feed",
                             "url": "https://wire.example/f"}])
        store.save_items([
            {"url": f"https://wire.example/{n}", "source_id": "wire",
             "title": f"Tunstadt call {n}", "body": "The moravel agency opens a call."}
            for n in (1, 2)])
    assert stiwatch("tag", "1", "--add", "country=DE").exit_code == 0
    # a negative for DE alone: item 2 is no example of any country
    assert stiwatch("tag", "2", "--remove", "country=DE").exit_code == 0
    models = tmp_path / "models"
    result = stiwatch("train", "--stip", str(SMALL), "--model-dir", str(models))
    assert result.exit_code == 0, result.output
    assert "(0 for relevance and areas, 2 for countries)" in result.output
    meta = json.loads((models / META_FILE).read_text())
    assert meta["training_counts"]["analyst"] == 1
    assert meta["training_counts"]["analyst_removals"] == 1
    assert meta["training_counts"]["samples"] == 73


def test_fast_transform_gives_the_vectorizers_matrix(folder: Path):
    # CountryModel.transform uses classifier.model.Features (C-speed tokens, numpy lookups)
    # instead of TfidfVectorizer.transform: same matrix, accents and odd characters included.
    model = load_country_model(folder)
    texts = [e.title + "\n" + e.text for e in synthetic_examples()[:12]] + [
        "", "   ", "unknown words only", "ZOLVANI Agency funds QUANTUM sensing-research",
        "Zolvani agency funds quantum sensing. Hanbrae scheme; Kestrup council!",
        "Zólvàni agéncy fünds quantum sensing — “hanbrae” scheme, 5G/AI x_1 €",
        "量子 zolvani 研究 agency funds",
    ]
    ours = model.transform(texts)
    theirs = model.vectorizer.transform(texts)
    assert ours.shape == theirs.shape
    assert abs(ours - theirs).max() < 1e-6
    assert ours.nnz == theirs.nnz
    # a text the fast path cannot treat exactly as the vectorizer would: the vectorizer's own
    # transform is used (U+034F stays after accent stripping, U+210C strips to a capital H)
    odd = ["zolvani\u034f agency", "\u210c zolvani funds"]
    assert abs(model.transform(odd) - model.vectorizer.transform(odd)).max() < 1e-6
    # only those: mixed among ordinary texts, every row stays in its place
    mixed = [texts[0], odd[0], texts[5], texts[15], odd[1], texts[1]]
    ours, theirs = model.transform(mixed), model.vectorizer.transform(mixed)
    assert ours.shape == theirs.shape and abs(ours - theirs).max() < 1e-6


def test_strip_accents_is_scikit_learns():
    from sklearn.feature_extraction.text import strip_accents_unicode

    from classifier.countries import strip_accents

    for text in ["", "plain ascii", "Zólvàni agéncy fünds", "e\u0301\u0308 \u034f\u20d7x",
                 "ﬁnance İstanbul ½ ²", "量子 研究 Ωmega ж", "\u1e9b\u0323 Å Ǆ"]:
        assert strip_accents(text) == strip_accents_unicode(text)


def test_train_command_reports_the_ranker(stiwatch, tmp_path: Path):
    import csv

    alpha3 = {"KR": "KOR", "DE": "DEU", "CL": "CHL"}
    export = tmp_path / "stip.csv"
    with export.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["InitiativeID", "NameEnglish", "CountryCode", "ShortDescription",
                      "TH10", "TH31"])
        for n, e in enumerate(partnership_examples()):
            out.writerow([n, e.title, alpha3[e.countries[0]], e.text, n % 2, 1 - n % 2])
    models = tmp_path / "models"
    result = stiwatch("train", "--stip", str(export), "--model-dir", str(models))
    assert result.exit_code == 0, result.output
    ranker = json.loads((models / META_FILE).read_text())["cv_metrics"]["ranker"]
    assert ranker["used"]
    assert (f"countries of programme descriptions (cv): ranker micro-F1 {ranker['f1']:.3f} "
            f"(thresholds {ranker['rules_f1']:.3f})") in result.output


def test_a_programme_naming_only_a_country_the_model_never_saw_keeps_it(
        ranked_folder: Path, policy_model):
    """The ranker learnt from its export's countries only (STIP's 58): where it takes none of
    a programme's candidates, the countries it never saw that the text names stay, rather than
    the item losing every country. Those it knows stay its call."""
    model = load_country_model(ranked_folder)
    assert "IN" not in set(model.svm.classes_) and "KR" in set(model.svm.classes_)
    model.ranker.take = model.ranker.keep = 1.01  # a ranker that takes no candidate
    classifier = Classifier(policy_model, RuleTagger.load(), DomainTagger.load(),
                            Gazetteer.load(), country_model=model)
    india, korea = (ItemText(f"{name} doctoral fellowship programme",
                             f"The programme supports doctoral students in science and "
                             f"engineering in {name}. It funds fellowships at universities and "
                             "research institutes for four years. Objectives: increase the "
                             "number of doctoral graduates; strengthen research capacity.")
                    for name in ("India", "Korea"))
    first, second = classifier.classify([india, korea])
    assert (first.news_like, second.news_like) == (False, False)
    assert [(c, m) for c, _s, m in first.countries] == [("IN", "gazetteer")]
    assert [r for r, _s, _m in first.regions] == ["south_asia"]
    assert second.countries == [] and second.regions == []


def test_news_keeps_the_countries_of_agencies_acting_in_its_title(folder: Path):
    """"DFG and JST open joint call": both agencies act, so both countries are the news's,
    even where the model would narrow the named countries to the one it prefers."""
    model = load_country_model(folder)
    model.prune = -10.0  # the model narrows every policy text naming several countries
    classifier = Classifier(None, RuleTagger.load(), DomainTagger.load(), Gazetteer.load(),
                            country_model=model)
    body = ("The German Research Foundation (DFG) and the Japan Science and Technology Agency "
            "(JST) have opened a joint funding call on quantum sensing. The moravel agency "
            "funds the German teams through the tunstadt scheme; the ebrecht council reviews "
            "applications. Proposals are due in March.")
    agencies, partner = classifier.classify([
        ItemText("DFG and JST open joint call on quantum sensing", body),
        ItemText("DFG opens joint call on quantum sensing", body)])
    assert agencies.is_policy and agencies.news_like is None
    assert {c for c, _s, _m in agencies.countries} == {"DE", "JP"}
    # JST named in the text only: a partner, which the model's narrowing drops
    assert [c for c, _s, _m in partner.countries] == ["DE"]


def test_news_keeps_the_countries_named_in_one_list_with_its_main_one():
    tags = [("NO", 0.95, "gazetteer"), ("DK", 0.8, "gazetteer"), ("SE", 0.8, "gazetteer"),
            ("FI", 0.8, "gazetteer"), ("US", 0.5, "gazetteer")]
    nordic = [{"DK", "FI", "IS", "NO", "SE"}]
    # "the research councils of Denmark, Finland, Iceland, Norway and Sweden launch a joint
    # call": the model's Norway acts with the whole list; a country outside it is dropped
    assert combine(tags, "NO", 0.1, fill=OFF, prune=-0.5, lists=nordic) == tags[:4]
    # a list the model's country is not in is its partners
    assert combine(tags, "US", 0.1, fill=OFF, prune=-0.5, lists=nordic) == tags[4:]
    # in a programme description a list is partners, as its title's countries are
    assert combine(tags, "NO", 0.1, fill=OFF, prune=-0.5, lists=nordic,
                   programme=True) == tags[:1]


def test_the_gazetteer_finds_the_lists_of_countries_in_the_title_and_lead():
    from classifier.countries import NAMING_KINDS
    gazetteer = Gazetteer.load()
    lead = ("OSLO - The research councils of Denmark, Finland, Iceland, Norway and Sweden have "
            "launched a joint call. Japan and Korea are invited as partners.")
    assert gazetteer.lists("Nordic councils launch joint call", lead, NAMING_KINDS) == [
        {"DK", "FI", "IS", "NO", "SE"}, {"JP", "KR"}]
    # names apart in the sentence are no list; a list past the lead is not read
    assert gazetteer.lists("Japan funds research with France", "", NAMING_KINDS) == []
    assert gazetteer.lists("", "x" * 400 + " Germany and France agree.", NAMING_KINDS) == []
    assert gazetteer.lists("日本、米国と英国が合意", "", NAMING_KINDS) == [{"JP", "US", "GB"}]


def test_a_country_an_analyst_removed_is_a_negative_for_that_country_alone():
    """Removal-only corrections were dropped from training: an analyst who kept removing DE
    from news about a battery maker named "Tunstadt" (a word of German programmes here)
    taught the model nothing. Each removal is now a negative for DE, and for DE only."""
    battery = [{"id": 100 + n, "title": f"Tunstadt battery recall {n}", "summary": None,
                "body": f"The tunstadt battery maker recalls model {n} over faulty ebrecht "
                        "cells.", "labels": [("country", "DE", 0)]} for n in range(6)]
    probe = ["Tunstadt battery recall widens The tunstadt battery maker recalls more ebrecht "
             "cells."]
    german = ["Moravel hydrogen pilots The moravel agency funds hydrogen pilots through the "
              "tunstadt scheme."]

    def margins(model, texts):
        return dict(zip(model.svm.classes_, _margins(model.svm, model.transform(texts))[0]))

    for examples in (synthetic_examples(),
                     [e for e in synthetic_examples() if e.countries[0] in ("KR", "DE")]):
        before = train_countries(examples, Gazetteer.load())
        after = train_countries(examples + analyst_examples(battery), Gazetteer.load())
        assert after.metadata["training_counts"]["analyst_removals"] == 6
        assert before.best(probe)[0][0] == "DE"
        assert after.best(probe)[0][0] != "DE"
        assert margins(after, probe)["DE"] < margins(before, probe)["DE"] - 0.5
        assert after.best(german)[0][0] == "DE"  # the programmes' German is still German
    # a removal beside a country the analyst gave is already a negative (one-vs-rest)
    both = analyst_examples([{**battery[0], "labels": [("country", "DE", 0),
                                                       ("country", "KR", 1)]}])
    assert both[0].countries == ("KR",) and both[0].not_countries == ("DE",)


def test_the_same_examples_give_the_same_country_model():
    """liblinear's dual solver visits the examples in a random order: unseeded, two trainings
    on the same data gave different coefficients (by 1e-5 here; STIP eval countries 0.9015 to
    0.9029 from one `stiwatch train` to the next)."""
    first, second = (train_countries(synthetic_examples(), Gazetteer.load(), data_sha256="s")
                     for _ in range(2))
    assert np.array_equal(first.svm.coef_, second.svm.coef_)
    assert np.array_equal(first.svm.intercept_, second.svm.intercept_)
