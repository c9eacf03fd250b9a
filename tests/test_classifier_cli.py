"""`stiwatch classify` and `stiwatch tag` on a real SQLite store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import db
from conftest import FIXTURES, made_once

SMALL = FIXTURES / "stip" / "stip_small.csv"
NEGATIVES = FIXTURES / "stip" / "nonpolicy_news.rss"

POLICY_TEXT = (
    "The Japanese government approved a national strategy for quantum technology on Tuesday. "
    "The Ministry of Education, Culture, Sports, Science and Technology (MEXT) will fund "
    "university research centres and open a competitive call for proposals, the Cabinet "
    "Office said. Open access to publications from the programme will be required."
)
OTHER_TEXT = (
    "Marine biologists filmed a pale octopus on a seamount off the coast of Chile that they "
    "believe is a species unknown to science. The animal lives at a depth of 3,000 metres."
)


@pytest.fixture
def store_path(db_path: Path) -> Path:
    with db.open_store(db_path) as store:
        store.sync_sources([
            {"id": "jp-news", "name": "JP", "kind": "feed", "url": "https://jp.example/f",
             "country": "JP"},
            {"id": "wire", "name": "Wire", "kind": "feed", "url": "https://wire.example/f"},
        ])
        store.save_items([
            {"url": "https://jp.example/1", "source_id": "jp-news",
             "title": "Japan approves quantum strategy", "summary": "Cabinet decision.",
             "body": POLICY_TEXT},
            {"url": "https://wire.example/2", "source_id": "wire",
             "title": "New deep-sea octopus found", "body": OTHER_TEXT},
            {"url": "https://jp.example/3", "source_id": "jp-news",
             "title": "Weather: sunny week ahead", "body": "Sunshine and mild temperatures."},
        ])
        # item 4: the same article syndicated under another URL
        (copy_id, _), = store.save_items([
            {"url": "https://wire.example/4", "source_id": "wire",
             "title": "Japan approves quantum strategy (syndicated)", "body": POLICY_TEXT,
             "duplicate_of": 1}])
        assert copy_id == 4
    return db_path


_CLASSIFIED: list[Path] = []  # this worker's store_path after `classify --no-model`


@pytest.fixture
def classified_store(stiwatch, store_path: Path, tmp_path_factory: pytest.TempPathFactory
                     ) -> Path:
    """store_path after `stiwatch classify --no-model`: classified the first time in this
    worker, then copied whole (the same database, in milliseconds instead of a classify)."""
    from contextlib import closing
    import sqlite3

    if not _CLASSIFIED:
        assert stiwatch("classify", "--no-model").exit_code == 0
        _CLASSIFIED.append(tmp_path_factory.mktemp("classified") / "stiwatch.db")
        with closing(sqlite3.connect(store_path)) as source, \
                closing(sqlite3.connect(_CLASSIFIED[0])) as copy:
            source.backup(copy)
    else:
        with closing(sqlite3.connect(_CLASSIFIED[0])) as source, \
                closing(sqlite3.connect(store_path)) as copy:
            source.backup(copy)
    return store_path


def tags(db_path: Path, item_id: int) -> dict[tuple[str, str], str]:
    with db.open_store(db_path) as store:
        return {(t["facet"], t["value"]): t["method"] for t in store.tags_of(item_id)}


def test_classify_without_model_uses_rules_and_says_so(stiwatch, store_path, tmp_path):
    (tmp_path / "no-model").mkdir()  # a folder without a model (a missing one is refused)
    result = stiwatch("classify", "--model-dir", str(tmp_path / "no-model"))
    assert result.exit_code == 0, result.output
    assert f"no trained model in {tmp_path / 'no-model'}" in result.output
    assert ("4 items classified with lexicon rules (no trained model) "
            "(1 duplicate inherited its original's tags)") in result.output
    first = tags(store_path, 1)
    assert first[("policy", "1")] == "rules"
    assert first[("country", "JP")] == "gazetteer"
    assert ("region", "east_asia") in first
    assert ("domain", "quantum") in first
    assert any(facet == "area" for facet, _ in first)
    assert ("policy", "0") in tags(store_path, 2)
    # No place in the text: the source's home country, marked as such.
    third = tags(store_path, 3)
    assert third[("country", "JP")] == "source" and third[("region", "east_asia")] == "source"
    # The duplicate carries exactly its original's tags.
    assert tags(store_path, 4) == first
    with db.open_store(store_path) as store:
        assert store.unclassified_ids() == []
        versions = {t["model_version"] for t in store.tags_of(1)}
    assert len(versions) == 1 and versions.pop().startswith("rules+")

    # nothing new: said at once, without loading the classifier (seconds with a model)
    again = stiwatch("classify", "--model-dir", str(tmp_path / "no-model"))
    assert again.exit_code == 0, again.output
    assert ("0 items classified: none new since the last classify (the classifier was not "
            "loaded)") in again.output
    assert "Classifier:" not in again.output


@pytest.mark.parametrize("how", ["option", "env", "config"])
def test_a_named_model_folder_that_is_missing_is_an_error_not_the_rules(stiwatch, store_path,
                                                                        tmp_path, how):
    """`--model-dir /tmp/typo` classified with the lexicon rules, saying only "no trained model
    in /tmp/typo": a named folder must exist; the error names it and where it was set."""
    typo = tmp_path / "modles"
    args, env, origin = {
        "option": (["classify", "--model-dir", str(typo)], None, "option --model-dir"),
        "env": (["classify"], {"STIWATCH_MODEL_DIR": str(typo)}, "env STIWATCH_MODEL_DIR"),
        "config": (["--config", str(tmp_path / "s.toml"), "classify"], None,
                   str(tmp_path / "s.toml")),
    }[how]
    (tmp_path / "s.toml").write_text(f"model_dir = {json.dumps(str(typo))}\n")
    result = stiwatch(*args, env=env)
    assert result.exit_code == 2
    assert result.output == (
        f"Error: {typo}: no such model folder (model_dir is set by {origin}): a mistyped "
        "path? Create the folder to classify with the lexicon rules until `stiwatch train` "
        "saves a model in it\n")
    with db.open_store(store_path) as store:
        assert store.unclassified_ids() == [1, 2, 3, 4]  # nothing was classified
    assert not typo.exists()


def test_a_model_folder_that_is_a_file_is_an_error_for_classify_and_evaluate(
        stiwatch, store_path, tmp_path):
    afile = tmp_path / "model.json"
    afile.write_text("{}")
    brief = _phd_brief(tmp_path)
    for command in (["classify"], ["evaluate", str(brief)]):
        result = stiwatch(*command, "--model-dir", str(afile))
        assert result.exit_code == 2, result.output
        assert result.output == (f"Error: {afile}: is a file, not a folder of trained models "
                                 "(model_dir is set by option --model-dir)\n")
    missing = stiwatch("evaluate", str(brief), "--model-dir", str(tmp_path / "typo"))
    assert missing.exit_code == 2
    assert missing.output.startswith(f"Error: {tmp_path / 'typo'}: no such model folder")
    # --no-model reads no model: the folder is not looked for
    assert stiwatch("evaluate", str(brief), "--no-model", "--model-dir",
                    str(tmp_path / "typo")).exit_code == 0
    with db.open_store(store_path) as store:
        assert store.unclassified_ids() == [1, 2, 3, 4]


def _policy_methods_of_weather_notes(stiwatch, db_path, languages):
    """How a British ministry's weather note stored in each of ``languages`` gets its policy
    tag: "rules" (read, not STI policy) or "source" (a language not read: the ministry's)."""
    with db.open_store(db_path) as store:
        store.sync_sources([{"id": "ministry", "name": "M", "kind": "feed", "org_type": "ministry",
                             "url": "https://m.example/f", "country": "GB"}])
        store.save_items([
            {"url": f"https://m.example/{n}", "source_id": "ministry", "language": language,
             "title": "Weather: sunny week ahead", "body": "Sunshine and mild temperatures."}
            for n, language in enumerate(languages)])
    assert stiwatch("-q", "classify", "--no-model").exit_code == 0
    return [next(m for (f, _v), m in tags(db_path, n).items() if f == "policy")
            for n in range(1, len(languages) + 1)]


