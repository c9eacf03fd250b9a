"""Tags: classifier output, analyst corrections that always win, the items_tagged view."""

from __future__ import annotations

import pytest

import db


@pytest.fixture
def store(db_path):
    with db.open_store(db_path) as store:
        store.sync_sources([{"id": "src", "name": "S", "kind": "feed", "url": "https://e.org/f"}])
        store.save_items([{"url": f"https://e.org/{i}", "source_id": "src", "title": f"t{i}"}
                          for i in (1, 2)])
        yield store


def machine(**tags):
    return [{"facet": f, "value": v, "score": 0.8, "method": "model"}
            for f, values in tags.items() for v in values]


def test_classification_replaces_machine_tags_and_marks_items(store):
    assert store.unclassified_ids() == [1, 2]
    store.save_classifications([(1, machine(policy=["1"], area=["governance", "international"]))],
                               "m1")
    store.save_classifications([(1, machine(policy=["1"], area=["open_science"]))], "m2")
    assert [(t["facet"], t["value"], t["model_version"]) for t in store.tags_of(1)] == [
        ("area", "open_science", "m2"), ("policy", "1", "m2")]
    assert store.unclassified_ids() == [2]
    assert store.unclassified_ids(everything=True) == [1, 2]


def test_tags_of_items_reads_many_items_at_once(store):
    store.save_classifications([(1, machine(policy=["1"], area=["governance"])),
                                (2, machine(policy=["0"]))], "m1")
    many = store.tags_of_items([2, 1, 99])
    assert set(many) == {1, 2}  # an item without tags is left out
    assert many[1] == store.tags_of(1) and many[2] == store.tags_of(2)
    assert [t["value"] for t in many[1]] == ["governance", "1"]
    assert store.tags_of(99) == []


def test_analyst_tags_are_never_overwritten_and_removals_stick(store):
    store.save_classifications([(1, machine(policy=["1"], area=["governance"], country=["US"]))],
                               "m1")
    store.analyst_label(1, add=[("area", "open_science")], remove=[("country", "US")])
    store.save_classifications(
        [(1, machine(policy=["1"], area=["governance", "open_science"], country=["US", "JP"]))],
        "m2")
    tags = {(t["facet"], t["value"]): t["method"] for t in store.tags_of(1)}
    assert tags == {("policy", "1"): "model", ("area", "governance"): "model",
                    ("area", "open_science"): "analyst", ("country", "JP"): "model"}


def test_a_batch_keeps_each_items_vetoes_apart_and_a_repeated_item_gets_its_last_tags(store):
    store.analyst_label(1, remove=[("country", "US")])
    store.save_classifications([(1, machine(country=["US", "JP"])),
                                (2, machine(country=["US"])),
                                (2, machine(country=["FR"]))], "m1")
    assert [t["value"] for t in store.tags_of(1)] == ["JP"]  # item 1's veto
    assert [t["value"] for t in store.tags_of(2)] == ["FR"]  # not item 1's veto; the last
    assert store.unclassified_ids() == []
    with pytest.raises(db.InvalidTag):  # one bad tag: nothing of the batch is written
        store.save_classifications([(1, machine(area=["x"])),
                                    (2, [{"facet": "topic", "value": "x", "method": "model"}])],
                                   "m2")
    assert [t["value"] for t in store.tags_of(1)] == ["JP"]


def test_analyst_policy_verdict_replaces_the_models(store):
    store.save_classifications([(1, machine(policy=["1"]))], "m1")
    store.analyst_label(1, add=[("policy", "0")])
    store.save_classifications([(1, machine(policy=["1"]))], "m2")
    assert [(t["value"], t["method"]) for t in store.tags_of(1) if t["facet"] == "policy"] == [
        ("0", "analyst")]
    store.analyst_label(1, add=[("policy", "1")])
    assert [(t["value"], t["method"]) for t in store.tags_of(1) if t["facet"] == "policy"] == [
        ("1", "analyst")]
    [labelled] = store.analyst_labelled_items()
    assert labelled["labels"] == [("policy", "1", 1)]


def test_after_an_analysts_no_a_classification_writes_no_areas(store):
    """The copy path of `classify` gives an item its original's tags whatever its own verdict:
    the store, in the same transaction as the write, keeps areas off an item an analyst said
    is not policy, and keeps the analyst's own."""
    store.analyst_label(1, add=[("policy", "0"), ("area", "society")])
    store.save_classifications([(1, machine(policy=["1"], area=["governance"], domain=["ai"]))],
                               "m1")
    assert {(t["facet"], t["value"]) for t in store.tags_of(1)} == {
        ("policy", "0"), ("area", "society"), ("domain", "ai")}


def test_bad_tags_are_refused(store):
    with pytest.raises(db.InvalidTag, match="unknown facet 'topic'"):
        store.analyst_label(1, add=[("topic", "x")])
    with pytest.raises(db.InvalidTag, match="policy takes 1 or 0"):
        store.analyst_label(1, add=[("policy", "yes")])
    with pytest.raises(db.NoSuchItem):
        store.analyst_label(99, add=[("area", "governance")])
    assert store.tags_of(1) == []


