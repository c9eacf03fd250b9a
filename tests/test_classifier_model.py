"""Training, saving and loading the relevance/area model; refusing a model for other versions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sklearn

from classifier.errors import ModelError, ModelMismatch, TrainingError
from classifier.model import (
    Features,
    feed_negatives, load_model, model_text, read_metadata, save_model, stip_samples, train,
)
from classifier.rules import RuleTagger
from classifier.stip import file_sha256, read_stip
from classifier.taxonomy import load_taxonomy
from conftest import FIXTURES, shared_data

SMALL = FIXTURES / "stip" / "stip_small.csv"
NEGATIVES = FIXTURES / "stip" / "nonpolicy_news.rss"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    samples = stip_samples(read_stip(SMALL)) + stip_samples(feed_negatives([NEGATIVES]))
    model = train(samples, data_sha256=file_sha256(SMALL), rule_areas=RuleTagger.load().areas)
    folder = tmp_path_factory.mktemp("model")
    save_model(model, folder)
    return model, folder


def test_round_trip_keeps_predictions_and_metadata(trained):
    model, folder = trained
    assert sorted(p.name for p in folder.iterdir()) == ["model.joblib", "model.json"]
    meta = json.loads((folder / "model.json").read_text())
    assert meta["sklearn_version"] == sklearn.__version__
    assert meta["taxonomy_version"] == load_taxonomy().version
    assert meta["training_data_sha256"] == file_sha256(SMALL)
    assert meta["trained_at"].endswith("Z") and meta["version"].startswith("stip-")
    assert meta["training_counts"] == {"samples": 87, "stip": 72, "feed_negatives": 15,
                                       "analyst": 0, "labelled": 0, "policy_negatives": 15}
    assert set(meta["labels"]["areas"]) == {
        "governance", "public_research", "business_innovation", "knowledge_transfer",
        "human_resources", "society", "international", "open_science"}
    assert meta["labels"]["areas_without_data"] == ["research_security"]
    assert 0 <= meta["cv_metrics"]["areas"]["micro_f1"] <= 1
    assert set(meta["cv_metrics"]["policy"]) >= {"precision", "recall", "f1"}

    loaded = load_model(folder)
    assert loaded.version == model.version and loaded.metadata == meta
    texts = [model_text("Open Access Policy 99", "Publications from publicly funded research "
                        "must be available in open access."),
             model_text("Octopuses dream in colour", "Researchers filmed sleeping octopuses.")]
    before, after = model.predict(texts), loaded.predict(texts)
    assert [p.area_scores for p in before] == [p.area_scores for p in after]
    assert "open_science" in after[0].areas
    assert after[0].policy > 0.5 > after[1].policy


def test_genre_model_tells_news_from_programme_descriptions(trained):
    """Learnt from the feed entries (news) against the STIP initiatives: the rules' override
    of areas (classifier/pipeline.py) is kept to news-like text."""
    model, folder = trained
    genre = json.loads((folder / "model.json").read_text())["cv_metrics"]["genre"]
    assert genre["news_as_news"] >= 0.9 and genre["programmes_as_news"] <= 0.05
    programme, news = load_model(folder).predict([
        model_text("Innovation vouchers for SMEs", "The programme provides vouchers to small "
                   "and medium-sized enterprises for buying research services from "
                   "universities. To increase the innovation capacity of SMEs."),
        model_text("Minister announces new research funding", "The science minister said on "
                   "Tuesday that the government would spend an extra 200 million on "
                   "university research next year, after weeks of protests by researchers."),
    ])
    assert (programme.news_like, news.news_like) == (False, True)


def test_rules_override_areas_only_on_news_like_text(trained):
    """On the export's own programme descriptions the model decides the areas; without the
    genre model (older models) the rules' certain areas are added there too."""
    from classifier.domains import DomainTagger
    from classifier.pipeline import Classifier, ItemText
    from classifier.places import Gazetteer

    _model, folder = trained
    model = load_model(folder)
    classifier = Classifier(model, RuleTagger.load(), DomainTagger.load(), Gazetteer.load())
    items = [ItemText(e.title, e.text) for e in read_stip(SMALL)]

    def ruled() -> int:
        return sum(method == "rules" and area in model.areas
                   for result in classifier.classify(items) for area, _s, method in result.areas)

    assert ruled() == 0
    model.genre_cut = None
    assert ruled() > 0