def test_an_english_item_with_a_regional_language_tag_is_read_as_english(stiwatch, db_path):
    """"en-GB" or "EN" (stored by older versions) is English: a ministry's English weather
    note is not made policy-relevant by its source, as an unread Thai one would be."""
    assert _policy_methods_of_weather_notes(
        stiwatch, db_path, ["en", "en-GB", "EN", "en_US", "th"]) == \
        ["rules", "rules", "rules", "rules", "source"]
    assert tags(db_path, 5)[("policy", "1")] == "source"


def test_a_three_letter_or_unknown_language_code_is_read_as_iso_639(stiwatch, db_path):
    """A short page's lang attribute is stored as written when no text tells better: "eng"
    is English, a template's "xx" is no language; "tha" and "fil" are other languages."""
    assert _policy_methods_of_weather_notes(stiwatch, db_path, ["eng", "xx", "tha", "fil"]) == \
        ["rules", "rules", "source", "source"]


def test_an_item_with_no_language_is_not_policy_by_its_ministry_source(stiwatch, db_path):
    """The crawler stores "zxx" (no linguistic content) for emoji, a base64 blob or a table of
    numbers: a ministry's such page is not policy-relevant by its source as a Thai text is."""
    with db.open_store(db_path) as store:
        store.sync_sources([{"id": "ministry", "name": "M", "kind": "feed", "org_type": "ministry",
                             "url": "https://m.example/f", "country": "JP"}])
        store.save_items([
            {"url": "https://m.example/1", "source_id": "ministry", "language": "zxx",
             "title": "🚀🚀", "body": "🔬🧪🤖💡 " * 500},
            {"url": "https://m.example/2", "source_id": "ministry", "language": "zxx",
             "title": "Blob", "body": "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkrLw==" * 2000},
            {"url": "https://m.example/3", "source_id": "ministry", "language": "und",
             "title": "2026", "body": "12 345 678 910 " * 100}])
    assert stiwatch("-q", "classify", "--no-model").exit_code == 0
    assert [tags(db_path, n)[("policy", "0")] for n in (1, 2, 3)] == ["rules"] * 3


def test_a_source_stored_with_country_uk_gives_its_items_gb(stiwatch, db_path):
    """An older version stored "UK" as a source's country: its items with no place in the
    text still get the home country (GB, with its region), not no country at all."""
    with db.open_store(db_path) as store:
        store.sync_sources([{"id": "ukri", "name": "UKRI", "kind": "feed",
                             "url": "https://ukri.example/f", "country": "GB"}])
        store.save_items([{"url": "https://ukri.example/1", "source_id": "ukri",
                           "title": "New research funding call",
                           "body": "The council opens a call for research proposals."}])
        store.conn.execute("UPDATE sources SET country = 'UK' WHERE id = 'ukri'")
    assert stiwatch("-q", "classify", "--no-model").exit_code == 0
    found = tags(db_path, 1)
    assert found[("country", "GB")] == "source" and found[("region", "europe")] == "source"


def test_classify_store_keeps_the_garbage_collector_as_it_found_it(store_path):
    """classify_store freezes what exists before the run out of the collector's sight (the
    classifier's tables) and thaws it after, also when the run fails: nothing stays frozen.
    It collects new objects less often during the run, and as often as before after it."""
    import gc

    from classifier.pipeline import Classifier, classify_store, young_threshold

    classifier = Classifier.load(None)
    before = gc.get_freeze_count()
    threshold = gc.get_threshold()
    seen: list[int] = []
    during: list[tuple[int, ...]] = []

    def progress(n: int, policy: int) -> None:
        seen.append(gc.get_freeze_count())
        during.append(gc.get_threshold())

    with db.open_store(store_path) as store:
        report = classify_store(store, classifier, progress=progress)
        assert report.classified == 3 and report.inherited == 1
        assert seen and min(seen) > before  # frozen during the run
        assert during[0] == (young_threshold(threshold[0]), *threshold[1:])
        assert gc.get_freeze_count() == before and gc.get_threshold() == threshold
        assert young_threshold(700) == 100_000 and young_threshold(0) == 0

        def fail(n, policy):
            raise RuntimeError("interrupted")

        with pytest.raises(RuntimeError):
            classify_store(store, classifier, everything=True, progress=fail)
        assert gc.get_freeze_count() == before and gc.get_threshold() == threshold


