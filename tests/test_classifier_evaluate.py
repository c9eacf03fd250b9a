"""`stiwatch evaluate`: the metrics object, facets only over the keys present, clear line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifier.evaluate import score
from classifier.pipeline import Result
from conftest import FIXTURES

NEWS = FIXTURES / "classifier" / "news_briefs.jsonl"


def test_numbers_on_a_hand_made_file():
    records = [
        {"id": "a", "title": "", "text": "", "policy": 1,
         "areas": ["governance", "international"], "countries": ["JP"]},
        {"id": "b", "title": "", "text": "", "policy": 1, "areas": ["open_science"],
         "countries": ["EU", "DE"]},
        {"id": "c", "title": "", "text": "", "policy": 0, "areas": [], "countries": []},
    ]
    results = [
        Result(0.9, "model", areas=[("governance", 0.8, "model")],
               countries=[("JP", 0.9, "gazetteer")]),
        Result(0.3, "model", areas=[("open_science", 0.9, "model"), ("governance", 0.6, "rules")],
               countries=[("DE", 0.9, "gazetteer")]),
        # Areas of a policy = 0 line are not scored, whatever is predicted.
        Result(0.7, "model", areas=[("society", 0.9, "model")],
               countries=[("US", 0.5, "source")]),
    ]
    assert score(records, results, "v1") == {
        "n": 3,
        "model_version": "v1",
        "policy": {"precision": 0.5, "recall": 0.5, "f1": 0.5},
        "areas": {
            "micro_f1": 0.6667,
            "macro_f1": 0.5556,  # governance 0.667, international 0, open_science 1
            "per_label": {
                "governance": {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1},
                # never predicted: no precision to speak of
                "international": {"precision": None, "recall": 0.0, "f1": 0.0, "support": 1},
                "open_science": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
            },
        },
        "countries": {"micro_precision": 0.6667, "micro_recall": 0.6667, "micro_f1": 0.6667},
    }


def test_undefined_metrics_are_null_not_zero():
    """Nothing labelled and nothing predicted: no precision, recall or F1 (a file of negatives
    all classified right reported F1 0 beside "no item classified wrong")."""
    records = [
        {"id": "a", "title": "", "text": "", "policy": 0},
        {"id": "b", "title": "", "text": "", "areas": [], "domains": [], "countries": []},
    ]
    results = [Result(0.1, "model"), Result(0.2, "model")]
    assert score(records, results, "v1") == {
        "n": 2,
        "model_version": "v1",
        "policy": {"precision": None, "recall": None, "f1": None},
        "areas": {"micro_f1": None, "macro_f1": None, "per_label": {}},
        "domains": {"micro_f1": None, "macro_f1": None, "per_label": {}},
        "countries": {"micro_precision": None, "micro_recall": None, "micro_f1": None},
    }
    # Only predicted (support 0): no recall, and out of the macro average, which is over the
    # labels that occur in the file; in the micro average it counts.
    records = [{"id": "c", "title": "", "text": "", "policy": 1, "areas": ["governance"]}]
    results = [Result(0.9, "model", areas=[("society", 0.8, "model")])]
    assert score(records, results, "v1")["areas"] == {
        "micro_f1": 0.0,
        "macro_f1": 0.0,
        "per_label": {
            "governance": {"precision": None, "recall": 0.0, "f1": 0.0, "support": 1},
            "society": {"precision": 0.0, "recall": None, "f1": 0.0, "support": 0},
        },
    }


def test_undefined_metrics_read_n_a_in_the_table(stiwatch, tmp_path: Path):
    path = tmp_path / "negatives.jsonl"
    path.write_text(json.dumps({"id": "r1", "title": "Election campaign heats up",
                                "text": "The candidates debated immigration on Tuesday.",
                                "policy": 0, "areas": [], "countries": []}) + "\n", "utf-8")
    result = stiwatch("evaluate", str(path), "--no-model", "--errors", "5")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[lines.index("policy") + 2].split() == ["policy", "n/a", "n/a", "n/a"]
    assert lines[lines.index("countries") + 2].split() == ["countries", "n/a", "n/a", "n/a"]
    assert "no item classified wrong" in lines
    # areas are not scored on a policy = 0 line
    assert not any(line.startswith("areas") for line in lines)

    path.write_text(json.dumps({"id": "r2", "title": "Storm closes schools",
                                "text": "Schools shut as the storm passed.", "areas": []})
                    + "\n", "utf-8")
    result = stiwatch("evaluate", str(path), "--no-model")
    assert "areas: micro-F1 n/a, macro-F1 n/a" in result.output.splitlines()


def test_json_is_exactly_one_object_with_only_the_labelled_facets(stiwatch, tmp_path: Path):
    path = tmp_path / "places.jsonl"
    path.write_text(
        json.dumps({"id": "r1", "title": "Tokyo stocks close higher",
                    "text": "Japanese shares rose in Tokyo on Friday.", "countries": ["JP"]})
        + "\n\n"
        + json.dumps({"id": "r2", "title": "Bundesbank warns on inflation",
                      "text": "Germany's central bank said prices in Germany would rise.",
                      "countries": ["DE"]}) + "\n",
        encoding="utf-8")
    result = stiwatch("evaluate", str(path), "--json", "--no-model")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)  # the whole output is one JSON document
    assert set(report) == {"n", "model_version", "countries"}
    assert report["n"] == 2 and report["model_version"].startswith("rules")
    assert set(report["countries"]) == {"micro_precision", "micro_recall", "micro_f1"}


def test_table_and_json_on_news_briefs(stiwatch):
    result = stiwatch("evaluate", str(NEWS), "--json", "--no-model")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report) == {"n", "model_version", "policy", "areas", "domains", "countries"}
    assert report["n"] == 16
    for facet in ("areas", "domains"):
        assert set(report[facet]) == {"micro_f1", "macro_f1", "per_label"}
        for metrics in report[facet]["per_label"].values():
            assert set(metrics) == {"precision", "recall", "f1", "support"}
    # Plain news written for these tests: the rules alone get most of it right.
    assert report["policy"]["f1"] >= 0.8
    assert report["countries"]["micro_f1"] >= 0.8

    table = stiwatch("evaluate", str(NEWS), "--no-model")
    assert table.exit_code == 0
    assert "16 items, classifier rules" in table.output
    assert "areas: micro-F1" in table.output and "open_science" in table.output
    assert "no trained model" in table.output  # which classifier was used


def test_errors_lists_what_each_wrong_item_missed_and_added(stiwatch, tmp_path: Path):
    right = {"id": "jp", "title": "Japan raises its science budget",
             "text": "The cabinet approved a record amount for universities.", "countries": ["JP"]}
    wrong = {"id": "fr", "title": "Japan raises its science budget",
             "text": "The cabinet approved a record amount for universities.", "countries": ["FR"],
             "policy": 0}
    path = tmp_path / "labelled.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (right, wrong, wrong)) + "\n", "utf-8")
    result = stiwatch("evaluate", str(path), "--json", "--no-model", "--errors", "1")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["errors"] == [{"id": "fr", "title": "Japan raises its science budget",
                                 "policy": {"gold": 0, "predicted": 1},
                                 "countries": {"missing": ["FR"], "extra": ["JP"]}}]
    assert report["wrong"] == 2  # every wrong item counted, the list cut at --errors
    # without --errors the object keeps the keys only
    plain = json.loads(stiwatch("evaluate", str(path), "--json", "--no-model").output)
    assert "errors" not in plain and "wrong" not in plain
    table = stiwatch("evaluate", str(path), "--no-model", "--errors", "5")
    # all of them listed: not "the first 2", which read as if more were left out
    assert "\n2 of 3 items classified wrong:\n" in table.output
    cut = stiwatch("evaluate", str(path), "--no-model", "--errors", "1")
    assert "\n2 of 3 items classified wrong (the first 1):\n" in cut.output
    assert "fr: Japan raises its science budget" in table.output
    assert "  countries: missed FR; added JP" in table.output
    assert "  policy: labelled 0, classified 1" in table.output
    assert "jp:" not in table.output
    right_only = tmp_path / "right.jsonl"
    right_only.write_text(json.dumps(right) + "\n", "utf-8")
    assert "no item classified wrong" in stiwatch("evaluate", str(right_only), "--no-model",
                                                  "--errors", "5").output
    bad = stiwatch("evaluate", str(path), "--no-model", "--errors", "-1")
    assert bad.exit_code == 2 and "--errors" in bad.output


# News written for development by a helper who never saw the lexicons: 50 briefs of 30-44
# words, 40 articles of 118-158 words. The rules alone, no model (deterministic): a lexicon
# change that loses ground on plain news fails here. Scores when added (2026-11-26): policy
# F1 0.949 / 0.939, domains 0.885 / 0.935, countries 0.991 / 0.963. Two more sets of 2025-26
# news by helpers who saw only taxonomy.md (2026-11-27): `fresh`, 60 items of 47-562 words,
# guided domains.toml 2026.11.27 and the country rules of that day (rules alone then: policy
# 0.976, domains 0.869, countries 0.961); `fresh2`, 50 items of 40-650 words, written after
# them and measured only (0.941, 0.921, 0.991). `cjk`, 48 briefs in Japanese, Chinese and
# Korean by a helper who saw only taxonomy.md (2026-11-27), with traps (中国地方, 米 as rice,
# 양자 as bilateral, ウインドウ); it guided places_cjk.toml and the CJK cues (rules alone:
# policy 0.235 -> 1.0, domains 0.174 -> 0.977, countries 0.200 -> 0.926, areas 0.036 -> 0.86);
# `cjk2`, 45 more by another helper, measured first (0.071 -> 0.941, 0.375 -> 0.880,
# 0.269 -> 0.920, areas 0.051 -> 0.677), then used for a second round (CJK sentence ends in
# the lead, Korean words counted by spaces, more cues: 0.981, 0.938, 0.974, 0.865); `cjk3`,
# 45 by a third helper, measured only (before / after that round: policy 0.906 / 0.906,
# domains 0.721 / 0.824, countries 0.901 / 0.962, areas 0.704 / 0.769). `europe`, 48 briefs in
# German, French and Spanish by a helper, measured after the first German/French/Spanish cues
# were written without it (before / after them: policy 0.462 / 0.868, areas 0.369 / 0.513,
# domains 0.512 / 0.612, countries 0.878 both), then used for a second round (1.0, 0.739,
# 0.821, 0.919); `europe2`, 45 more in German, French, Spanish and Italian, measured only
# (before the German/French/Spanish cues / after round one / after round two: policy 0.323 /
# 0.791 / 0.818, areas 0.407 / 0.554 / 0.571, domains 0.513 / 0.591 / 0.667, countries
# 0.842 / 0.842 / 0.854); then Italian cues, written without looking at it: 0.917, 0.630,
# 0.723, 0.854 (its 9 Italian items: policy 0.000 -> 0.889, areas 0.222 -> 0.667).
# `fresh3` and `fresh4`, 50 items each of 69-400 words in English (2026-11-27 14:00), by a helper
# who saw only taxonomy.md, with metonyms, currencies, demonyms and passing mentions; both
# measured first (rules alone: policy 0.972 / 0.972, areas 0.677 / 0.636, domains 0.899 / 0.853,
# countries 0.972 / 0.981), then fresh3 guided a few Swiss place names (countries 0.981);
# fresh4 is measured only. Second round of non-English area cues (areas.toml 2026.11.27.10),
# guided by cjk, cjk2, cjk3, europe and europe2, areas micro-F1 rules alone before / after:
# 0.813 / 0.833, 0.865 / 0.880, 0.769 / 0.878, 0.739 / 0.783, 0.630 / 0.694.
# `i18n_heldout`, 24 briefs (4 each in ja, zh, ko, de, fr, es, 4 of them not policy) written
# from taxonomy.md alone before that round and never used to choose a term: areas
# 0.727 / 0.800; policy 0.974, domains 0.625, countries 0.885 unchanged.
# `en_heldout`, 35 English briefs (30 policy, every area at least 3 times), written from
# taxonomy.md alone before any change of the English-areas review (2026-11-27) and measured
# only, and `en_dev`, 40 more by the same hand to tune on: rules alone areas 0.767 and 0.768
# (with the model trained on the STIP split and the feeds, 0.897 and 0.837).
# `i18n_heldout2`, 30 briefs (5 each in ja, zh, ko, de, fr, es, 2 not policy) written from
# taxonomy.md alone before the third round of non-English domain terms and country cues
# (domains.toml 2026.11.27.11, places_cjk.toml 2026.11.27.8, places_europe.toml 2026.11.27.3,
# places.toml 2026.11.27.4) and measured only, and `i18n_dev2`, 36 more by the same hand that
# guided that round. Rules alone before / after: i18n_heldout2 domains 0.899 / 0.958,
# countries 0.928 / 0.943 (policy 0.982, areas 0.608 unchanged); i18n_dev2 domains 0.853 /
# 0.914, countries 0.914 / 0.976; i18n_heldout domains 0.625 / 0.706, countries 0.885 / 0.906.
# Non-English relevance cues, third round (areas.toml 2026.11.27.13), guided by i18n_dev2, the
# cjk and europe sets and `i18n_dev3` (18 briefs, 3 per language, written after the first of
# these cues and measured on them before being looked at: policy 0.800 -> 0.909): policy F1
# rules alone i18n_dev2 0.842 -> 1.0, i18n_dev3 0.800 -> 1.0, cjk2 0.981 -> 1.0, cjk3 0.906 ->
# 0.926; i18n_heldout2 (0.982) and i18n_heldout (0.974) unchanged.
# `fresh5`, 50 English briefs of 2025-26 (44 policy, every area 5-8 times, 47-90 words) written
# from taxonomy.md alone before the news cuts and areas.toml 2026.11.28.5, measured only: rules
# alone policy 0.977, areas 0.641, domains 0.741, countries 0.944 (the same after).
# `fresh6`, 50 English briefs (70-150 words, 43 with a technology domain) written from taxonomy.md
# before domains.toml 2026.11.28.1, then the domain review's development set: rules alone policy
# 0.968, areas 0.604, domains 0.937 -> 0.946, countries 0.938.
@pytest.mark.parametrize("name, floors", [
    ("news_dev_briefs.jsonl", {"policy": 0.92, "domains": 0.85, "countries": 0.95}),
    ("news_dev_articles.jsonl", {"policy": 0.92, "domains": 0.9, "countries": 0.93}),
    ("news_dev_fresh.jsonl", {"policy": 0.95, "domains": 0.85, "countries": 0.94}),
    ("news_dev_fresh2.jsonl", {"policy": 0.92, "domains": 0.9, "countries": 0.97}),
    ("news_dev_cjk.jsonl", {"policy": 0.95, "domains": 0.9, "countries": 0.9, "areas": 0.8}),
    ("news_dev_cjk2.jsonl", {"policy": 0.95, "domains": 0.9, "countries": 0.95,
                              "areas": 0.85}),
    ("news_dev_cjk3.jsonl", {"policy": 0.9, "domains": 0.8, "countries": 0.93,
                              "areas": 0.85}),
    ("news_dev_europe.jsonl", {"policy": 0.95, "domains": 0.75, "countries": 0.88,
                                "areas": 0.75}),
    ("news_dev_europe2.jsonl", {"policy": 0.88, "domains": 0.68, "countries": 0.82,
                                 "areas": 0.66}),
    ("news_dev_i18n_heldout.jsonl", {"policy": 0.95, "domains": 0.68, "countries": 0.88,
                                     "areas": 0.77}),
    ("news_dev_i18n_heldout2.jsonl", {"policy": 0.95, "domains": 0.93, "countries": 0.92,
                                      "areas": 0.58}),
    ("news_dev_i18n_dev2.jsonl", {"policy": 0.97, "domains": 0.89, "countries": 0.95,
                                  "areas": 0.56}),
    ("news_dev_i18n_dev3.jsonl", {"policy": 0.97, "domains": 0.8, "countries": 0.78,
                                  "areas": 0.68}),
    ("news_dev_fresh3.jsonl", {"policy": 0.95, "domains": 0.87, "countries": 0.96}),
    ("news_dev_fresh4.jsonl", {"policy": 0.95, "domains": 0.83, "countries": 0.96,
                               "areas": 0.6}),
    ("news_dev_en_dev.jsonl", {"policy": 0.95, "domains": 0.68, "countries": 0.96,
                               "areas": 0.74}),
    ("news_dev_en_heldout.jsonl", {"policy": 0.93, "domains": 0.75, "countries": 0.97,
                                   "areas": 0.74}),
    ("news_dev_fresh5.jsonl", {"policy": 0.95, "domains": 0.72, "countries": 0.92,
                               "areas": 0.62}),
    ("news_dev_fresh6.jsonl", {"policy": 0.95, "domains": 0.93, "countries": 0.92,
                               "areas": 0.58}),
])
def test_rules_alone_on_development_news(stiwatch, name, floors):
    result = stiwatch("evaluate", str(FIXTURES / "classifier" / name), "--json", "--no-model")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["policy"]["f1"] >= floors["policy"]
    assert report["domains"]["micro_f1"] >= floors["domains"]
    assert report["countries"]["micro_f1"] >= floors["countries"]
    assert report["areas"]["micro_f1"] >= floors.get("areas", 0.55 if "europe" in name else 0.65)


def test_domains_on_varied_wording_and_near_misses(stiwatch):
    # 60 items by a helper: 30 with technologies in less obvious words ("GPU cluster",
    # "superconducting processor"), 30 near-misses ("potato chips", "starting grid"). They
    # guided domains.toml 2026.11.8 (0.719 -> 0.867), so this guards it, it does not measure it.
    path = FIXTURES / "classifier" / "news_dev_domains.jsonl"
    report = json.loads(stiwatch("evaluate", str(path), "--json", "--no-model").output)
    assert set(report) == {"n", "model_version", "domains"}
    assert report["domains"]["micro_f1"] >= 0.85


def test_research_security_on_its_own_words_and_near_misses(stiwatch):
    # 50 items by a helper: 25 about research security in each country's words, 25 near-misses
    # (cybersecurity, defence R&D, food security...). They guided areas.toml 2026.11.12, so
    # this guards it. When added (rules alone): 24 of 25 found, no false tag.
    path = FIXTURES / "classifier" / "news_dev_security.jsonl"
    report = json.loads(stiwatch("evaluate", str(path), "--json", "--no-model").output)
    security = report["areas"]["per_label"]["research_security"]
    assert security["support"] == 25
    assert security["recall"] >= 0.84 and security["precision"] >= 0.9


def test_rules_alone_on_general_wire_news(stiwatch):
    # 80 wire stories by the same helper: 60 not STI policy (politics, markets, sport, courts,
    # weather...), 20 STI policy. When added (2026-11-26): policy precision 0.952, recall 1.0,
    # countries 0.854; precision 1.0 since "technical" is no science anchor.
    path = FIXTURES / "classifier" / "news_dev_general.jsonl"
    result = stiwatch("evaluate", str(path), "--json", "--no-model")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report) == {"n", "model_version", "policy", "countries"}  # nothing else labelled
    assert report["n"] == 80
    assert report["policy"]["precision"] >= 0.95 and report["policy"]["recall"] >= 0.95
    assert report["countries"]["micro_f1"] >= 0.82


@pytest.mark.parametrize("lines, message", [
    (['{"id": "1", "title": "t", "text": "x", "policy": 1}', '{"id": "2", "title": '],
     "line 2: not valid JSON"),
    (['{"id": "1", "title": "t", "text": "x", "areas": ["open_sci"]}'],
     "line 1: unknown area 'open_sci'"),
    (['{"id": "1", "title": "t", "text": "x", "countries": ["XX"]}'],
     "line 1: unknown country 'XX'"),
    (['{"id": "1", "title": "t", "text": "x", "policy": "yes"}'],
     "line 1: policy must be 0 or 1, not 'yes'"),
    (['["not", "an", "object"]'], "line 1: expected a JSON object"),
    ([""], "no records"),
    (['{"id": 5, "title": "t", "text": "x", "policy": 1}'], "line 1: id must be a string, not 5"),
    (['{"id": "1", "title": "t", "policy": 1}', '{"id": "2", "headline": "t", "body": "x"}'],
     "line 2: needs a title or a text (or both)"),
    (['{"id": "1", "title": "t", "language": "Japanese"}'],
     'line 1: language must be an ISO 639 code such as "ja", not \'Japanese\''),
    (['{"id": "1", "title": "t"}', '{"title": ' + "[" * 100_000 + "]" * 100_000 + "}"],
     "line 2: cannot be read (JSON nested too deeply)"),
    (['{"id": "1", "title": "t"}', '{"title": "t", "policy": ' + "9" * 5000 + "}"],
     "line 2: cannot be read (Exceeds the limit (4300 digits)"),
    # a key a letter off a known one would leave its facet unscored on the line, silently
    (['{"id": "1", "title": "t", "policy": 1, "area": ["governance"]}'],
     "line 1: unknown key 'area' (did you mean 'areas'?)"),
    (['{"id": "1", "title": "t", "Countries": ["JP"]}'],
     "line 1: unknown key 'Countries' (did you mean 'countries'?)"),
], ids=["json", "area", "country", "policy", "object", "empty", "id-number", "no-title-text",
        "language", "deep", "long-number", "key-area", "key-case"])
def test_bad_lines_name_the_line(stiwatch, tmp_path: Path, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = stiwatch("evaluate", str(path), "--no-model")
    assert result.exit_code == 2
    # one line: the file is read before the classifier loads and says which it is
    assert result.output.splitlines()[0].startswith(f"Error: {path}: {message}")
    assert len(result.output.splitlines()) == 1
    assert "Traceback" not in result.output


def test_a_file_not_in_utf8_names_the_line(stiwatch, tmp_path: Path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"title": "t"}\n{"title": "Caf\xe9"}\n')
    result = stiwatch("evaluate", str(path), "--no-model")
    assert result.exit_code == 2
    assert result.output == (f"Error: {path}: line 2: not UTF-8 (byte 0xe9): "
                             "save the file as UTF-8\n")


def test_line_separators_inside_strings_do_not_split_a_line(stiwatch, tmp_path: Path):
    """JSON strings may hold U+2028 or U+0085 unescaped (json.dumps with
    ensure_ascii=False writes them so, and crawled text has them): they do not end a line."""
    path = tmp_path / "separators.jsonl"
    records = [{"id": "a", "title": "Quantum\u2028strategy", "text": "NEL\x85 end",
                "policy": 0},
               {"id": "b", "title": "Japan approves a national quantum strategy",
                "text": "The Cabinet approved the strategy.\r", "policy": 1}]
    path.write_text("\r\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\r\n",
                    encoding="utf-8")
    result = stiwatch("evaluate", str(path), "--no-model", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == 2


def test_a_missing_file_is_the_only_line(stiwatch, tmp_path: Path):
    path = tmp_path / "nope.jsonl"
    result = stiwatch("evaluate", str(path))
    assert result.exit_code == 2
    assert result.output == f"Error: {path}: no such file\n"


def test_areas_are_scored_where_policy_is_1_or_not_given(stiwatch, tmp_path: Path):
    """An areas-only file is scored (no policy key: taken as a policy item); a policy = 0
    line's areas are not. A title alone, a text alone or empty strings are a line."""
    lines = [
        {"id": "a", "title": "European Commission adopts open access rules",
         "areas": ["open_science"]},
        {"id": "b", "text": "The ministry opened a call for doctoral scholarships.",
         "areas": ["human_resources"]},
        {"id": "c", "title": "Storm closes schools", "text": "Schools shut.", "policy": 0,
         "areas": ["governance"]},
        {"id": "d", "title": "", "text": ""},
    ]
    path = tmp_path / "areas_only.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), "utf-8")
    result = stiwatch("evaluate", str(path), "--json", "--no-model")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 4
    per_label = report["areas"]["per_label"]
    assert per_label["open_science"]["support"] == 1
    assert per_label["human_resources"]["support"] == 1
    assert "governance" not in per_label or per_label["governance"]["support"] == 0