def test_news_without_a_science_anchor_is_not_sti_policy(trained):
    """Whatever the model makes of general news (it learnt "not policy" from science news), a
    news-like item with no science or technology anchor is not STI policy; one with an anchor,
    and programme descriptions, keep the blended score."""
    from classifier.domains import DomainTagger
    from classifier.pipeline import Classifier, ItemText
    from classifier.places import Gazetteer

    _model, folder = trained
    model = load_model(folder)
    classifier = Classifier(model, RuleTagger.load(), DomainTagger.load(), Gazetteer.load())
    tax = ItemText("Minister announces tax reform after weeks of protests",
                   "The finance minister said on Tuesday that the government would raise "
                   "levies on high earners and second homes next year, after weeks of protests.")
    science = ItemText("Minister announces new research funding",
                       "The science minister said on Tuesday that the government would spend "
                       "an extra 200 million on university research next year.")
    assert RuleTagger.load().relevance_anchored(tax.title, tax.text)[1] is False
    tax_result, science_result = classifier.classify([tax, science])
    assert tax_result.news_like and not tax_result.is_policy
    assert tax_result.policy <= RuleTagger.load().relevance(tax.title, tax.text)
    # the anchored item keeps the blend of model and rules; the tax reform's blend was higher
    # than what it got: the cap made the change
    from classifier.pipeline import POLICY_RULE_WEIGHT

    def blend(item: ItemText) -> float:
        return ((1 - POLICY_RULE_WEIGHT) * model.predict([model_text(item.title, item.text)])[0].policy
                + POLICY_RULE_WEIGHT * RuleTagger.load().relevance(item.title, item.text))

    assert science_result.policy == pytest.approx(blend(science))
    assert blend(tax) > tax_result.policy


def test_features_match_scikit_learn_transform():
    # The model's own transform must give exactly scikit-learn's TF-IDF matrix: the
    # vocabulary and idf are fitted by scikit-learn, the transform is re-implemented for speed.
    texts = [
        "The Ministry of Science funds open-access research grants in 2027.",
        "Café Ünïversität: la stratégie nationale pour la recherche (“plan 2030”).",
        "A b c research_security x_1 grants — a ministry’s plan; 5G and AI.",
        "量子 research centre funds grants, ministry says",
        "research grants research grants research grants",
        "Ministry funds research. Open access research grants for the ministry.",
        # non-ASCII only in punctuation (curly quotes, dashes, €, …): the fast ASCII way
        "The ministry’s “AI–quantum” research plan … €5 bn for grants — open access",
        # letters of other scripts, and marks that are no word character
        "Ωmega research grants Δ ministry ж open\u20d7access x\u200by",
    ] * 2
    features = Features()
    features.fit_transform(texts)
    unseen = texts + ["", "   ", "unknown words only", "grants a research",
                      "GRANTS Research-Ministry fundS", "Stratégie café 2030"]
    ours = features.transform(unseen)
    theirs = features.vectorizer.transform(unseen)
    assert ours.shape == theirs.shape
    assert abs(ours - theirs).max() < 1e-6


def test_every_policy_text_gets_an_area(trained):
    # When no area reaches its threshold, the one closest to it is tagged: a programme or
    # policy item is about something.
    model, _folder = trained
    texts = [model_text("Notice", "Dates for the next meeting."), model_text("", "")]
    for prediction in model.predict(texts):
        assert len(prediction.areas) >= 1
        assert set(prediction.areas) <= set(model.area_labels)


def test_no_model_folder_means_no_model(tmp_path: Path):
    assert load_model(tmp_path / "nothing") is None
    assert read_metadata(tmp_path) is None


@pytest.mark.parametrize("key, value, says", [
    ("sklearn_version", "0.24.2", f"scikit-learn 0.24.2 (installed: {sklearn.__version__})"),
    ("taxonomy_version", 0, f"taxonomy version 0 (current: {load_taxonomy().version})"),
])
def test_model_for_other_versions_is_refused_with_retrain_message(trained, tmp_path: Path,
                                                                  stiwatch, key, value, says):
    _model, folder = trained
    copy = tmp_path / "old-model"
    copy.mkdir()
    (copy / "model.joblib").write_bytes((folder / "model.joblib").read_bytes())
    meta = json.loads((folder / "model.json").read_text())
    meta[key] = value
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelMismatch) as caught:
        load_model(copy)
    assert says in str(caught.value)
    assert "retrain it with `stiwatch train --stip FILE`" in str(caught.value)

    assert stiwatch("init").exit_code == 0  # a store to classify: the model is what is wrong
    result = stiwatch("classify", "--model-dir", str(copy))
    assert result.exit_code == 2
    assert f"Error: {copy / 'model.json'}: the model was made with {says}" in result.output
    assert "Traceback" not in result.output