def test_analyst_tags_survive_reclassification_and_duplicates_follow(stiwatch, store_path,
                                                                     tmp_path):
    no_model = str(tmp_path / "none")
    Path(no_model).mkdir()  # a folder without a model: the lexicon rules
    stiwatch("-q", "classify", "--model-dir", no_model)
    before = tags(store_path, 1)
    assert ("country", "US") not in before

    result = stiwatch("tag", "1", "--add", "area=research_security", "--add", "country=US",
                      "--remove", "country=JP")
    assert result.exit_code == 0, result.output
    assert "Item 1: 2 added, 1 removed." in result.output
    assert "research_security" in result.output

    result = stiwatch("classify", "--all", "--model-dir", no_model, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["items"] == 4 and report["classified"] == 3 and report["inherited"] == 1
    assert report["model"] is None

    after = tags(store_path, 1)
    assert after[("area", "research_security")] == "analyst"
    assert after[("country", "US")] == "analyst"
    assert ("country", "JP") not in after  # removed by the analyst: not written back
    assert tags(store_path, 4) == after

    shown = stiwatch("tag", "1", "--json")
    values = {(t["facet"], t["value"]) for t in json.loads(shown.output)["tags"]}
    assert ("area", "research_security") in values

    with db.open_store(store_path) as store:
        labelled = store.analyst_labelled_items()
    assert labelled[0]["labels"] == [("area", "research_security", 1), ("country", "JP", 0),
                                     ("country", "US", 1)]


def test_classify_says_the_analysts_corrections_were_kept(stiwatch, store_path, tmp_path):
    """`classify --all` after `stiwatch tag`: the analyst sees the corrections survived it."""
    no_model = str(tmp_path / "none")
    Path(no_model).mkdir()  # a folder without a model: the lexicon rules
    stiwatch("-q", "classify", "--model-dir", no_model)
    stiwatch("-q", "tag", "1", "--add", "area=research_security")
    stiwatch("-q", "tag", "3", "--remove", "country=JP")
    result = stiwatch("classify", "--all", "--model-dir", no_model)
    assert result.exit_code == 0, result.output
    # items 1 and 3 corrected; 4, the copy of 1, only inherits its original's tags
    assert "; the analyst corrections of 2 items kept." in result.output
    report = json.loads(stiwatch("classify", "--all", "--model-dir", no_model, "--json").stdout)
    assert report["corrected"] == 2
    # a correction taken back is no longer counted
    stiwatch("-q", "tag", "3", "--undo", "country")
    again = stiwatch("classify", "--all", "--model-dir", no_model)
    assert "; the analyst corrections of 1 item kept." in again.output
    stiwatch("-q", "tag", "1", "--undo", "area")
    assert "corrections" not in stiwatch("classify", "--all", "--model-dir", no_model).output


def test_a_correction_taken_back_leaves_the_duplicates_too(stiwatch, store_path, tmp_path):
    no_model = str(tmp_path / "none")
    Path(no_model).mkdir()  # a folder without a model: the lexicon rules
    stiwatch("-q", "classify", "--model-dir", no_model)
    stiwatch("-q", "tag", "1", "--add", "area=research_security", "--add", "country=US")
    result = stiwatch("classify", "--model-dir", no_model)
    # the copy only: the other items keep their tags
    assert "1 item classified" in result.output and "(1 duplicate inherited its" in result.output
    assert "items/s" not in result.output  # no rate from copying tags alone
    assert tags(store_path, 4)[("area", "research_security")] == "analyst"
    assert ("region", "north_america") in tags(store_path, 4)

    stiwatch("-q", "tag", "1", "--remove", "area=research_security", "--remove", "country=US")
    stiwatch("-q", "classify", "--model-dir", no_model)
    after = tags(store_path, 1)
    assert ("area", "research_security") not in after and ("country", "US") not in after
    assert tags(store_path, 4) == after
    # the duplicate's own correction is its own: a reclassification keeps it
    stiwatch("-q", "tag", "4", "--add", "domain=quantum")
    stiwatch("-q", "classify", "--all", "--model-dir", no_model)
    assert tags(store_path, 4)[("domain", "quantum")] == "analyst"


def test_a_correction_reaches_the_copies_at_once_for_search_and_export(stiwatch, store_path,
                                                                      classified_store):
    """Search and export read every copy of a story: right after `tag`, before any
    `classify`, the copy no longer shows the story under the country the analyst removed."""
    assert ("country", "JP") in tags(store_path, 4)
    result = stiwatch("-q", "tag", "1", "--remove", "country=JP", "--add", "country=KR",
                      "--add", "area=research_security")
    assert result.exit_code == 0, result.output

    def found(*filters: str) -> list[int]:
        result = stiwatch("search", *filters, "--format", "json")
        assert result.exit_code == 0, result.output
        return sorted(row["id"] for row in json.loads(result.stdout))

    assert found("--country", "JP") == [3]  # item 3's JP is its source's
    assert found("--country", "KR") == [1]
    assert found("--area", "research_security") == [1]
    assert tags(store_path, 4) == tags(store_path, 1)
    exported = [json.loads(line) for line in
                stiwatch("export", "--format", "jsonl").stdout.splitlines()]
    copy = next(row for row in exported if row["id"] == 4)
    assert copy["countries"] == ["KR"] and "area=research_security" in copy["analyst_tags"]


def test_an_analysts_policy_verdict_decides_whether_an_item_has_areas(stiwatch, store_path):
    """Areas are written for policy items only: an analyst's "yes" on an item the rules call
    no gets the areas the rules found (subscribers filtering by area see it), and a "no"
    leaves none of the classifier's (search --area no longer finds it), now and after
    `classify --all`."""
    with db.open_store(store_path) as store:
        [(brief, _)] = store.save_items([
            {"url": "https://wire.example/5", "source_id": "wire",
             "title": "Draft declaration on trusted research",
             "body": "A draft text on trusted research was circulated to delegates."}])
    assert stiwatch("-q", "classify", "--no-model").exit_code == 0
    assert ("policy", "0") in tags(store_path, brief)
    assert not [f for f, _ in tags(store_path, brief) if f == "area"]
    assert [f for f, _ in tags(store_path, 1) if f == "area"]

    result = stiwatch("tag", str(brief), "--add", "policy=1")
    assert result.exit_code == 0, result.output
    assert f"Note: item {brief} has no policy areas yet" in result.stderr
    result = stiwatch("-q", "tag", "1", "--add", "policy=0")
    assert result.exit_code == 0, result.output
    assert not [f for f, _ in tags(store_path, 1) if f == "area"]

    def found(area: str) -> list[int]:
        result = stiwatch("search", "--area", area, "--format", "json")
        return sorted(row["id"] for row in json.loads(result.stdout))

    result = stiwatch("classify", "--no-model")  # the two corrected items and the copy
    assert "3 items classified" in result.output and "1 policy-relevant" in result.output
    assert tags(store_path, brief)[("area", "research_security")] == "rules"
    assert found("research_security") == [brief]
    assert not [f for f, _ in tags(store_path, 1) if f == "area"]
    assert not [f for f, _ in tags(store_path, 4) if f == "area"]
    assert stiwatch("-q", "classify", "--all", "--no-model").exit_code == 0
    assert ("area", "research_security") in tags(store_path, brief)
    assert not [f for f, _ in tags(store_path, 1) if f == "area"]


def test_tag_lists_the_tags_an_analyst_removed(stiwatch, store_path, classified_store):
    """A removal leaves no row in the tag table: `tag ITEM` says what is kept away, so the
    analyst sees the correction and why the country the text names never comes back."""
    stiwatch("-q", "tag", "1", "--remove", "country=JP", "--remove", "domain=space",
             "--add", "country=KR")
    result = stiwatch("tag", "1")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "Removed by an analyst (never tagged again): country=JP, domain=space")
    shown = json.loads(stiwatch("tag", "1", "--json").stdout)
    assert shown["removed"] == [{"facet": "country", "value": "JP"},
                                {"facet": "domain", "value": "space"}]
    assert "Removed by" not in stiwatch("tag", "2").output


def test_tag_why_says_which_terms_of_the_text_each_tag_stands_on(stiwatch, store_path,
                                                                   classified_store):
    """An analyst about to correct a tag first wants to know what the classifier saw: `tag
    --why` lists the lexicon terms found in the item's text for each tag (the most found
    first), says where a tag without terms came from (the source's country, an analyst), and
    lists the labels with some evidence that were not tagged."""
    stiwatch("-q", "tag", "1", "--add", "domain=space")
    result = stiwatch("tag", "1", "--why")
    assert result.exit_code == 0, result.output
    why = result.output.split("\nWhy: ", 1)[1].splitlines()
    cut = why.index("Found, not tagged (too little evidence, or outweighed):")
    tagged = {line.split(":")[0].strip(): line for line in why[1:cut]}
    with db.open_store(store_path) as store:
        assert sorted(tagged) == sorted(f"{t['facet']}={t['value']}" for t in store.tags_of(1))
    assert tagged["domain=quantum"].endswith(": quantum strategy, quantum technology")
    assert tagged["domain=space"] == "  domain=space: an analyst (`stiwatch tag --add`)"
    assert tagged["country=JP"].startswith("  country=JP: evidence 6: ")
    assert "japanese (demonym)" in tagged["country=JP"] and "mext (agency)" in tagged["country=JP"]
    assert tagged["region=east_asia"] == "  region=east_asia: from the countries tagged"
    assert re.search(r"^  policy=1: evidence [\d.]+: .*strategy", tagged["policy=1"])
    # labels with some evidence, too little to be tagged: listed apart, most first
    assert why[cut + 1:] == ["  area=public_research: evidence 5: university, research "
                             "centres, call for proposals",
                             "  area=open_science: evidence 3: open access, publications",
                             "  area=human_resources: evidence 1: education"]
    shown = json.loads(stiwatch("tag", "1", "--why", "--json").stdout)
    found = {(e["facet"], e["value"]): e for e in shown["evidence"]}
    assert found[("domain", "quantum")]["tagged"] is True
    assert found[("country", "JP")]["terms"]["japan"] == 1
    assert all(e["evidence"] > 0 and e["terms"] for e in shown["evidence"])
    # a non-policy item: the research-result cue against policy, the one country it names
    other = stiwatch("tag", "2", "--why").output
    assert "\n  policy=0: evidence 2.25: species\n" in other
    assert "\n  country=CL: evidence 1: chile\n" in other and "Found, not tagged" not in other
    assert "Why:" not in stiwatch("tag", "1").output


def test_tag_writes_each_classifier_version_whole(stiwatch, store_path, classified_store):
    """A classifier's version (model and lexicon versions) ran past the table's 60-character
    column and was cut mid-date: each is written whole under the table, after the facets it
    tagged; an analyst's own tag has none."""
    stiwatch("-q", "tag", "1", "--add", "area=open_science")
    with db.open_store(store_path) as store:
        tags_of_1 = store.tags_of(1)
    [version] = {t["model_version"] for t in tags_of_1 if t["method"] != "analyst"}
    facets = sorted({t["facet"] for t in tags_of_1 if t["method"] != "analyst"})
    lines = stiwatch("tag", "1").output.splitlines()
    assert lines[0].split() == ["FACET", "VALUE", "SCORE", "METHOD"]
    assert lines[-1] == f"{', '.join(facets)} tagged by classifier {version}"
    assert len(version) > 60 and all(version not in line for line in lines[:-1])