def test_items_tagged_folds_tags_into_columns(store):
    store.save_classifications([(1, machine(policy=["1"], area=["society", "governance"],
                                            domain=["ai"], country=["JP", "EU"],
                                            region=["east_asia", "europe"]))], "m1")
    row = store.query("SELECT * FROM items_tagged WHERE id = 1")[0]
    assert {k: row[k] for k in ("policy", "policy_score", "areas", "domains", "countries",
                                "regions", "source_name")} == {
        "policy": "1", "policy_score": 0.8, "areas": "governance,society", "domains": "ai",
        "countries": "EU,JP", "regions": "east_asia,europe", "source_name": "S"}


def test_labels_sync_only_when_the_taxonomy_changes(store):
    labels = [{"facet": "area", "id": "governance", "name": "Governance"}]
    assert store.sync_labels(labels, 1) is True
    assert store.sync_labels(labels, 1) is False
    assert store.label_names("area") == {"governance": "Governance"}


def test_an_item_whose_text_changes_is_classified_again_keeping_analyst_tags(store):
    store.save_classifications([(1, machine(policy=["1"], area=["governance"]))], "m1")
    store.analyst_label(1, add=[("area", "open_science")])
    # The crawler's rewrite of an unchanged article (crawl --refresh) keeps the tags' date.
    store.save_items([{"url": "https://e.org/1", "source_id": "src", "title": "t1"}])
    assert store.unclassified_ids() == [2]
    store.save_items([{"url": "https://e.org/1", "source_id": "src", "title": "t1",
                       "body": "The site rewrote the article."}])
    assert store.unclassified_ids() == [1, 2]
    # The partial index that `classify` reads from is still the one used.
    plan = " ".join(row["detail"] for row in store.query(
        "EXPLAIN QUERY PLAN SELECT item_id FROM item_classification"
        " WHERE classified_at IS NULL"))
    assert "item_classification_pending" in plan
    assert {(t["facet"], t["value"], t["method"]) for t in store.tags_of(1)} >= {
        ("area", "open_science", "analyst")}


def test_the_copies_of_a_changed_original_take_its_new_tags_too(store):
    store.save_items([{"url": "https://e.org/copy", "source_id": "src", "title": "t1",
                       "duplicate_of": 1}])
    store.save_classifications([(1, machine(policy=["0"])), (2, machine(policy=["0"])),
                                (3, machine(policy=["0"]))], "m1")
    store.save_items([{"url": "https://e.org/1", "source_id": "src", "title": "t1, edited"}])
    assert store.unclassified_ids() == [1, 3]  # the original first, then its copy


@pytest.mark.parametrize("field", ["title", "summary", "body"])
def test_a_partial_item_read_in_full_later_is_classified_again(store, field):
    feed_entry = {"url": "https://e.org/3", "source_id": "src", "title": "Feed title",
                  "summary": "Feed summary", "status": "partial",
                  "fetch_error": "blocked by robots.txt"}
    [(item_id, _)] = store.save_items([feed_entry])
    store.save_classifications([(item_id, machine(policy=["0"]))], "m1")
    store.save_items([feed_entry])  # the next crawl, still blocked: nothing new to read
    assert item_id not in store.unclassified_ids()
    store.save_items([{**feed_entry, "status": "complete", "fetch_error": None,
                       "body": None, field: "Read in full from the page."}])
    assert item_id in store.unclassified_ids()


def test_a_classification_leaves_an_item_marked_since_it_was_read(store, db_path):
    """classify notes classify_marks when it reads a batch: an item a correction or a new
    text (another connection, as another process) marked before the batch is written keeps
    its mark and its current tags; the others are written."""
    read = {row["item_id"]: row["classify_marks"]
            for row in store.query("SELECT item_id, classify_marks FROM item_classification")}
    with db.open_store(db_path) as other:
        other.save_items([{"url": "https://e.org/2", "source_id": "src", "title": "t2",
                           "body": "A longer text, fetched in full."}])
    assert store.save_classifications([(1, machine(policy=["0"])), (2, machine(policy=["0"]))],
                                      "m1", marks=read) == [1]
    assert store.unclassified_ids() == [2] and store.tags_of(2) == []

    read = {row["item_id"]: row["classify_marks"]
            for row in store.query("SELECT item_id, classify_marks FROM item_classification")}
    with db.open_store(db_path) as other:
        other.analyst_label(1, add=[("policy", "1")])
    assert store.save_classifications([(1, machine(policy=["0"])), (2, machine(policy=["0"]))],
                                      "m2", marks=read) == [2]
    assert store.unclassified_ids() == [1]
    assert [(t["value"], t["method"]) for t in store.tags_of(1)] == [("1", "analyst")]