def test_damaged_model_file_is_a_clear_error(trained, tmp_path: Path):
    _model, folder = trained
    copy = tmp_path / "damaged"
    copy.mkdir()
    (copy / "model.json").write_text((folder / "model.json").read_text())
    (copy / "model.joblib").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load the model.*retrain"):
        load_model(copy)


def test_a_model_file_from_another_save_is_a_clear_error(trained, tmp_path: Path):
    """model.json and model.joblib of two saves (a save interrupted between them, or one file
    copied over from another folder): the model would be loaded under the wrong metadata."""
    _model, folder = trained
    copy = tmp_path / "mixed"
    copy.mkdir()
    (copy / "model.joblib").write_bytes((folder / "model.joblib").read_bytes())
    meta = json.loads((folder / "model.json").read_text())
    meta["version"] = "another-save"
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="does not match model.json.*retrain"):
        load_model(copy)


def test_a_truncated_model_file_is_a_clear_error(trained, tmp_path: Path):
    """A model file cut short (a full disk while copying it) is one error, not a traceback."""
    _model, folder = trained
    copy = tmp_path / "cut"
    copy.mkdir()
    (copy / "model.json").write_text((folder / "model.json").read_text())
    whole = (folder / "model.joblib").read_bytes()
    (copy / "model.joblib").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(ModelError, match="cannot load the model.*retrain"):
        load_model(copy)


def test_a_model_saved_in_joblibs_format_still_loads(trained, tmp_path: Path):
    """Models saved until 2026-11-27 22:00 UTC are in joblib's own format (zlib, compress=3):
    they load as they did, and predict the same, without retraining."""
    import joblib

    from classifier.artifacts import load_payload

    model, folder = trained
    old = tmp_path / "old-format"
    old.mkdir()
    (old / "model.json").write_text((folder / "model.json").read_text())
    joblib.dump(load_payload(folder / "model.joblib"), old / "model.joblib", compress=3)
    assert (old / "model.joblib").read_bytes()[:1] == b"\x78"  # joblib's zlib, not gzip

    texts = [model_text("Open Access Policy 99", "Publications from publicly funded research "
                        "must be available in open access.")]
    assert ([p.area_scores for p in load_model(old).predict(texts)]
            == [p.area_scores for p in model.predict(texts)])
    # and what is saved now is still read by joblib.load, as the docs say
    assert joblib.load(folder / "model.joblib")["version"] == model.version


def test_too_little_data_is_a_training_error():
    samples = stip_samples(read_stip(SMALL, limit=10))
    with pytest.raises(TrainingError, match="too few examples"):
        train(samples)


def test_train_command_saves_where_told_and_reports(stiwatch, tmp_path: Path, db_path: Path):
    folder = tmp_path / "models"
    result = stiwatch("train", "--stip", str(SMALL), "--negatives", str(NEGATIVES),
                      "--model-dir", str(folder), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["model_dir"] == str(folder)
    assert report["training_data"]["stip_file"] == "stip_small.csv"
    assert report["training_data"]["negative_feeds"] == ["nonpolicy_news.rss"]
    assert (folder / "model.joblib").exists()
    assert not db_path.exists()  # no store yet: no analyst corrections, and none created

    # The environment variable names the folder too.
    other = tmp_path / "env-models"
    result = stiwatch("-q", "train", "--stip", str(SMALL),
                      env={"STIWATCH_MODEL_DIR": str(other)})
    assert result.exit_code == 0, result.output
    assert f"to {other}" in result.output
    assert "no negatives" in result.output  # relevance stays with the rules
    assert json.loads((other / "model.json").read_text())["labels"]["policy"] is False


FEED_FIXTURES = FIXTURES / "feeds"


@pytest.mark.parametrize("path, why", [
    (FEED_FIXTURES / "html_page_not_feed.xml", "not an RSS or Atom feed"),  # a page saved as .xml
    (FIXTURES / "classifier" / "news_briefs.jsonl", "not an RSS or Atom feed"),
    (FEED_FIXTURES / "empty_channel.xml", "a feed without entries"),
], ids=["html-page", "json-lines", "empty-feed"])
def test_train_refuses_a_negatives_file_without_feed_entries(stiwatch, tmp_path: Path,
                                                            path: Path, why: str):
    """Trained on no feed news, the model learnt "not policy" from 43 bundled items alone and
    called elections and phone launches policy, with a cross-validated F1 of 0.998."""
    folder = tmp_path / "models"
    result = stiwatch("train", "--stip", str(SMALL), "--negatives", str(path),
                      "--model-dir", str(folder))
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"Error: {path}: no feed entries to use as non-policy news ({why})")
    assert not folder.exists()