def test_an_area_added_to_an_item_judged_not_policy_says_how_to_include_it(
        stiwatch, store_path, classified_store):
    """Item 2 is not policy-relevant: an area alone does not bring it into the digests."""
    result = stiwatch("tag", "2", "--add", "area=research_security")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "Note: item 2 is tagged not policy-relevant (policy=0): digests and trends leave it "
        "out whatever its areas; add policy=1 to include it."]
    result = stiwatch("tag", "2", "--add", "area=research_security", "--add", "policy=1")
    assert "Note" not in result.stderr
    assert "Note" not in stiwatch("tag", "1", "--add", "area=research_security").stderr


def test_a_copy_an_analyst_called_not_policy_copies_no_areas(stiwatch, store_path,
                                                             classified_store):
    """Item 4 copies item 1's tags, but its own "no" keeps the areas off, and the report
    counts it as not policy-relevant."""
    assert stiwatch("-q", "tag", "1", "--add", "area=society").exit_code == 0
    assert tags(store_path, 4)[("area", "society")] == "analyst"  # the original's, copied
    assert stiwatch("-q", "tag", "4", "--add", "policy=0", "--add", "area=governance"
                    ).exit_code == 0
    assert [v for f, v in tags(store_path, 4) if f == "area"] == ["governance"]  # its own
    stiwatch("-q", "tag", "4", "--remove", "area=governance")
    result = stiwatch("classify", "--no-model")
    assert result.exit_code == 0, result.output
    assert "1 item classified" in result.output and "0 policy-relevant" in result.output
    copy = tags(store_path, 4)
    assert copy[("policy", "0")] == "analyst"
    assert not [f for f, _ in copy if f == "area"]
    assert [f for f, _ in tags(store_path, 1) if f == "area"]


def test_an_article_rewritten_by_its_site_is_classified_again(stiwatch, store_path, tmp_path):
    no_model = str(tmp_path / "none")
    Path(no_model).mkdir()  # a folder without a model: the lexicon rules
    stiwatch("-q", "classify", "--model-dir", no_model)
    stiwatch("-q", "tag", "1", "--add", "area=research_security")
    stiwatch("-q", "classify", "--model-dir", no_model)  # the syndicated copy follows
    article = {"url": "https://jp.example/1", "source_id": "jp-news",
               "title": "Japan approves quantum strategy", "summary": "Cabinet decision.",
               "body": POLICY_TEXT}
    with db.open_store(store_path) as store:
        store.save_items([article])  # what `crawl --refresh` does with an unchanged page
    result = stiwatch("classify", "--model-dir", no_model)
    assert "0 items classified" in result.output

    with db.open_store(store_path) as store:
        store.save_items([{**article, "body": POLICY_TEXT.replace("Japanese", "German")
                           .replace("The Ministry of Education, Culture, Sports, Science and "
                                    "Technology (MEXT)", "The Federal Ministry of Research")}])
    result = stiwatch("classify", "--model-dir", no_model)
    assert result.exit_code == 0, result.output
    # the article, then its syndicated copy from the new tags
    assert "2 items classified" in result.output and "(1 duplicate inherited" in result.output
    after = tags(store_path, 1)
    assert ("country", "DE") in after and ("region", "europe") in after
    assert after[("area", "research_security")] == "analyst"
    assert tags(store_path, 4) == after


