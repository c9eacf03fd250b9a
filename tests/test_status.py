"""`stiwatch status`: runs, weekly volume, failing sources, deliveries owed, version, size."""

from __future__ import annotations

import json

import analysts_store
import db


def add_deliveries(db_path):
    with db.open_store(db_path) as store:
        store.save_subscribers([{"email": "a@example.org"}, {"email": "b@example.org"}])
        now = analysts_store.ago(0)
        with store.write():
            for email, status, error in (("a@example.org", "failed", "550 mailbox unavailable"),
                                         ("b@example.org", "sent", None)):
                store.conn.execute(
                    "INSERT INTO deliveries (subscriber, period, status, attempts, last_error,"
                    " updated_at) VALUES (?, '2026-W47', ?, 1, ?, ?)", [email, status, error, now])


def test_status_table(stiwatch, db_path):
    analysts_store.build(db_path)
    add_deliveries(db_path)
    with db.open_store(db_path) as store:
        run = store.start_run("run --digest")
        store.finish_run(run, "failed", 1, [{"step": "crawl", "status": "ok"},
                                            {"step": "digest", "status": "failed"}])
    result = stiwatch("status")
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"Database: {db_path}" in out and f"schema version {db.LATEST_VERSION}" in out
    assert "7 items" in out
    # The last scheduled run with its steps, and the last crawl run with its counters.
    line = next(l for l in out.splitlines() if "run --digest" in l)
    assert "failed" in line and "crawl:ok digest:failed" in line
    assert "partial" in out and "new=7" in out
    # Eight weeks, oldest first; this week holds the three newest originals.
    weeks = out.split("Items per week")[1].split("Failing sources")[0].strip().splitlines()[1:]
    assert len(weeks) == 9 and weeks[0].startswith("WEEK")
    cells = [line.split() for line in weeks[1:]]
    # Every original but none of the near-duplicate copies; the policy ones among them.
    assert sum(int(c[2]) for c in cells) == 6 and sum(int(c[3]) for c in cells) == 5
    assert sum(int(c[4]) for c in cells) == 1
    # The failing source, its error and how long it has failed (3 days).
    assert "Failing sources: 1" in out
    line = next(l for l in out.splitlines() if l.startswith("ec-rtd"))
    assert "HTTP 503 Service Unavailable" in line and " 2 " in line and "3d 0h" in line
    # Owed: the failed delivery, not the sent one.
    assert "Deliveries owed: 1" in out
    assert "a@example.org" in out and "550 mailbox unavailable" in out
    assert "b@example.org" not in out


def test_status_json(stiwatch, db_path):
    ids = analysts_store.build(db_path)
    add_deliveries(db_path)
    result = stiwatch("status", "--json")
    report = json.loads(result.output)
    assert report["schema_version"] == db.LATEST_VERSION
    assert report["size_bytes"] > 0 and report["items"] == len(ids)
    assert report["runs"][0]["status"] == "partial"
    assert report["runs"][0]["stats"] == {"new": 7, "errors": 1}
    assert len(report["weeks"]) == 8
    assert sum(w["items"] for w in report["weeks"]) == 6  # copy folded
    assert sum(w["duplicates"] for w in report["weeks"]) == 1
    [failing] = report["failing_sources"]
    assert failing["id"] == "ec-rtd" and failing["consecutive_failures"] == 2
    assert 3 * 86400 - 120 < failing["failing_for_s"] < 3 * 86400 + 120
    assert [(d["subscriber"], d["status"]) for d in report["deliveries_owed"]] == [
        ("a@example.org", "failed")]


def test_a_failing_source_taken_out_of_the_registry_is_no_longer_listed(stiwatch, db_path):
    """A source dropped from sources.toml is disabled (its items stay) and never crawled again:
    its last failure is nothing for the operator to fix, so status stops listing it."""
    analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        store.sync_sources([s for s in analysts_store.SOURCES if s["id"] != "ec-rtd"])
    report = json.loads(stiwatch("status", "--json").output)
    assert report["failing_sources"] == []
    assert "ec-rtd" not in stiwatch("status").output


def test_status_of_a_fresh_store(stiwatch, db_path):
    db.open_store(db_path).close()
    result = stiwatch("status")
    assert result.exit_code == 0
    assert "none yet (schedule `stiwatch run`" in result.output
    assert "none yet (run `stiwatch crawl`" in result.output and "Failing sources: none" in result.output
    assert "Deliveries owed: none" in result.output


def test_status_without_a_database(stiwatch):
    result = stiwatch("status")
    assert result.exit_code == 2 and "no such database" in result.output


def test_a_delivery_the_operator_cancelled_is_not_owed(stiwatch, db_path):
    """`digest resolve --cancel` settles a delivery: status stops listing it as owed."""
    analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        store.save_subscribers([{"email": "a@example.org"}])
        store.ensure_deliveries("2026-W40", ["a@example.org"])
    assert "Deliveries owed: 1" in stiwatch("status").output
    result = stiwatch("digest", "resolve", "a@example.org", "--week", "2026-W40", "--cancel")
    assert result.exit_code == 0, result.output
    assert "Deliveries owed: none" in stiwatch("status").output
    assert json.loads(stiwatch("status", "--json").output)["deliveries_owed"] == []