def test_train_skips_a_folders_files_without_entries_but_not_all_of_them(stiwatch,
                                                                          tmp_path: Path):
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    for name in ("html_page_not_feed.xml", "empty_channel.xml"):
        (feeds / name).write_bytes((FEED_FIXTURES / name).read_bytes())
    folder = tmp_path / "models"
    result = stiwatch("train", "--stip", str(SMALL), "--negatives", str(feeds),
                      "--model-dir", str(folder))
    assert result.exit_code == 2
    assert result.output.splitlines()[-3:] == [
        f"train: skipped {feeds / 'empty_channel.xml'}: no feed entries to use as non-policy "
        "news (a feed without entries)",
        f"train: skipped {feeds / 'html_page_not_feed.xml'}: no feed entries to use as "
        "non-policy news (not an RSS or Atom feed)",
        f"Error: {feeds}: none of its 2 feed files (*.xml, *.rss, *.atom) has entries to use "
        "as non-policy news"]
    assert not folder.exists()

    (feeds / "news.rss").write_bytes(NEGATIVES.read_bytes())
    result = stiwatch("train", "--stip", str(SMALL), "--negatives", str(feeds),
                      "--no-bundled-news", "--model-dir", str(folder))
    assert result.exit_code == 0, result.output
    assert "train: 72 initiatives, 15 feed negatives" in result.output
    assert " on 1 thread\n" in result.output  # it said "on 1 threads"
    assert f"train: skipped {feeds / 'html_page_not_feed.xml'}" in result.output
    meta = json.loads((folder / "model.json").read_text())
    assert meta["training_data"]["negative_feeds"] == ["news.rss"]
    assert meta["training_counts"]["feed_negatives"] == 15


@pytest.mark.parametrize("where, message", [
    ("afile", "{dir}: is a file, not a folder: the model cannot be saved there"),
    ("afile/models", "{dir}: cannot be created: {file} is a file, not a folder"),
], ids=["a-file", "under-a-file"])
def test_train_refuses_an_unusable_model_dir_before_training(stiwatch, tmp_path: Path,
                                                            where: str, message: str):
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    folder = tmp_path / where
    result = stiwatch("train", "--stip", str(SMALL), "--model-dir", str(folder))
    assert result.exit_code == 2
    # one line, and before training: no progress line came first
    assert result.output.splitlines() == [
        "Error: " + message.format(dir=folder, file=afile)
        + " (model_dir is set by option --model-dir)"]
    assert afile.read_text() == "mine\n"


def test_train_refuses_a_model_dir_it_cannot_create(stiwatch, tmp_path: Path):
    """A folder the OS refuses, even to root (a name too long), is one line before training."""
    folder = tmp_path / ("m" * 300)
    result = stiwatch("train", "--stip", str(SMALL), "--model-dir", str(folder))
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"Error: {folder}: the model cannot be saved there: File name too long "
        "(model_dir is set by option --model-dir)"]


def test_the_model_dir_check_leaves_no_folder_behind(tmp_path: Path):
    """Folders made for the check are removed: a training that fails later leaves none."""
    from classifier.artifacts import check_model_dir

    root = tmp_path / "root"
    root.mkdir()
    check_model_dir(root / "new" / "models")
    assert list(root.iterdir()) == []
    (root / "kept").mkdir()
    check_model_dir(root / "kept")
    assert list(root.iterdir()) == [root / "kept"]
    assert list((root / "kept").iterdir()) == []


def test_real_export_sample_trains(tmp_path: Path):
    path = shared_data("stip-compass-2021/stip_2021_train.csv.gz")
    model = train(stip_samples(read_stip(path, limit=400)), data_sha256="sample")
    areas = model.metadata["cv_metrics"]["areas"]
    assert areas["micro_f1"] > 0.45, areas
    save_model(model, tmp_path)
    assert load_model(tmp_path).area_labels == model.area_labels


def test_the_same_training_data_give_the_same_model():
    """The relevance and area models are liblinear's dual problems, solved in a random order
    of the examples: unseeded, the same data gave different weights from run to run."""
    samples = stip_samples(read_stip(SMALL)) + stip_samples(feed_negatives([NEGATIVES]))
    first, second = (train(samples, data_sha256="s", rule_areas=RuleTagger.load().areas)
                     for _ in range(2))
    assert np.array_equal(first.bank.weights, second.bank.weights)
    assert np.array_equal(first.bank.bias, second.bank.bias)