def _search_ids(stiwatch, *args: str) -> list[int]:
    result = stiwatch("search", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return [row["id"] for row in json.loads(result.stdout)]


def test_regions_follow_the_countries_an_analyst_changes(stiwatch, store_path, tmp_path):
    no_model = str(tmp_path / "none")
    Path(no_model).mkdir()  # a folder without a model: the lexicon rules
    stiwatch("-q", "classify", "--model-dir", no_model)
    assert _search_ids(stiwatch, "quantum", "--region", "europe") == []

    result = stiwatch("tag", "1", "--add", "country=fr")
    assert result.exit_code == 0, result.output
    assert tags(store_path, 1)[("region", "europe")] == "analyst"  # and shown in the table:
    assert any(line.split() == ["region", "europe", "1", "analyst"]
               for line in result.output.splitlines())
    assert _search_ids(stiwatch, "quantum", "--region", "europe") == [1]

    # JP was east_asia's only country: gone with it. An analyst's own region stays.
    stiwatch("-q", "tag", "1", "--remove", "country=JP", "--add", "region=oceania")
    first = tags(store_path, 1)
    assert ("region", "east_asia") not in first and ("region", "oceania") in first

    result = stiwatch("classify", "--all", "--model-dir", no_model)
    assert result.exit_code == 0, result.output
    after = tags(store_path, 1)
    assert {value for facet, value in after if facet in ("country", "region")} == {
        "FR", "europe", "oceania"}
    assert after[("region", "europe")] == "analyst"
    assert tags(store_path, 4) == after
    assert _search_ids(stiwatch, "quantum", "--region", "europe") == [1]
    assert _search_ids(stiwatch, "quantum", "--region", "east_asia") == []

    # Removing the analyst's country takes its region along; a region the analyst removed
    # is not brought back by another country of it.
    stiwatch("-q", "tag", "1", "--remove", "country=FR", "--remove", "region=oceania")
    stiwatch("-q", "tag", "1", "--add", "country=AU")
    assert {value for facet, value in tags(store_path, 1) if facet in ("country", "region")} == {
        "AU"}


def test_a_multilateral_region_stays_whatever_the_countries(db_path):
    from classifier.places import region_map

    with db.open_store(db_path) as store:
        store.sync_sources([{"id": "s", "name": "S", "kind": "feed", "url": "https://s.org/f"}])
        [(item_id, _)] = store.save_items([{"url": "https://s.org/1", "source_id": "s"}])
        store.save_classifications([(item_id, [
            {"facet": "country", "value": "JP", "score": 0.9, "method": "gazetteer"},
            {"facet": "region", "value": "east_asia", "score": 0.9, "method": "gazetteer"},
            {"facet": "region", "value": "international", "score": 1.0, "method": "gazetteer"},
        ])], "m1", region_of=region_map())
        store.analyst_label(item_id, remove=[("country", "JP")], region_of=region_map())
        assert [(t["facet"], t["value"]) for t in store.tags_of(item_id)] == [
            ("region", "international")]


def test_classify_with_a_trained_model(stiwatch, store_path, tmp_path):
    models = tmp_path / "models"
    # an analyst verdict is folded into training
    stiwatch("-q", "tag", "2", "--add", "policy=0")
    stiwatch("-q", "tag", "3", "--add", "country=KR")  # a country only: the country model's
    trained = stiwatch("train", "--stip", str(SMALL), "--negatives", str(NEGATIVES),
                       "--model-dir", str(models), "--json")
    assert trained.exit_code == 0, trained.output
    meta = json.loads(trained.stdout)
    assert meta["training_counts"]["analyst"] == 1
    # quiet, the summary still says the store's corrections were learnt from
    said = stiwatch("-q", "train", "--stip", str(SMALL), "--negatives", str(NEGATIVES),
                    "--model-dir", str(tmp_path / "again"))
    assert said.exit_code == 0, said.output
    countries = meta["countries"]["training_counts"]["analyst"]
    assert (f"the analysts' corrections of 2 items (1 for relevance and areas, {countries} for "
            "countries)") in said.output
    # research_security is never learnt, by design: not "no training data", which read as if
    # the analysts' research_security tags had not been found
    assert ("  not learnt, by design: research_security (no STIP theme maps to it; the lexicon "
            "rules tag it)\n") in said.output
    assert "no training data" not in said.output
    # trained away from the model_dir setting: said, with how to use it
    default, = [row["value"] for row in json.loads(stiwatch("config", "--json").stdout)
                if row["name"] == "model_dir"]
    assert (f"  classify, evaluate and run read the model_dir setting ({default}, default), "
            f"not this folder: pass them --model-dir {tmp_path / 'again'}, or set model_dir "
            "(STIWATCH_MODEL_DIR) to it\n") in said.output
    # trained where the setting points: nothing to say
    quiet = stiwatch("-q", "train", "--stip", str(SMALL), "--negatives", str(NEGATIVES),
                     env={"STIWATCH_MODEL_DIR": str(tmp_path / "again")})
    assert quiet.exit_code == 0, quiet.output
    assert "Saved model" in quiet.output and "model_dir setting" not in quiet.output

    # a Japanese newspaper's story: the model learnt English only, the rules read Japanese
    with db.open_store(store_path) as store:
        (japanese, _), = store.save_items([
            {"url": "https://jp.example/5", "source_id": "jp-news", "language": "ja",
             "title": "米国、中国向け半導体の輸出規制を強化",
             "body": "米国政府は、中国への先端半導体と製造装置の輸出規制を強化すると発表した。"
                     "大学の研究機関にも技術流出を防ぐ管理を求める。"}])

    result = stiwatch("classify", env={"STIWATCH_MODEL_DIR": str(models)})
    assert result.exit_code == 0, result.output
    assert f"Classifier: model {meta['version']}" in result.output
    assert "examples, 1 of them analyst-corrected items) from" in result.output
    story = tags(store_path, japanese)
    assert story[("policy", "1")] == "rules"
    assert story[("area", "research_security")] == "rules"
    assert story[("domain", "semiconductors")] == "rules"
    assert {value for facet, value in story if facet == "country"} == {"US", "CN"}
    assert f"with model {meta['version']}" in result.output
    first = tags(store_path, 1)
    assert first[("policy", "1")] == "model"
    assert tags(store_path, 2)[("policy", "0")] == "analyst"
    with db.open_store(store_path) as store:
        assert store.tags_of(1)[0]["model_version"].startswith(meta["version"] + "+")

    # --no-model sets the model aside: said so, not "no trained model ... train one"
    aside = (f"Classifier: the trained model in {models} is set aside (--no-model): policy "
             "relevance and areas come from the lexicon rules")
    result = stiwatch("classify", "--all", "--no-model", "--model-dir", str(models))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == aside
    assert "items classified with lexicon rules (trained model set aside)" in result.output
    assert "train one" not in result.output
    result = stiwatch("classify", "--all", "--no-model", "--model-dir", str(models), "--json")
    assert json.loads(result.stdout)["description"] == aside.removeprefix("Classifier: ")
    brief = _phd_brief(tmp_path)
    result = stiwatch("evaluate", str(brief), "--no-model", "--model-dir", str(models))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == aside


@pytest.mark.parametrize("args, message", [
    (["99", "--add", "area=governance"], "no item with id 99"),
    (["99999999999999999999"], "no item with id 99999999999999999999"),
    (["99999999999999999999", "--add", "area=governance"], "no item with id 999999999"),
    (["1", "--add", "area=astrology"], "unknown area 'astrology'"),
    (["1", "--add", "country=UK"],
     "Error: --add 'country=UK': unknown country 'UK' (United Kingdom is 'GB')\n"),
    (["1", "--remove", "area=open-science"],
     "Error: --remove 'area=open-science': unknown area 'open-science' (did you mean "
     "'open_science'?)\n"),
    # a misspelling, not only another spelling of the id, gets the suggestion
    (["1", "--add", "area=goverance"],
     "Error: --add 'area=goverance': unknown area 'goverance' (did you mean 'governance'?)\n"),
    (["1", "--add", "governance"], "expected FACET=VALUE"),
    (["1", "--add", "policy=maybe"], "unknown policy 'maybe'"),
    (["1", "--add", "country=jp", "--remove", "country=JP"], "country=JP is both added and removed"),
    (["1", "--add", "domain=AI", "--remove", "domain=ai"], "domain=ai is both added and removed"),
    (["1", "--add", "policy=1", "--add", "policy=0"],
     "policy takes one verdict: add policy=1 or policy=0, not both"),
    (["1", "--remove", "policy=1"], "policy is not removed but given the other verdict: "
     "add policy=0 (not policy-relevant) or policy=1"),
])
def test_tag_errors(stiwatch, store_path, classified_store, args, message):
    before = tags(store_path, 1)
    result = stiwatch("tag", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert tags(store_path, 1) == before


def test_tag_says_what_changed_and_a_no_is_scored_as_one(stiwatch, store_path, classified_store):
    """The counts are changes; an analyst's policy = 0 is a relevance probability of 0."""
    assert tags(store_path, 1)[("policy", "1")] == "rules"
    said = [stiwatch("tag", "1", *args).output.splitlines()[0] for args in (
        ["--add", "domain=quantum", "--remove", "domain=space"],  # quantum was the rules'
        ["--add", "domain=quantum"],
        ["--add", "policy=0", "--add", "policy=0"],
    )]
    assert said == ["Item 1: 1 added, 0 removed, 1 already as asked.",
                    "Item 1: 0 added, 0 removed, 1 already as asked.",
                    "Item 1: 1 added, 0 removed."]
    with db.open_store(store_path) as store:
        row = store.query("SELECT policy, policy_score FROM items_tagged WHERE id = 1")[0]
    assert (row["policy"], row["policy_score"]) == ("0", 0.0)


def test_analyst_lexicon_files_change_the_tags(stiwatch, store_path, tmp_path):
    no_model = str(tmp_path / "none")
    Path(no_model).mkdir()  # a folder without a model: the lexicon rules
    stiwatch("-q", "classify", "--model-dir", no_model)
    assert ("domain", "biotech_health") not in tags(store_path, 2)
    assert ("area", "research_security") not in tags(store_path, 1)
    assert ("country", "NZ") not in tags(store_path, 2)

    domains = tmp_path / "my_domains.toml"
    domains.write_text('version = "d1"\n[domain.biotech_health]\nstrong = ["octopus"]\n')
    areas = tmp_path / "my_areas.toml"
    areas.write_text('[area.research_security]\nstrong = ["quantum strategy"]\n')
    places = tmp_path / "my_places.toml"
    places.write_text('[country.NZ]\nplaces = ["seamount"]\nagencies = ["Octopus Institute"]\n')
    env = {"STIWATCH_DOMAINS_LEXICON": str(domains), "STIWATCH_AREAS_LEXICON": str(areas),
           "STIWATCH_PLACES_LEXICON": str(places)}
    with db.open_store(store_path) as store:
        store.save_items([{"url": "https://wire.example/5", "source_id": "wire",
                           "title": "Octopus Institute opens a deep-sea lab",
                           "body": "The lab will study animals found near a seamount."}])
    result = stiwatch("classify", "--all", "--model-dir", no_model, env=env)
    assert result.exit_code == 0, result.output
    assert tags(store_path, 2)[("domain", "biotech_health")] == "rules"
    assert tags(store_path, 1)[("area", "research_security")] == "rules"
    assert tags(store_path, 5)[("country", "NZ")] == "gazetteer"
    with db.open_store(store_path) as store:
        version = store.tags_of(2)[0]["model_version"]
    assert "+my_domains-d1" in version and "+my_areas" in version

    broken = tmp_path / "broken.toml"
    broken.write_text("[domain.astrology]\nterms = ['stars']\n")
    result = stiwatch("classify", "--all", "--model-dir", no_model,
                      env={"STIWATCH_DOMAINS_LEXICON": str(broken)})
    assert result.exit_code == 2
    assert "broken.toml" in result.output and "Traceback" not in result.output


def _phd_brief(tmp_path: Path) -> Path:
    """The test brief on PhD scholarships (human_resources), alone in a file."""
    briefs = FIXTURES / "classifier" / "news_briefs.jsonl"
    line, = [line for line in briefs.read_text().splitlines() if '"news-07"' in line]
    brief = tmp_path / "brief.jsonl"
    brief.write_text(line + "\n")
    return brief


def _human_resources(stiwatch, brief: Path, models: Path, env: dict[str, str]
                     ) -> tuple[float, str]:
    result = stiwatch("evaluate", str(brief), "--json", "--model-dir", str(models), env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    return report["areas"]["per_label"]["human_resources"]["f1"], report["model_version"]


@pytest.fixture
def stip_only_model(stiwatch, tmp_path_factory: pytest.TempPathFactory
                    ) -> tuple[Path, int, str]:
    """The folder, exit code and stdout of `stiwatch -q train` on the small STIP export and
    the negatives, without the bundled news and with no store: trained once for the session
    (seconds of CPU), then only read (`evaluate`) by the tests that take it."""
    def train(folder: Path) -> None:
        trained = stiwatch("-q", "train", "--stip", str(SMALL), "--negatives", str(NEGATIVES),
                           "--no-bundled-news", "--model-dir", str(folder / "models"))
        (folder / "result.json").write_text(json.dumps([trained.exit_code, trained.stdout]))

    folder = made_once(tmp_path_factory, "test_classifier_cli-stip-only", train)
    exit_code, stdout = json.loads((folder / "result.json").read_text())
    return folder / "models", exit_code, stdout


def test_area_rules_override_setting_decides_between_rules_and_model(stiwatch, tmp_path,
                                                                     stip_only_model):
    """A brief the small STIP-only model gives `society` only, while the cue rules are certain
    of `human_resources` (PhD scholarships): tagged by default, left to the model above 1."""
    models, exit_code, stdout = stip_only_model
    assert exit_code == 0, stdout
    brief = _phd_brief(tmp_path)

    f1, version = _human_resources(stiwatch, brief, models, {})
    assert f1 == 1.0 and "+override" not in version
    f1, version = _human_resources(stiwatch, brief, models,
                                   {"STIWATCH_AREA_RULES_OVERRIDE": "1.01"})
    assert f1 == 0.0 and "+override-1.01+" in version

    bad = stiwatch("evaluate", str(brief), "--model-dir", str(models),
                   env={"STIWATCH_AREA_RULES_OVERRIDE": "-1"})
    assert bad.exit_code == 2
    assert "area_rules_override" in bad.output and "at least 0" in bad.output


def test_train_folds_in_labelled_news(stiwatch, tmp_path, stip_only_model):
    """The hand-labelled news shipped with stiwatch (on by default) and --labelled files teach
    the model news phrasing: with them the model itself, not the rules, finds the PhD brief's
    human_resources."""
    off = {"STIWATCH_AREA_RULES_OVERRIDE": "1.01"}  # the model's areas alone
    brief = _phd_brief(tmp_path)
    (plain, exit_code, stdout), news = stip_only_model, tmp_path / "news"
    assert exit_code == 0, stdout
    assert "0 labelled news and no analyst corrections (none in the store)" in stdout
    result = stiwatch("train", "--stip", str(SMALL), "--negatives", str(NEGATIVES),
                      "--model-dir", str(news), "--json")
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    from stiwatch.demo.site import labelled_records
    bundled = (FIXTURES.parent.parent / "classifier" / "data" / "news_labelled.jsonl")
    assert meta["training_counts"]["labelled"] == (
        len(labelled_records()) + len(bundled.read_text().splitlines()))
    assert meta["training_data"]["bundled_news"] is True
    assert _human_resources(stiwatch, brief, plain, off)[0] == 0.0
    assert _human_resources(stiwatch, brief, news, off)[0] == 1.0

    mine = tmp_path / "mine.jsonl"
    mine.write_text("".join(json.dumps(record) + "\n" for record in labelled_records()[:5]))
    result = stiwatch("train", "--stip", str(SMALL), "--negatives", str(NEGATIVES),
                      "--no-bundled-news", "--labelled", str(mine), "--model-dir", str(news),
                      "--json")
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    assert meta["training_counts"]["labelled"] == 5
    assert meta["training_data"]["labelled_files"][0]["file"] == "mine.jsonl"

    # Without --negatives the demo's few non-policy articles stay out: relevance is the rules'.
    result = stiwatch("-q", "train", "--stip", str(SMALL), "--model-dir", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert "no negatives" in result.output
    # ... and says that --negatives is also what brings the bundled news's non-policy items in
    assert "also brings in the bundled news's non-policy items" in result.output

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "x", "text": "y", "policy": 1, "areas": ["astrology"]}\n')
    result = stiwatch("train", "--stip", str(SMALL), "--labelled", str(bad),
                      "--model-dir", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert f"{bad}: line 1: unknown area 'astrology'" in result.output
    assert not (tmp_path / "x" / "model.json").exists()

    # evaluate's validation, line for line
    for line, message in [('{"id": 5, "title": "x", "text": "y", "policy": 1}',
                           "line 1: id must be a string, not 5"),
                          ('{"headline": "x", "body": "y", "policy": 1}',
                           "line 1: needs a title or a text (or both)")]:
        bad.write_text(line + "\n")
        result = stiwatch("train", "--stip", str(SMALL), "--labelled", str(bad),
                          "--model-dir", str(tmp_path / "x"))
        assert result.exit_code == 2
        assert result.output.splitlines()[-1] == f"Error: {bad}: {message}"
        assert not (tmp_path / "x").exists()


def test_area_rules_override_default_is_the_classifiers():
    from classifier.rules import RULES_CERTAIN
    from stiwatch.config import BY_NAME

    assert BY_NAME["area_rules_override"].default == RULES_CERTAIN


def test_a_region_that_stays_reads_as_the_analysts_country_it_now_comes_from(db_path):
    """An analyst's KR replacing the gazetteer's JP keeps east_asia, now as the analyst's
    (score 1), also after the next classify."""
    from classifier.places import region_map

    with db.open_store(db_path) as store:
        store.sync_sources([{"id": "s", "name": "S", "kind": "feed", "url": "https://s.org/f"}])
        [(item_id, _)] = store.save_items([{"url": "https://s.org/1", "source_id": "s"}])
        machine = [{"facet": "country", "value": "JP", "score": 0.931, "method": "gazetteer"},
                   {"facet": "region", "value": "east_asia", "score": 0.931,
                    "method": "gazetteer"}]
        store.save_classifications([(item_id, machine)], "m1", region_of=region_map())
        store.analyst_label(item_id, remove=[("country", "JP")], add=[("country", "KR")],
                            region_of=region_map())
        expected = [("country", "KR", 1.0, "analyst"), ("region", "east_asia", 1.0, "analyst")]
        assert [(t["facet"], t["value"], t["score"], t["method"])
                for t in store.tags_of(item_id)] == expected
        store.save_classifications([(item_id, machine)], "m2", region_of=region_map())
        assert [(t["facet"], t["value"], t["score"], t["method"])
                for t in store.tags_of(item_id)] == expected


def test_correcting_a_near_duplicate_says_that_readers_see_its_originals_tags(
        stiwatch, store_path, classified_store):
    """Item 4 is a copy of item 1: its correction stays its own, but digests and trends read
    the original's tags, and the analyst is told which item to correct instead."""
    result = stiwatch("tag", "4", "--add", "area=open_science")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "Note: item 4 is a near-duplicate of item 1: digests and trends read item 1's tags, "
        "so correct item 1 to change what readers see (its copies inherit that)."]
    assert tags(store_path, 4)[("area", "open_science")] == "analyst"
    result = stiwatch("tag", "1", "--add", "area=open_science")
    assert result.exit_code == 0 and "Note" not in result.output


def test_an_unread_language_from_a_ministry_is_policy_by_its_source(stiwatch, db_path):
    """The model reads English only, the lexicons English and some Chinese, Japanese, Korean,
    German, French and Spanish: a Polish ministry's item was never policy-relevant, so no
    such item reached a digest. Its source (an STI ministry or funding agency) now says it
    is; a news source's, or an English item's, does not. A German or Japanese ministry's item
    is read by the rules."""
    polish = ("Ministerstwo przeznaczy 200 milionów złotych na nowe centra obliczeń na "
              "uczelniach. Regulamin konkursu opublikowano dziś.")
    bmbf = ("Das Bundesministerium fördert neue Quantencomputer-Zentren an Hochschulen mit "
            "200 Millionen Euro. Die Förderrichtlinie wurde heute veröffentlicht.")
    mext = "文部科学省は、量子技術の研究拠点を新たに整備すると発表した。"
    with db.open_store(db_path) as store:
        store.sync_sources([
            {"id": "mein", "name": "MNiSW", "kind": "feed", "url": "https://mein.example/f",
             "country": "PL", "language": "pl", "org_type": "ministry"},
            {"id": "bmbf", "name": "BMBF", "kind": "feed", "url": "https://bmbf.example/f",
             "country": "DE", "language": "de", "org_type": "ministry"},
            {"id": "mext", "name": "MEXT", "kind": "feed", "url": "https://mext.example/f",
             "country": "JP", "language": "ja", "org_type": "ministry"},
            {"id": "gazeta", "name": "Gazeta", "kind": "feed", "url": "https://g.example/f",
             "country": "PL", "language": "pl", "org_type": "news"},
            {"id": "bmbf-en", "name": "BMBF (English)", "kind": "feed",
             "url": "https://bmbf.example/en", "country": "DE", "language": "en",
             "org_type": "ministry"},
        ])
        store.save_items([
            {"url": "https://mein.example/1", "source_id": "mein", "language": "pl",
             "title": "Nowe centra obliczeniowe", "body": polish},
            {"url": "https://mext.example/2", "source_id": "mext", "language": "ja",
             "title": "量子技術の研究拠点を整備", "body": mext},
            {"url": "https://g.example/3", "source_id": "gazeta", "language": "pl",
             "title": "Nowe centra obliczeniowe", "body": polish + " (Gazeta)"},
            {"url": "https://bmbf.example/en/4", "source_id": "bmbf-en", "language": "en",
             "title": "Minister visits a school", "body": "The minister met pupils today."},
            {"url": "https://bmbf.example/5", "source_id": "bmbf", "language": "de",
             "title": "Neue Zentren für Quantencomputing", "body": bmbf},
        ])
    assert stiwatch("classify", "--no-model").exit_code == 0
    assert tags(db_path, 1)[("policy", "1")] == "source"
    assert tags(db_path, 1)[("country", "PL")] == "source"
    assert tags(db_path, 2)[("policy", "1")] == "rules"
    assert tags(db_path, 2)[("domain", "quantum")] == "rules"
    assert ("policy", "0") in tags(db_path, 3)  # a newspaper's item is not policy by its source
    assert tags(db_path, 4)[("policy", "0")] == "rules"  # English: the rules read it
    assert tags(db_path, 5)[("policy", "1")] == "rules"
    assert tags(db_path, 5)[("domain", "quantum")] == "rules"


def test_negatives_saved_without_their_charset_are_read_as_the_crawler_reads_them(tmp_path):
    """A feed saved from a Japanese site (Shift_JIS, EUC-JP) names its charset only in the
    HTTP header it came with; feedparser alone took it for a Western encoding, and the model
    learnt what is not policy from titles of mojibake."""
    from stiwatch.commands.classify import _feed_negatives

    titles = ["新型スマートフォンの発売日が決定", "プロ野球の開幕戦は雨で中止"]
    items = "".join(f"<item><title>{t}</title><link>https://example.jp/{n}</link>"
                    f"<description>{t}。詳しくは来週。</description></item>"
                    for n, t in enumerate(titles))
    feed = f"<?xml version='1.0'?><rss version='2.0'><channel><title>ニュース</title>{items}" \
           "</channel></rss>"
    for encoding in ("shift_jis", "euc-jp"):
        path = tmp_path / f"{encoding}.xml"
        path.write_bytes(feed.encode(encoding))
        examples, files = _feed_negatives((str(path),), lambda message: None)
        assert [e.title for e in examples] == titles and files == [str(path)]


def test_a_huge_body_is_read_only_up_to_the_documented_cap(db_path):
    """The crawler keeps pages of up to 10 MB: classify reads at most MAX_TEXT_CHARS of each
    text, so a batch of them holds megabytes, not gigabytes, and the text's start decides."""
    import tracemalloc

    from classifier.pipeline import MAX_TEXT_CHARS, Classifier, classify_store

    filler = "Lorem ipsum dolor sit amet. " * (3_000_000 // 28)
    with db.open_store(db_path) as store:
        store.sync_sources([{"id": "wire", "name": "Wire", "kind": "feed",
                             "url": "https://wire.example/f"}])
        store.save_items([{"url": f"https://wire.example/{n}", "source_id": "wire",
                           "title": "Annual report", "body": POLICY_TEXT + filler + OTHER_TEXT}
                          for n in range(10)])
    classifier = Classifier.load(None)
    with db.open_store(db_path) as store:
        tracemalloc.start()
        try:
            report = classify_store(store, classifier)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert report.classified == 10
        assert peak < 10 * MAX_TEXT_CHARS * 4  # the ten 3 MB bodies alone are 30 MB
    found = tags(db_path, 1)
    assert ("country", "JP") in found and ("policy", "1") in found
    assert ("country", "CL") not in found  # named only after the cap


def test_undo_takes_corrections_back_and_the_next_classify_decides_again(stiwatch, store_path,
                                                                         classified_store):
    """A mistaken --add or --remove is not stuck: --undo drops the verdict (from training
    too), the copy follows at once, and the next `classify` tags the item as if the analyst
    had never touched those tags."""
    machine = tags(store_path, 1)
    assert machine[("country", "JP")] == "gazetteer"
    assert ("area", "research_security") not in machine
    stiwatch("-q", "tag", "1", "--add", "area=research_security", "--remove", "country=JP",
             "--add", "domain=space")
    assert ("region", "east_asia") not in tags(store_path, 1)

    result = stiwatch("tag", "1", "--undo", "area=research_security", "--undo", "country=jp")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "Item 1: undid 2 analyst corrections (added area=research_security, removed "
        "country=JP): the next `stiwatch classify` (or `run`) tags the item anew.")
    assert "Removed by an analyst" not in result.output
    now = tags(store_path, 1)
    assert ("area", "research_security") not in now and now[("domain", "space")] == "analyst"
    assert tags(store_path, 4) == now  # the copy, at once
    with db.open_store(store_path) as store:
        assert store.analyst_labelled_items()[0]["labels"] == [("domain", "space", 1)]
        assert store.unclassified_ids() == [1, 4]

    result = stiwatch("classify", "--no-model")
    assert "2 items classified" in result.output
    after = tags(store_path, 1)
    assert after == {**machine, ("domain", "space"): "analyst"}  # JP and east_asia are back
    assert tags(store_path, 4) == after

    # a whole facet, and the relevance verdict; --json lists what was taken back
    stiwatch("-q", "tag", "1", "--add", "policy=0", "--add", "domain=quantum")
    shown = json.loads(stiwatch("tag", "1", "--undo", "domain", "--undo", "policy",
                                "--json").stdout)
    assert shown["undone"] == [{"facet": "domain", "value": "quantum", "verdict": 1},
                               {"facet": "domain", "value": "space", "verdict": 1},
                               {"facet": "policy", "value": "0", "verdict": 1}]
    assert stiwatch("-q", "classify", "--no-model").exit_code == 0
    assert tags(store_path, 1) == machine
    with db.open_store(store_path) as store:
        assert store.analyst_labelled_items() == []


def test_undo_says_when_there_is_nothing_to_undo(stiwatch, store_path, classified_store):
    before = tags(store_path, 2)
    result = stiwatch("tag", "2", "--undo", "area=open_science")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "Item 2: nothing to undo for area=open_science: no analyst correction of it (it has "
        "no analyst corrections).")
    stiwatch("-q", "tag", "2", "--remove", "country=US")
    result = stiwatch("tag", "2", "--undo", "country=JP", "--undo", "domain")
    assert result.output.splitlines()[0] == (
        "Item 2: nothing to undo for country=JP, domain: no analyst correction of them (its "
        "corrections: removed country=US).")
    assert json.loads(stiwatch("tag", "2", "--undo", "area", "--json").stdout)["undone"] == []
    with db.open_store(store_path) as store:  # nothing written: still classified
        assert store.unclassified_ids() == []
    result = stiwatch("tag", "2", "--undo", "country=US", "--undo", "area")
    assert result.output.splitlines()[:2] == [
        "Item 2: undid 1 analyst correction (removed country=US): the next `stiwatch "
        "classify` (or `run`) tags the item anew.",
        "Item 2: nothing to undo for area: no analyst correction of it (it has no analyst "
        "corrections)."]
    assert tags(store_path, 2) == before


def test_undo_then_correct_in_one_command(stiwatch, store_path, classified_store):
    """--undo runs first: the countries start afresh with the analyst's one."""
    stiwatch("-q", "tag", "1", "--add", "country=US", "--add", "country=FR")
    result = stiwatch("tag", "1", "--undo", "country", "--add", "country=KR")
    assert result.exit_code == 0, result.output
    assert "undid 2 analyst corrections (added country=FR, added country=US)" in result.output
    assert "Item 1: 1 added, 0 removed." in result.output
    countries = {v: m for (f, v), m in tags(store_path, 1).items() if f in ("country", "region")}
    assert countries == {"JP": "gazetteer", "KR": "analyst", "east_asia": "analyst"}
    assert tags(store_path, 4) == tags(store_path, 1)


@pytest.mark.parametrize("args, message", [
    (["1", "--undo", "areas"], "Error: --undo 'areas': unknown facet 'areas' (expected policy, "
     "area, domain, country or region)\n"),
    (["1", "--undo", "area=open-science"], "Error: --undo 'area=open-science': unknown area "
     "'open-science' (did you mean 'open_science'?)\n"),
    (["1", "--undo", "area="], "expected FACET or FACET=VALUE"),
    (["1", "--undo", "country=us", "--add", "country=US"], "country=US is both undone and added"),
    (["99", "--undo", "area=governance"], "no item with id 99"),
    # one transaction: the undo is rolled back with the refused correction
    (["1", "--undo", "country", "--add", "policy=1", "--add", "policy=0"],
     "policy takes one verdict"),
])
def test_undo_errors(stiwatch, store_path, classified_store, args, message):
    stiwatch("-q", "tag", "1", "--add", "country=US")
    before = tags(store_path, 1)
    result = stiwatch("tag", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert tags(store_path, 1) == before


def test_undo_takes_back_a_label_the_taxonomy_no_longer_has(stiwatch, store_path):
    """A correction made under an older taxonomy can still be taken back; a value neither the
    taxonomy nor the item's corrections know is refused as misspelt."""
    with db.open_store(store_path) as store, store.write():
        store.conn.execute("INSERT INTO analyst_labels (item_id, facet, value, verdict,"
                           " labelled_at) VALUES (1, 'area', 'astrology', 1, ?)",
                           ["2025-01-01T00:00:00Z"])
    result = stiwatch("tag", "1", "--undo", "area=astrology")
    assert result.exit_code == 0, result.output
    assert "undid 1 analyst correction (added area=astrology)" in result.output
    assert stiwatch("tag", "1", "--undo", "area=astrology").exit_code == 2


def _tag_while_classifying(path: Path, after: str, item_id: int,
                           add: list[tuple[str, str]]) -> dict:
    """`classify` on one connection, and an analyst's `tag` on another connection to the same
    file committed once classify has run a statement containing ``after`` and before its
    next write transaction: the moment between reading a batch and writing its tags."""
    from classifier.pipeline import Classifier, classify_store
    from classifier.places import region_map

    with db.open_store(path) as running, db.open_store(path) as analyst:
        state = {"read": False, "tagged": False}

        def trace(sql: str) -> None:
            if after in sql:
                state["read"] = True
            elif sql.startswith("BEGIN IMMEDIATE") and state["read"] and not state["tagged"]:
                state["tagged"] = True
                analyst.analyst_label(item_id, add=add, region_of=region_map())

        running.conn.set_trace_callback(trace)
        try:
            report = classify_store(running, Classifier.load(None))
        finally:
            running.conn.set_trace_callback(None)
    assert state["tagged"]
    return report.as_dict()


def test_a_correction_made_while_classify_runs_keeps_its_mark(stiwatch, store_path):
    """The analyst's policy=1 committed between classify's read of the verdicts and its write
    was overwritten by a classified_at for tags made without it: the item was never given
    areas, and `classify` found nothing left to do."""
    with db.open_store(store_path) as store:
        [(brief, _)] = store.save_items([
            {"url": "https://wire.example/5", "source_id": "wire",
             "title": "Draft declaration on trusted research",
             "body": "A draft text on trusted research was circulated to delegates."}])
    report = _tag_while_classifying(store_path, "FROM analyst_labels WHERE facet = 'policy'",
                                    brief, [("policy", "1")])
    assert tags(store_path, brief) == {("policy", "1"): "analyst"}
    result = stiwatch("classify", "--no-model")
    assert "1 item classified" in result.output, result.output
    assert tags(store_path, brief)[("area", "research_security")] == "rules"
    assert report["changed"] == 1


def test_a_copy_keeps_its_mark_when_its_original_is_corrected_while_classify_copies(
        stiwatch, store_path, classified_store):
    """Classify read item 1's tags for its copy (item 4), the analyst then corrected item 1
    (the copy took the new tags at once), and classify wrote the old ones over them."""
    with db.open_store(store_path) as store, store.write():
        store.conn.execute(
            "UPDATE item_classification SET classified_at = NULL WHERE item_id = 4")
    report = _tag_while_classifying(store_path, "FROM tags WHERE item_id IN", 1,
                                    [("area", "research_security")])
    assert tags(store_path, 4) == tags(store_path, 1)
    assert tags(store_path, 4)[("area", "research_security")] == "analyst"
    result = stiwatch("classify", "--no-model")
    assert "(1 duplicate inherited its original's tags)" in result.output, result.output
    assert tags(store_path, 4) == tags(store_path, 1)
    assert report["changed"] == 1 and report["inherited"] == 0


def test_classify_by_the_rules_alone_does_not_import_scikit_learn(store_path, tmp_path):
    """Without a model the lexicon rules classify, and scikit-learn, which only the saved
    models need, stays unimported: it cost every rules-only `classify`, `run` and `demo` 1.4 s
    of start-up."""
    import subprocess
    import sys

    (tmp_path / "no-model").mkdir()
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "stiwatch", "--db",
                           str(store_path), "classify", "--json", "--model-dir",
                           str(tmp_path / "no-model")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["classified"] > 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "classifier.pipeline" in imported  # the check reads what was imported
    assert not {name for name in imported if name.split(".")[0] in ("sklearn", "scipy")}


def test_classify_with_nothing_new_and_status_do_not_import_scikit_learn(stiwatch, store_path,
                                                                         tmp_path):
    """`classify` with nothing new was made to skip the classifier (4.8 s -> 1.4 s, 175 ->
    85 MB); the digest's event grouping then imported scikit-learn with every command, so
    each one, `status` too, paid its 1.5 s and 90 MB again."""
    import subprocess
    import sys

    (tmp_path / "no-model").mkdir()
    assert stiwatch("classify", "--model-dir", str(tmp_path / "no-model")).exit_code == 0
    for command in (["classify", "--model-dir", str(tmp_path / "no-model")], ["status"]):
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "stiwatch",
                               "--db", str(store_path), *command],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                    if line.startswith("import time:")}
        assert "stiwatch.cli" in imported  # the check reads what was imported
        assert not {name for name in imported if name.split(".")[0] in ("sklearn", "scipy")}, \
            command


def test_train_lists_the_bad_lines_of_every_labelled_file(stiwatch, tmp_path):
    """Each file's problems, all at once, as `evaluate` lists a file's; nothing is trained."""
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text('{"title": "x", "policy": 1, "areas": ["astrology"]}\n'
                     '{"title": "x", "policy": "yes"}\n')
    second.write_text('{"headline": "x", "policy": 1}\n')
    result = stiwatch("train", "--stip", str(SMALL), "--labelled", str(first), "--labelled",
                      str(second), "--model-dir", str(tmp_path / "x"))
    assert result.exit_code == 2
    lines = result.output.splitlines()[-3:]
    assert lines[0].startswith(f"Error: {first}: line 1: unknown area 'astrology' (expected ")
    assert lines[1:] == [f"Error: {first}: line 2: policy must be 0 or 1, not 'yes'",
                         f"Error: {second}: line 1: needs a title or a text (or both)"]
    assert not (tmp_path / "x").exists()