def test_weeks_are_those_of_the_timezone_setting(stiwatch, db_path):
    """Status counts a week as the digest and `stiwatch trends` do: Monday to Sunday in the
    `timezone` setting (Asia/Tokyo by default), not in UTC."""
    from datetime import datetime, time, timedelta, timezone
    from zoneinfo import ZoneInfo

    tokyo = ZoneInfo("Asia/Tokyo")
    today = datetime.now(tokyo).date()
    monday = datetime.combine(today - timedelta(days=today.weekday()), time(), tokyo)
    with db.open_store(db_path) as store:
        store.sync_sources(analysts_store.SOURCES[:1])
        store.save_items([{"url": "https://mext-news.example/a", "source_id": "mext-news",
                           "title": "Budget", "date_source": "feed",
                           "published_at": (monday + timedelta(minutes=30)).astimezone(
                               timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}])
    weeks = json.loads(stiwatch("status", "--json").output)["weeks"]
    assert weeks[-1]["starts"] == monday.date().isoformat() and weeks[-1]["items"] == 1
    weeks = json.loads(stiwatch("status", "--json", env={"STIWATCH_TIMEZONE": "UTC"}).output)[
        "weeks"]
    assert sum(week["items"] for week in weeks) == 1 and weeks[-1]["items"] == 0
    assert "weeks in Asia/Tokyo" in stiwatch("status").output


def test_sources_that_work_with_a_note_are_listed(stiwatch, db_path):
    """A source that works but needs a look (a moved feed, articles left for the next crawl)
    was shown only by `sources list`: status, where an operator looks first, names it too."""
    analysts_store.build(db_path)
    note = "moved permanently to https://mext.example/rss (update its url in the registry)"
    with db.open_store(db_path) as store:
        store.record_source_result("mext-news", ok=True, flag=note)
    result = stiwatch("status")
    assert result.exit_code == 0, result.output
    assert "Sources that work, with a note from their last crawl: 1" in result.output
    line = next(l for l in result.output.splitlines() if l.startswith("mext-news"))
    assert "moved permanently" in line
    report = json.loads(stiwatch("status", "--json").output)
    assert [(s["id"], s["last_flag"]) for s in report["noted_sources"]] == [("mext-news", note)]
    assert "ec-rtd" not in {s["id"] for s in report["noted_sources"]}  # failing, listed above


def test_a_crawl_runs_counters_that_are_not_zero_are_shown_whole(stiwatch, db_path):
    # A real crawl's stats have a dozen counters: all of them ran past the column's 120
    # characters and the last was cut mid-name ("... unchanged=0 up").
    stats = {"sources": 9, "sources_ok": 0, "sources_failed": 9, "new": 0, "duplicates": 0,
             "updated": 0, "partial": 1, "unchanged": 0, "errors": 9, "queued": 0,
             "robots_forbidden": 0, "paused": 0, "updated_in_place": 0, "redirects": 3}
    with db.open_store(db_path) as store:
        store.finish_crawl_run(store.start_crawl_run(), "failed", stats)
    out = stiwatch("status").output
    line = next(l for l in out.splitlines() if "failed" in l and "sources=" in l)
    shown = line.split()[4:]
    assert shown[:2] == ["sources=9", "new=0"]
    assert sorted(shown[2:]) == ["errors=9", "partial=1", "redirects=3", "sources_failed=9"]
    runs = json.loads(stiwatch("status", "--json").output)["runs"]
    assert runs[0]["stats"] == stats  # every counter, the zeros too


def test_status_counts_the_items_waiting_for_classify(stiwatch, db_path, tmp_path):
    """Freshly crawled items showed in search without tags and nothing said to classify."""
    analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        store.save_items([
            {"url": f"https://mext-news.example/new-{n}", "source_id": "mext-news",
             "title": f"Quantum strategy update {n}", "body": "The ministry announced it.",
             "published_at": analysts_store.ago(0), "language": "en"} for n in range(2)])
    out = stiwatch("status").output
    assert ("Items waiting for `stiwatch classify`: 2\n"
            "  not yet tagged: search shows them without tags, and digests and trends leave "
            "them out; run `stiwatch classify` (`stiwatch run` does it after each crawl)\n"
            ) in out
    assert json.loads(stiwatch("status", "--json").output)["unclassified_items"] == 2

    assert stiwatch("classify", "--no-model").exit_code == 0
    out = stiwatch("status").output
    assert "Items waiting for `stiwatch classify`: none\n" in out and "not yet tagged" not in out
    assert json.loads(stiwatch("status", "--json").output)["unclassified_items"] == 0


def test_status_shows_the_user_agent_and_asks_for_a_contact_when_none_is_set(stiwatch, db_path):
    """A site's owner reads the User-Agent in their logs: without `contact` it names only the
    project, and status says what to set; with it, the operator's address, and no advice."""
    db.open_store(db_path).close()
    bare = stiwatch("status")
    assert bare.exit_code == 0
    assert "Crawler's User-Agent: stiwatch/" in bare.output
    assert "names no one to contact: set `contact`" in bare.output
    assert json.loads(stiwatch("status", "--json").output)["contact_set"] is False

    reachable = stiwatch("status", env={"STIWATCH_CONTACT": "intl@agency.example"})
    assert "(+intl@agency.example)" in reachable.output
    assert "names no one to contact" not in reachable.output
    report = json.loads(stiwatch("status", "--json",
                                 env={"STIWATCH_CONTACT": "intl@agency.example"}).output)
    assert report["contact_set"] is True and "intl@agency.example" in report["user_agent"]