def test_every_bad_line_is_listed_at_once(stiwatch, tmp_path: Path):
    """As the sources and subscribers files are: a file fixed one line per run costs a run
    per typo. Each problem names the file and line; the good lines say nothing."""
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "1", "title": "t", "areas": ["open_sci"]}\n'
                    '{"id": "2", "title": \n'
                    '{"id": "3", "title": "fine", "policy": 1}\n'
                    '{"id": 4, "title": "t", "policy": "yes"}\n', encoding="utf-8")
    result = stiwatch("evaluate", str(path), "--no-model")
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"Error: {path}: line 1: unknown area 'open_sci' (did you mean 'open_science'?)",
        f"Error: {path}: line 2: not valid JSON (Expecting value)",
        f"Error: {path}: line 4: id must be a string, not 4",
        f"Error: {path}: line 4: policy must be 0 or 1, not 'yes'",
    ]


def test_a_long_list_of_bad_lines_is_cut_and_counted(stiwatch, tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join('{"title": "t", "countries": ["XX"]}\n' for _ in range(25)),
                    encoding="utf-8")
    result = stiwatch("evaluate", str(path), "--no-model")
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert len(lines) == 21
    assert lines[0].startswith(f"Error: {path}: line 1: unknown country 'XX'")
    assert lines[19].startswith(f"Error: {path}: line 20: unknown country 'XX'")
    assert lines[20] == f"Error: {path}: and 5 more problems (25 in all)"
