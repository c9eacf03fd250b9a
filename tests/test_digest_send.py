"""Delivering the digest exactly once: outbox and a real SMTP server on loopback (aiosmtpd),
temporary and permanent refusals, dropped connections, re-runs, and a sender killed with SIGKILL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
import email
from email import policy
import json
import os
from pathlib import Path
import shlex
import signal
import subprocess
import sys

import pytest

import db
from digeststore import G7_MEETING, add, build, story
from mockserver import MockServer
from digest.send import send_week
from digest.weeks import parse_week
from smtpserver import SmtpServer, self_signed_certificate
from stiwatch.config import load_settings

WEEK = parse_week("2026-W47", "Asia/Tokyo")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(db_path):
    s = build(db_path, [
        story("https://x.example/jp", "2026-11-17T01:00:00Z", title="Japan research security",
              areas=["research_security"], countries=["JP"], regions=["east_asia"]),
        story("https://x.example/eu", "2026-11-18T01:00:00Z", source="eu-rtd",
              title="EU open science mandate", areas=["open_science"], countries=["EU"],
              regions=["europe"]),
    ])
    s.save_subscribers([
        {"email": "all@example.org", "name": "All"},
        {"email": "sec@example.org", "areas": ["research_security"]},
        {"email": "eu@example.org", "regions": ["europe"]},
        {"email": "space@example.org", "domains": ["space"]},  # nothing matches this week
    ])
    return s


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


def settings_for(server=None, **extra):
    env = {"STIWATCH_SMTP_STARTTLS": "false"}
    if server is not None:
        env.update(server.settings_env())
    env.update({f"STIWATCH_{k.upper()}": str(v) for k, v in extra.items()})
    return load_settings(environ=env)


def states(store):
    return {row["subscriber"]: row["status"] for row in store.deliveries(WEEK.label)}


def test_outbox_when_no_smtp_host_and_rerun_sends_nothing(store, stiwatch, isolated_env):
    store.close()
    result = stiwatch("digest", "send", "--week", "2026-W47")
    assert result.exit_code == 0, result.output
    assert "3 sent to the outbox, 1 with nothing matching" in result.output
    assert "Nothing matched, nothing sent to: space@example.org" in result.output
    folder = isolated_env / "outbox" / "2026-W47"
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["all@example.org.eml", "eu@example.org.eml", "sec@example.org.eml"]
    msg = email.message_from_bytes((folder / "eu@example.org.eml").read_bytes(),
                                   policy=policy.default)
    assert msg["Subject"] == "STI policy digest 2026-W47 (16–22 Nov 2026): 1 story"
    assert msg["To"] == "eu@example.org"
    body = msg.get_payload()[0].get_payload()[0].get_content()
    assert "EU open science mandate" in body and "Japan research security" not in body
    assert "Why you got this: region: Europe" in body
    assert "1 STI-policy story matched your filters this week" in body
    everything = email.message_from_bytes((folder / "all@example.org.eml").read_bytes(),
                                          policy=policy.default)
    text = everything.get_payload()[0].get_payload()[0].get_content()
    # No filters: nothing to match, and nothing to say under each story.
    assert "matched your filters" not in text and "Why you got this" not in text
    assert "Filters: none (you get everything)." in text

    result = stiwatch("digest", "status", "--week", "2026-W47")
    lines = [line.split()[:3] for line in result.output.splitlines()[1:5]]
    assert lines == [["2026-W47", "all@example.org", "sent"], ["2026-W47", "eu@example.org", "sent"],
                     ["2026-W47", "sec@example.org", "sent"],
                     ["2026-W47", "space@example.org", "skipped"]]
    assert "3 sent, 1 skipped" in result.output

    before = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    result = stiwatch("digest", "send", "--week", "2026-W47")
    assert result.exit_code == 0
    assert "0 sent" in result.output and "4 done earlier" in result.output
    assert "Nothing owed" in result.output
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_dry_run_writes_files_and_records_nothing(store, stiwatch, isolated_env, smtp, db_path):
    store.close()
    result = stiwatch("digest", "send", "--week", "2026-W47", "--dry-run",
                      env=smtp.settings_env())
    assert result.exit_code == 0, result.output
    assert "3 sent to the outbox (dry run)" in result.output
    assert "3 messages written to outbox/dry-run/2026-W47" in result.output
    assert len(list((isolated_env / "outbox" / "dry-run" / "2026-W47").glob("*.eml"))) == 3
    assert not (isolated_env / "outbox" / "2026-W47").exists()
    assert smtp.messages == []
    with db.open_store(db_path) as s:
        assert s.deliveries() == []


def test_outbox_file_names_never_collide_and_fit_the_file_system(store, stiwatch, isolated_env):
    # a/b@x.org and a&b@x.org (valid addresses) were both written to a_b@x.org.eml: one
    # subscriber's digest replaced the other's, and both were counted sent. A 254-character
    # address failed every week with "File name too long".
    long = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 50 + ".org"
    store.conn.execute("DELETE FROM subscribers")
    store.save_subscribers([{"email": "a/b@x.org"}, {"email": "a&b@x.org", "regions": ["europe"]},
                            {"email": long}, {"email": "../../etc@x.org"}])
    store.close()
    result = stiwatch("digest", "send", "--week", "2026-W47")
    assert result.exit_code == 0, result.output
    assert "4 sent to the outbox" in result.output
    folder = isolated_env / "outbox" / "2026-W47"
    files = list(folder.iterdir())
    assert len(files) == 4 and all(len(p.name) < 220 and "/" not in p.name for p in files)
    to = {email.message_from_bytes(p.read_bytes(), policy=policy.default)["To"]: p.name
          for p in files}
    assert set(to) == {"a/b@x.org", "a&b@x.org", long, "../../etc@x.org"}
    assert to["a&b@x.org"].startswith("a_b@x.org-") and to[long].startswith("aaaa")
    assert list((isolated_env / "outbox").iterdir()) == [folder]  # nothing written outside


def test_dry_run_files_are_kept_apart_from_real_outbox_deliveries(store, stiwatch, isolated_env,
                                                                  db_path):
    """A dry run writes every message again, sent ones included: never beside the real ones."""
    store.save_subscribers([{"email": "gone@example.org"}])
    store.close()
    result = stiwatch("digest", "send", "--week", "2026-W47", "--dry-run")
    assert result.exit_code == 0, result.output
    dry = isolated_env / "outbox" / "dry-run" / "2026-W47"
    assert (dry / "gone@example.org.eml").exists()
    result = stiwatch("digest", "send", "--week", "2026-W47")
    assert "4 sent to the outbox" in result.output
    real = isolated_env / "outbox" / "2026-W47"
    before = {p.name: p.read_bytes() for p in real.iterdir()}
    result = stiwatch("subscribers", "remove", "gone@example.org")
    assert result.exit_code == 0, result.output

    result = stiwatch("digest", "send", "--week", "2026-W47", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "3 sent to the outbox (dry run)" in result.output
    assert {p.name: p.read_bytes() for p in real.iterdir()} == before
    # The dry-run folder holds this dry run only: not the earlier one's message to `gone`.
    assert sorted(p.name for p in dry.iterdir()) == [
        "all@example.org.eml", "eu@example.org.eml", "sec@example.org.eml"]
    result = stiwatch("digest", "status", "--week", "2026-W47")
    assert "4 sent" in result.output


def test_real_smtp_send_then_rerun_sends_nothing(store, smtp, stiwatch):
    store.close()
    result = stiwatch("digest", "send", "--week", "2026-W47", env=smtp.settings_env())
    assert result.exit_code == 0, result.output
    assert "3 sent via SMTP, 1 with nothing matching" in result.output
    assert sorted(r.rcpt for r in smtp.messages) == ["all@example.org", "eu@example.org",
                                                     "sec@example.org"]
    [msg] = smtp.to("sec@example.org")
    assert msg["Subject"].endswith(": 1 story")
    assert msg["From"] == "stiwatch <stiwatch@localhost>"
    assert msg.get_content_type() == "multipart/related"
    assert smtp.messages[0].mail_from == "stiwatch@localhost"
    [full] = smtp.to("all@example.org")
    assert full["Subject"].endswith(": 2 stories")

    result = stiwatch("digest", "send", "--week", "2026-W47", env=smtp.settings_env())
    assert result.exit_code == 0 and "Nothing owed" in result.output
    assert len(smtp.messages) == 3


@pytest.mark.parametrize("extra, header, post", [
    # The default: a mail to the sender. No one-click: RFC 8058 needs an https URI to POST to,
    # and stiwatch has no endpoint that could take it.
    ({}, "<mailto:stiwatch@localhost?subject=unsubscribe>", None),
    # The operator's own https service: one-click, and the mailto for clients without it.
    ({"list_unsubscribe": "https://agency.example/unsub?who={email}"},
     "<https://agency.example/unsub?who=sec%40example.org>, "
     "<mailto:stiwatch@localhost?subject=unsubscribe>", "List-Unsubscribe=One-Click"),
    ({"list_unsubscribe": "https://agency.example/unsub?who={email}",
      "list_unsubscribe_mailto": "mailto:unsubscribe@agency.example?subject={email}"},
     "<https://agency.example/unsub?who=sec%40example.org>, "
     "<mailto:unsubscribe@agency.example?subject=sec%40example.org>",
     "List-Unsubscribe=One-Click"),
    ({"list_unsubscribe": "https://agency.example/unsub?who={email}",
      "list_unsubscribe_mailto": ""},
     "<https://agency.example/unsub?who=sec%40example.org>", "List-Unsubscribe=One-Click"),
    # A mailto: list_unsubscribe is the whole header: list_unsubscribe_mailto adds nothing.
    ({"list_unsubscribe": "mailto:lists@agency.example",
      "list_unsubscribe_mailto": "mailto:other@agency.example"},
     "<mailto:lists@agency.example>", None),
], ids=["default-mailto", "https-and-mailto", "https-and-own-mailto", "https-only",
        "mailto-only"])
def test_unsubscribe_headers_arrive_through_smtp(store, smtp, extra, header, post):
    report = send_week(store, settings_for(smtp, **extra), WEEK)
    assert "sec@example.org" in report.sent
    [msg] = smtp.to("sec@example.org")
    assert msg["List-Unsubscribe"] == header
    assert msg["List-Unsubscribe-Post"] == post
    raw = next(r.data for r in smtp.messages if r.rcpt == "sec@example.org")
    assert f"\r\nList-Unsubscribe: {header}\r\n".encode() in raw  # one line, as written


def test_skipped_subscriber_gets_the_week_once_items_match_later(store, smtp, stiwatch,
                                                                 db_path, tmp_path):
    """Skipped is not final: a later send of the same week sends it once something matches."""
    store.close()
    env = smtp.settings_env()
    result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
    assert "3 sent via SMTP, 1 with nothing matching" in result.output
    assert smtp.to("space@example.org") == []
    with db.open_store(db_path) as s:
        skipped_row = s.get_delivery("space@example.org", WEEK.label)
    assert skipped_row["status"] == "skipped"

    # Nothing new: looked at again, still skipped, the row untouched, one log line, no mail.
    log_file = tmp_path / "send.log"
    result = stiwatch("digest", "send", "--week", "2026-W47",
                      env={**env, "STIWATCH_LOG_FILE": str(log_file), "STIWATCH_LOG_LEVEL": "INFO"})
    assert result.exit_code == 0, result.output
    assert ("0 sent via SMTP, 0 with nothing matching, 0 to retry, 0 failed, 4 done earlier, "
            "0 waiting to retry.") in result.output
    assert "Nothing owed" in result.output and "Nothing matched" not in result.output
    about_space = [line.split(": ", 1)[1] for line in log_file.read_text().splitlines()
                   if "space@" in line]
    assert about_space == ["digest 2026-W47: still nothing matched for space@example.org, "
                           "nothing sent"]
    assert len(smtp.messages) == 3
    with db.open_store(db_path) as s:
        assert s.get_delivery("space@example.org", WEEK.label) == skipped_row

        # A space story of that week is crawled and classified later.
        add(s, [story("https://x.example/moon", "2026-11-20T03:00:00Z", source="us-nsf",
                      title="NASA lunar science funding", domains=["space"], countries=["US"],
                      regions=["north_america"])])

    result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
    assert result.exit_code == 0, result.output
    assert ("1 sent via SMTP, 0 with nothing matching, 0 to retry, 0 failed, 3 done earlier, "
            "0 waiting to retry.") in result.output
    [msg] = smtp.to("space@example.org")
    assert msg["Subject"].endswith(": 1 story")
    body = msg.get_body(("plain",)).get_content()
    assert "NASA lunar science funding" in body and "Japan research security" not in body
    assert len(smtp.messages) == 4  # the others were not sent the week again
    result = stiwatch("digest", "status", "--week", "2026-W47")
    assert "4 sent" in result.output and "skipped" not in result.output

    result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
    assert result.exit_code == 0 and "4 done earlier" in result.output
    assert "Nothing owed" in result.output
    assert len(smtp.messages) == 4 and len(smtp.to("space@example.org")) == 1


def test_a_skipped_row_that_now_matches_retries_like_any_other(store, smtp):
    settings = settings_for(smtp, delivery_retry_minutes=30)
    t0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
    report = send_week(store, settings, WEEK, now=t0)
    assert report.skipped == ["space@example.org"]
    add(store, [story("https://x.example/moon", "2026-11-20T03:00:00Z", title="Lunar",
                      domains=["space"])])
    smtp.behaviour["space@example.org"] = "451"
    report = send_week(store, settings, WEEK, now=t0 + timedelta(hours=1))
    assert [r["email"] for r in report.retry] == ["space@example.org"]
    assert (report.already, report.skipped, report.sent) == (3, [], [])
    row = store.get_delivery("space@example.org", WEEK.label)
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == (
        "pending", 1, "2026-11-23T10:30:00Z")

    report = send_week(store, settings, WEEK, now=t0 + timedelta(hours=1, minutes=10))
    assert [w["email"] for w in report.waiting] == ["space@example.org"]
    assert report.already + len(report.waiting) == report.subscribers
    smtp.behaviour.clear()
    report = send_week(store, settings, WEEK, now=t0 + timedelta(hours=2))
    assert report.sent == ["space@example.org"]
    report = send_week(store, settings, WEEK, now=t0 + timedelta(hours=3))
    assert report.sent == [] and report.already == 4
    assert [r.rcpt for r in smtp.messages].count("space@example.org") == 1
    assert set(states(store).values()) == {"sent"}


def test_temporary_refusals_retry_later_with_growing_delay(store, smtp):
    smtp.behaviour.update({"sec@example.org": "451", "eu@example.org": "552"})
    settings = settings_for(smtp)
    t0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
    report = send_week(store, settings, WEEK, now=t0)
    assert report.sent == ["all@example.org"]
    assert [r["email"] for r in report.retry] == ["eu@example.org", "sec@example.org"]
    assert report.retry[1]["error"].startswith("451 4.2.1 Mailbox temporarily unavailable")
    assert report.retry[0]["error"] == "552 5.2.2 Mailbox full"
    assert not report.ok
    row = store.get_delivery("sec@example.org", WEEK.label)
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == (
        "pending", 1, "2026-11-23T09:30:00Z")

    # Before the delay is over nothing is tried.
    report = send_week(store, settings, WEEK, now=t0 + timedelta(minutes=10))
    assert report.sent == [] and report.retry == []
    assert sorted(w["email"] for w in report.waiting) == ["eu@example.org", "sec@example.org"]

    # After it: tried again; still refused -> the next delay doubles.
    report = send_week(store, settings, WEEK, now=t0 + timedelta(minutes=31))
    row = store.get_delivery("sec@example.org", WEEK.label)
    assert (row["attempts"], row["next_attempt_at"]) == (2, "2026-11-23T10:31:00Z")

    smtp.behaviour.clear()
    report = send_week(store, settings, WEEK, now=t0 + timedelta(hours=2))
    assert sorted(report.sent) == ["eu@example.org", "sec@example.org"]
    assert states(store) == {"all@example.org": "sent", "eu@example.org": "sent",
                             "sec@example.org": "sent", "space@example.org": "skipped"}
    assert sorted(r.rcpt for r in smtp.messages) == ["all@example.org", "eu@example.org",
                                                     "sec@example.org"]


def test_a_421_to_one_recipient_is_retried_and_the_next_reader_still_gets_theirs(store, smtp):
    # On 421 smtplib closes the connection itself: the sender went on with the closed one, so
    # the next reader's message failed too ("please run connect() first") and waited a retry.
    smtp.behaviour["all@example.org"] = "421"
    report = send_week(store, settings_for(smtp), WEEK)
    assert [r["email"] for r in report.retry] == ["all@example.org"]
    assert report.retry[0]["error"] == "421 4.3.2 Service shutting down, try later"
    assert report.sent == ["eu@example.org", "sec@example.org"]
    assert sorted(r.rcpt for r in smtp.messages) == ["eu@example.org", "sec@example.org"]


def test_temporary_refusal_gives_up_after_max_attempts(store, smtp):
    smtp.behaviour["sec@example.org"] = "451"
    settings = settings_for(smtp, delivery_max_attempts=2, delivery_retry_minutes=0)
    send_week(store, settings, WEEK)
    report = send_week(store, settings, WEEK)
    assert report.failed == [{"email": "sec@example.org",
                              "error": "gave up after 2 attempts: 451 4.2.1 Mailbox temporarily "
                                       "unavailable, try later"}]
    report = send_week(store, settings, WEEK)
    assert report.sent == report.failed == report.retry == []
    assert states(store)["sec@example.org"] == "failed"


def test_permanent_refusal_fails_that_recipient_only(store, smtp, stiwatch):
    smtp.behaviour["eu@example.org"] = "550"
    store.close()
    result = stiwatch("digest", "send", "--week", "2026-W47", env=smtp.settings_env())
    assert result.exit_code == 1
    assert "failed eu@example.org: 550 5.1.1 No such user here" in result.output
    assert sorted(r.rcpt for r in smtp.messages) == ["all@example.org", "sec@example.org"]
    smtp.behaviour.clear()
    result = stiwatch("digest", "send", "--week", "2026-W47", env=smtp.settings_env())
    assert result.exit_code == 0 and "Nothing owed" in result.output
    assert len(smtp.messages) == 2  # permanent: never retried
    result = stiwatch("digest", "status", "--week", "2026-W47", "--json",
                      env=smtp.settings_env())
    import json
    rows = {r["subscriber"]: r for r in json.loads(result.output)}
    assert rows["eu@example.org"]["status"] == "failed"
    assert rows["eu@example.org"]["last_error"] == "550 5.1.1 No such user here"


# The week's deliveries when a run stopped before any reader got the week: each reader still
# owed it; space@ matched nothing, which needed no server.
OWED_AGAIN = {"all@example.org": "pending", "eu@example.org": "pending",
              "sec@example.org": "pending", "space@example.org": "skipped"}


def rows_of(db_path):
    with db.open_store(db_path) as s:
        return {r["subscriber"]: r for r in s.deliveries(WEEK.label)}


def sends_each_reader_once(stiwatch, smtp, env):
    """`digest send` of the week sends each of its three readers one digest."""
    result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
    assert result.exit_code == 0, result.output
    assert "3 sent via SMTP" in result.output
    assert sorted(r.rcpt for r in smtp.messages) == ["all@example.org", "eu@example.org",
                                                     "sec@example.org"]


def test_a_sender_the_server_refuses_stops_the_run_and_every_digest_stays_owed(store, smtp,
                                                                              stiwatch):
    # A 5xx to MAIL FROM says the sender (mail_from, or the login's right to use it) is wrong,
    # not any reader: every delivery of the week was recorded failed for good, one by one.
    smtp.sender_reply = "553 5.7.1 <digest@agency.example>: Sender address rejected"
    store.close()
    env = {**smtp.settings_env(), "STIWATCH_MAIL_FROM": "STI Watch <digest@agency.example>"}
    result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line == (f"Error: the SMTP server at 127.0.0.1:{smtp.port} refused the sender "
                    "digest@agency.example (553 5.7.1 <digest@agency.example>: Sender address "
                    "rejected): check mail_from, and smtp_username if the server wants a login to "
                    "send as it; 3 digests of 2026-W47 stay owed for the next run "
                    "(`stiwatch digest status` shows them)")
    assert smtp.messages == []
    rows = rows_of(store.path)
    assert {email: r["status"] for email, r in rows.items()} == OWED_AGAIN
    assert all("refused the sender" in rows[e]["last_error"]
               for e in ("all@example.org", "eu@example.org", "sec@example.org"))

    smtp.sender_reply = None  # the sender fixed: each reader gets the week once
    sends_each_reader_once(stiwatch, smtp, env)
    assert {r.mail_from for r in smtp.messages} == {"digest@agency.example"}


def test_a_relay_refusal_at_rcpt_stops_the_run_and_every_digest_stays_owed(store, smtp,
                                                                         stiwatch, db_path):
    # Postfix refusing this client ("Relay access denied") answers RCPT TO, so each reader's
    # digest was recorded failed for good, one after another, as if each address were wrong.
    smtp.rcpt_reply = "554 5.7.1 <{address}>: Relay access denied"
    store.close()
    result = stiwatch("digest", "send", "--week", "2026-W47", env=smtp.settings_env())
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line == (f"Error: the SMTP server at 127.0.0.1:{smtp.port} refused all@example.org at "
                    "RCPT TO (554 5.7.1 <all@example.org>: Relay access denied), which is its "
                    "refusal of this client or sender, not of the readers: check that the server "
                    "relays for this host (its mynetworks or client rules), or for smtp_username's "
                    "login; 3 digests of 2026-W47 stay owed for the next run (`stiwatch digest "
                    "status` shows them)")
    rows = rows_of(db_path)
    assert {email: r["status"] for email, r in rows.items()} == OWED_AGAIN
    assert smtp.messages == []
    assert [r["subscriber"] for r in rows.values() if r["message_id"]] == ["all@example.org"]
    tried = rows["all@example.org"]["message_id"]

    smtp.rcpt_reply = None  # the relay fixed: each reader gets the week once
    sends_each_reader_once(stiwatch, smtp, smtp.settings_env())
    [message] = smtp.to("all@example.org")
    assert message["Message-ID"] == tried  # the same message, not a new one


@pytest.mark.parametrize("where, reply, shown, check", [
    ("rcpt", "550 5.7.1 Unable to relay for {address}", "RCPT TO (550 5.7.1 Unable to relay for "
     "a1@example.org)", "the server's log and its relay and recipient rules for this host, "
     "smtp_username and mail_from"),
    ("data", "554 5.7.1 Message rejected by content policy", "DATA (554 5.7.1 Message rejected "
     "by content policy)", "the server's log and its content filter: it refuses the digest "
     "itself"),
])
def test_the_same_permanent_refusal_for_three_readers_in_a_row_is_the_servers(
        store, smtp, stiwatch, db_path, where, reply, shown, check):
    # A refusal by a relay or content filter whose wording we do not know: by its code alone
    # it looked like each reader's own, and every reader of the week was failed for good.
    store.save_subscribers([{"email": f"a{n}@example.org"} for n in range(1, 5)])
    store.close()
    setattr(smtp, f"{where}_reply", reply)
    result = stiwatch("digest", "send", "--week", "2026-W47", env=smtp.settings_env())
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line == (f"Error: the SMTP server at 127.0.0.1:{smtp.port} refused 3 readers in a row "
                    f"(a1@example.org, a2@example.org, a3@example.org) at {shown}, the same "
                    "reply for each but the address, which is its refusal of this client, sender "
                    f"or message, not of the readers: check {check}; 7 digests of 2026-W47 stay "
                    "owed for the next run (`stiwatch digest status` shows them)")
    rows = rows_of(db_path)
    assert {r["status"] for e, r in rows.items() if e != "space@example.org"} == {"pending"}
    assert [e for e, r in rows.items() if r["message_id"]] == [
        "a1@example.org", "a2@example.org", "a3@example.org"]  # tried: Message-IDs kept
    ids = {e: rows[e]["message_id"] for e in ("a1@example.org", "a2@example.org")}

    setattr(smtp, f"{where}_reply", None)
    result = stiwatch("digest", "send", "--week", "2026-W47", env=smtp.settings_env())
    assert result.exit_code == 0, result.output
    assert "7 sent via SMTP" in result.output
    assert {e: smtp.to(e)[0]["Message-ID"] for e in ids} == ids
    assert len(smtp.messages) == 7


def test_a_relay_that_takes_some_readers_then_refuses_three_says_why_the_rest_are_not_sent(
        store, smtp, stiwatch, db_path):
    # The report said "not sent (server unreachable)" of readers a reachable server refused.
    store.save_subscribers([{"email": "t@example.org"}])
    store.close()
    smtp.behaviour["all@example.org"] = "accept"  # the relay's own domain, say
    smtp.rcpt_reply = "550 5.7.1 Unable to relay for {address}"
    result = stiwatch("digest", "send", "--week", "2026-W47", env=smtp.settings_env())
    assert result.exit_code == 1
    report, _, error = result.output.splitlines()
    assert report == ("Digest 2026-W47 (2 policy items in 2 stories): 1 sent via SMTP, 1 with "
                      "nothing matching, 0 to retry, 0 failed, 0 done earlier, 0 waiting to "
                      "retry, 3 not sent (the run stopped: see the error below).")
    assert error.startswith(f"Error: the SMTP server at 127.0.0.1:{smtp.port} refused 3 readers "
                            "in a row (eu@example.org, sec@example.org, t@example.org) at RCPT TO")
    assert error.endswith("; 3 digests of 2026-W47 stay owed for the next run (`stiwatch digest "
                          "status` shows them)")
    assert {e: r["status"] for e, r in rows_of(db_path).items()} == {
        "all@example.org": "sent", "eu@example.org": "pending", "sec@example.org": "pending",
        "space@example.org": "skipped", "t@example.org": "pending"}


def test_readers_refused_alike_but_not_in_a_row_are_each_their_own(store, smtp, db_path):
    """An accepted reader in between (a relay that takes its own domain only), a different
    reply, or fewer than three readers: the refusals are the readers', as before."""
    store.save_subscribers([{"email": "a1@example.org"}, {"email": "a2@example.org"}])
    smtp.rcpt_reply = "550 5.7.1 Unable to relay for {address}"
    smtp.behaviour.update({"all@example.org": "accept", "eu@example.org": "550"})
    report = send_week(store, settings_for(smtp), WEEK)
    # a1, a2 (alike), all accepted, eu (its own 5.1.1), sec (alike again): no three in a row
    assert report.aborted is None and report.sent == ["all@example.org"]
    assert [r["email"] for r in report.failed] == ["a1@example.org", "a2@example.org",
                                                   "eu@example.org", "sec@example.org"]
    assert states(store)["sec@example.org"] == "failed"


def test_a_server_that_does_not_take_ehlo_is_greeted_with_helo(store, smtp, stiwatch):
    # Once EHLO was refused, smtplib sent MAIL FROM with no greeting at all: "503 Error: send
    # HELO first", and each reader's digest was refused (a firewall's SMTP fixup in front of a
    # gateway answers EHLO so).
    smtp.ehlo = False
    store.close()
    sends_each_reader_once(stiwatch, smtp, smtp.settings_env())


def test_a_message_that_cannot_be_built_fails_that_delivery_and_the_others_get_theirs(
        store, smtp, stiwatch, db_path):
    """A store written before names were checked may hold a line break in one: that delivery
    fails for good, with the reason, and nobody after it in order is held up."""
    store.save_subscribers([{"email": "bob@example.org",
                             "name": "Bob\nBcc: victim@example.com"}])
    store.close()
    env = smtp.settings_env()
    for command in (("digest", "send", "--week", "2026-W47"), ("digest", "send", "--week",
                                                                "2026-W47", "--dry-run")):
        result = stiwatch(*command, env=env)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        assert ("failed bob@example.org: cannot build the message: the name "
                "'Bob\\nBcc: victim@example.com' contains a line break or control character "
                "(U+000A)") in result.output.splitlines()
    assert sorted(r.rcpt for r in smtp.messages) == ["all@example.org", "eu@example.org",
                                                     "sec@example.org"]
    assert not any(b"victim" in r.data for r in smtp.received)
    with db.open_store(db_path) as s:
        bob = s.get_delivery("bob@example.org", WEEK.label)
        assert (bob["status"], bob["attempts"], bob["next_attempt_at"]) == ("failed", 0, None)
        assert bob["last_error"].startswith("cannot build the message: the name 'Bob\\nBcc:")
        assert states(s) == {"all@example.org": "sent", "bob@example.org": "failed",
                             "eu@example.org": "sent", "sec@example.org": "sent",
                             "space@example.org": "skipped"}

    result = stiwatch("digest", "send", "--week", "2026-W47", env=env)  # failed is final
    assert result.exit_code == 0 and "Nothing owed" in result.output, result.output
    assert len(smtp.messages) == 3


def test_dropped_connection_leaves_true_states_and_others_still_get_theirs(store, smtp):
    """Cut after the whole message went out, before any reply: the server may have it, so the
    row stays in doubt (`sending`), is not sent again by later runs, and is not `failed`."""
    smtp.behaviour["eu@example.org"] = "drop"
    settings = settings_for(smtp, delivery_retry_minutes=0)
    report = send_week(store, settings, WEEK)
    assert sorted(report.sent) == ["all@example.org", "sec@example.org"]  # reconnected
    assert report.retry == report.failed == [] and not report.ok
    [doubt] = report.unanswered
    assert doubt["email"] == "eu@example.org"
    assert doubt["error"].startswith("no answer after the message was sent (connection lost: ")
    row = store.get_delivery("eu@example.org", WEEK.label)
    assert (row["status"], row["attempts"]) == ("sending", 1) and row["unanswered_at"]
    smtp.behaviour.clear()
    report = send_week(store, settings, WEEK)
    assert report.sent == report.unanswered == [] and report.ok
    assert [d["email"] for d in report.in_doubt] == ["eu@example.org"]
    assert states(store)["eu@example.org"] == "sending"


@pytest.mark.parametrize("behaviour", ["451", "slow-rcpt"])
def test_a_refusal_or_timeout_before_the_data_went_out_is_retried(store, smtp, behaviour):
    """Refused, or no answer, before the message was sent: the server cannot have it, so it is
    owed again (retried), as before."""
    smtp.behaviour["eu@example.org"] = behaviour
    settings = settings_for(smtp, delivery_retry_minutes=0, smtp_timeout=1)
    report = send_week(store, settings, WEEK)
    assert [r["email"] for r in report.retry] == ["eu@example.org"] and report.unanswered == []
    assert states(store)["eu@example.org"] == "pending"
    assert smtp.to("eu@example.org") == []
    smtp.behaviour.clear()
    report = send_week(store, settings, WEEK)
    assert report.sent == ["eu@example.org"]
    assert sorted(r.rcpt for r in smtp.messages) == ["all@example.org", "eu@example.org",
                                                     "sec@example.org"]


EMPTY_RSS = b"<rss version='2.0'><channel><title>t</title></channel></rss>"


@pytest.fixture
def feed():
    """An empty feed on loopback: as the store's only source, `run --digest` crawls it (nothing
    new) and goes on to its digest step."""
    with MockServer() as server:
        @server.route("/feed.xml")
        def empty(handler) -> None:  # noqa: ANN001
            handler.send_body(200, EMPTY_RSS, "application/rss+xml")

        yield server.url("/feed.xml")


def only_source(store, url):
    store.sync_sources([{"id": "feed", "name": "Feed", "kind": "feed", "url": url,
                         "country": "JP", "language": "en", "org_type": "news"}])


def run_digest(db_path, env, *args):
    """`stiwatch --quiet run --digest` as cron runs it: a process of its own, the real clock."""
    full = {**os.environ, "STIWATCH_DB": str(db_path), "STIWATCH_DOWNLOAD_DELAY": "0",
            "STIWATCH_AUTOTHROTTLE": "false", "STIWATCH_RETRY_TIMES": "0", **env}
    return subprocess.run([sys.executable, "-m", "stiwatch", "--quiet", "run", "--digest",
                           *args], env=full, cwd=db_path.parent, capture_output=True,
                          text=True, timeout=180)


def test_no_answer_after_the_data_leaves_it_in_doubt_and_it_is_never_sent_again(
        store, smtp, stiwatch, db_path, feed):
    """A relay slower than smtp_timeout to say 250 after DATA has the message all the same: it
    is neither sent again (by `digest send` or `run --digest`) nor recorded as failed."""
    only_source(store, feed)
    store.close()
    smtp.behaviour["eu@example.org"] = "slow"
    env = {**smtp.settings_env(), "STIWATCH_SMTP_TIMEOUT": "1",
           "STIWATCH_DELIVERY_RETRY_MINUTES": "0", "STIWATCH_DELIVERY_MAX_ATTEMPTS": "2"}
    result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
    assert result.exit_code == 1, result.output  # needs a look
    assert ("2 sent via SMTP, 1 with nothing matching, 0 to retry, 0 failed, 0 done earlier, "
            "0 waiting to retry, 1 in doubt.") in result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("in doubt ")]
    assert line.startswith("in doubt eu@example.org: no answer after the message was sent (")
    assert line.endswith("the server may have it, so it is not sent again (`stiwatch digest "
                         "resolve eu@example.org --week 2026-W47 --sent` once it is known to "
                         "have arrived, or `--resend`)")
    assert "Traceback" not in result.output
    assert sorted(r.rcpt for r in smtp.messages) == ["all@example.org", "eu@example.org",
                                                     "sec@example.org"]

    for _ in range(3):  # more than delivery_max_attempts: nothing gives up, nothing resends
        result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
        assert result.exit_code == 0, result.output
        assert "0 sent via SMTP" in result.output and "1 in doubt." in result.output
        assert "Nothing owed" not in result.output
    run = run_digest(db_path, env)
    assert run.returncode == 0, run.stderr
    assert [r.rcpt for r in smtp.received].count("eu@example.org") == 1

    result = stiwatch("digest", "status", "--week", "2026-W47", "--json")
    import json
    eu = {r["subscriber"]: r for r in json.loads(result.output)}["eu@example.org"]
    assert (eu["status"], eu["attempts"]) == ("sending", 1)
    assert eu["last_error"].startswith("no answer after the message was sent (")
    result = stiwatch("status")
    assert "eu@example.org" in result.output.split("Deliveries owed")[1]

    # The relay's log shows it arrived: recorded as sent, and nothing is owed any more.
    result = stiwatch("digest", "resolve", "eu@example.org", "--week", "2026-W47", "--sent")
    assert result.exit_code == 0, result.output
    assert result.output == "2026-W47 eu@example.org: recorded as sent.\n"
    result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
    assert result.exit_code == 0 and "Nothing owed" in result.output, result.output
    result = stiwatch("status")
    assert "Deliveries owed: none" in result.output
    assert [r.rcpt for r in smtp.received].count("eu@example.org") == 1


def test_resolve_resend_sends_a_delivery_in_doubt_or_failed_once_more(store, smtp, stiwatch,
                                                                       db_path):
    store.close()
    smtp.behaviour.update({"eu@example.org": "slow", "sec@example.org": "550"})
    env = {**smtp.settings_env(), "STIWATCH_SMTP_TIMEOUT": "1"}
    assert stiwatch("digest", "send", "--week", "2026-W47", env=env).exit_code == 1
    smtp.behaviour.clear()
    for address in ("eu@example.org", "sec@example.org"):
        result = stiwatch("digest", "resolve", address, "--week", "2026-W47", "--resend")
        assert result.exit_code == 0, result.output
        assert result.output == (f"2026-W47 {address}: owed again; the next `stiwatch digest send "
                                 "--week 2026-W47` or `stiwatch run --digest` sends it.\n")
    result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
    assert result.exit_code == 0, result.output
    assert "2 sent via SMTP" in result.output
    eu = [r.message["Message-ID"] for r in smtp.received if r.rcpt == "eu@example.org"]
    assert len(eu) == 2 and len(set(eu)) == 1  # the copy says it is one (same Message-ID)
    assert len(smtp.to("sec@example.org")) == 1
    assert set(states_of_path(db_path).values()) == {"sent", "skipped"}

    # Only a delivery in doubt (or failed, to resend) can be resolved; anything else is refused.
    cases = [
        (("all@example.org", "--sent"), "2026-W47 all@example.org is sent, not in doubt"),
        (("all@example.org", "--resend"), "2026-W47 all@example.org is sent, not in doubt"),
        (("nobody@example.org", "--sent"), "no delivery of 2026-W47 to nobody@example.org"),
        (("eu@example.org",), "give one of --sent, --resend or --cancel"),
        # two given: they exclude each other ("give one of" read as if none had been given)
        (("eu@example.org", "--sent", "--resend"), "--sent and --resend exclude each other: "
         "give one (--sent if it arrived, --resend to have it sent again, --cancel to send it "
         "never)"),
        (("eu@example.org", "--cancel", "--sent", "--resend"),
         "--sent, --resend and --cancel exclude each other: give one"),
        (("all@example.org", "--cancel"), "2026-W47 all@example.org is sent, not owed"),
    ]
    for args, message in cases:
        result = stiwatch("digest", "resolve", *args, "--week", "2026-W47")
        assert result.exit_code == 2, (args, result.output)
        [line] = result.output.splitlines()
        assert line.startswith("Error: ") and message in line, (args, line)


def test_resolve_resend_all_failed_makes_every_failed_delivery_of_the_week_owed_once_more(
        store, smtp, stiwatch, db_path):
    # After a bad run each failed delivery had to be resent by hand, one command per reader.
    store.save_subscribers([{"email": e} for e in ("c@example.org", "gone@example.org",
                                                   "x@example.org")])
    store.close()
    smtp.behaviour.update({"eu@example.org": "550", "gone@example.org": "550",
                           "x@example.org": "550", "c@example.org": "451"})
    env = smtp.settings_env()
    assert stiwatch("digest", "send", "--week", "2026-W47", env=env).exit_code == 1
    assert stiwatch("digest", "resolve", "c@example.org", "--week", "2026-W47",
                    "--cancel").exit_code == 0
    assert stiwatch("subscribers", "remove", "gone@example.org").exit_code == 0
    before = rows_of(db_path)
    assert [e for e, r in before.items() if r["status"] == "failed"] == [
        "c@example.org", "eu@example.org", "gone@example.org", "x@example.org"]
    # A failed delivery never reached the server: it cannot be recorded as sent, and it is
    # not owed, so there is nothing to cancel (its error, which says why, stays).
    for args, message in [
        (("--sent",), "2026-W47 x@example.org is failed, not in doubt"),
        (("--cancel",), "2026-W47 x@example.org is failed, not owed"),
    ]:
        result = stiwatch("digest", "resolve", "x@example.org", *args, "--week", "2026-W47")
        assert result.exit_code == 2, (args, result.output)
        assert result.output == f"Error: {message}\n"
    assert rows_of(db_path) == before

    result = stiwatch("digest", "resolve", "--week", "2026-W47", "--resend", "--all-failed")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "2026-W47: 2 failed deliveries owed again (eu@example.org, x@example.org); the next "
        "`stiwatch digest send --week 2026-W47` or `stiwatch run --digest` sends them.",
        "Left failed, cancelled by the operator: c@example.org",
        "Left failed, no longer subscribed: gone@example.org",
    ]
    after = rows_of(db_path)
    assert {e: r["status"] for e, r in after.items()} == {
        "all@example.org": "sent", "c@example.org": "failed", "eu@example.org": "pending",
        "gone@example.org": "failed", "sec@example.org": "sent", "space@example.org": "skipped",
        "x@example.org": "pending"}

    smtp.behaviour.clear()
    result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
    assert result.exit_code == 0, result.output
    assert "2 sent via SMTP" in result.output
    for address in ("eu@example.org", "x@example.org"):
        [message] = smtp.to(address)
        assert message["Message-ID"] == before[address]["message_id"]  # the one tried before
    assert len(smtp.to("all@example.org")) == 1 and smtp.to("c@example.org") == []
    assert smtp.to("gone@example.org") == []

    result = stiwatch("digest", "resolve", "--week", "2026-W47", "--resend", "--all-failed")
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == "2026-W47: no failed delivery to resend."

    for args, message in [
        (("--all-failed",), "--all-failed goes with --resend and no EMAIL"),
        (("--sent", "--all-failed"), "--all-failed goes with --resend and no EMAIL"),
        (("eu@example.org", "--resend", "--all-failed"),
         "--all-failed goes with --resend and no EMAIL"),
        (("--resend",), "give the EMAIL of the delivery to resolve, or `--resend --all-failed`"),
    ]:
        result = stiwatch("digest", "resolve", *args, "--week", "2026-W47")
        assert result.exit_code == 2, (args, result.output)
        [line] = result.output.splitlines()
        assert line.startswith("Error: ") and message in line, (args, line)


def test_resolve_cancel_settles_an_owed_delivery_by_never_sending_it(store, smtp, stiwatch,
                                                                     db_path):
    """An owed delivery the operator does not want sent (a stale week): failed, final."""
    store.close()
    down = {"STIWATCH_SMTP_HOST": "127.0.0.1", "STIWATCH_SMTP_PORT": str(dead_port())}
    assert stiwatch("digest", "send", "--week", "2026-W47", env=down).exit_code == 1
    result = stiwatch("digest", "resolve", "eu@example.org", "--week", "2026-W47", "--cancel")
    assert result.exit_code == 0, result.output
    assert result.output == "2026-W47 eu@example.org: cancelled; no run sends it.\n"
    result = stiwatch("digest", "send", "--week", "2026-W47", env=smtp.settings_env())
    assert result.exit_code == 0, result.output
    assert smtp.to("eu@example.org") == [] and smtp.to("all@example.org")
    import json
    rows = json.loads(stiwatch("digest", "status", "--week", "2026-W47", "--json").output)
    eu = {r["subscriber"]: r for r in rows}["eu@example.org"]
    assert (eu["status"], eu["last_error"]) == ("failed", "cancelled by the operator")


def dead_port():
    import socket
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_run_digest_also_sends_what_earlier_weeks_still_owe(db_path, smtp, feed):
    """SMTP was down at last Monday's digest run: that week stays owed, and the next Monday's
    `run --digest` sends it (oldest first) with the new week, each exactly once."""
    import json
    from zoneinfo import ZoneInfo

    from digest.weeks import last_complete_week

    now = datetime.now(timezone.utc)
    new = last_complete_week(ZoneInfo("Asia/Tokyo"), now)  # what today's run sends
    old = new.shift(-1)  # what last Monday's run should have sent

    def published(week):
        return (week.start + timedelta(days=2)).astimezone(timezone.utc).isoformat()

    s = build(db_path, [
        story("https://x.example/old", published(old), title="Story of the earlier week"),
        story("https://x.example/new", published(new), title="Story of the new week")])
    s.save_subscribers([{"email": "fresh@example.org"}])
    only_source(s, feed)
    down = {"STIWATCH_SMTP_HOST": "127.0.0.1", "STIWATCH_SMTP_PORT": str(dead_port())}
    # Last Monday, 06:00 in Tokyo: the digest run found the SMTP server down.
    report = send_week(s, settings_for(**{k[9:].lower(): v for k, v in down.items()}), old,
                       now=old.end + timedelta(hours=6))
    assert report.unreachable == ["fresh@example.org"]
    # Someone subscribed since: the earlier week was never theirs to receive.
    s.save_subscribers([{"email": "late@example.org"}])
    s.close()

    still_down = run_digest(db_path, {**smtp.settings_env(), **down}, "--json")
    assert still_down.returncode == 1, still_down.stderr
    assert smtp.messages == []

    run = run_digest(db_path, smtp.settings_env(), "--json")
    assert run.returncode == 0, run.stderr
    assert [(m.rcpt, m.message["X-Stiwatch-Week"]) for m in smtp.messages] == [
        ("fresh@example.org", old.label),  # oldest first
        ("fresh@example.org", new.label), ("late@example.org", new.label)]
    step = json.loads(run.stdout)["steps"][-1]
    assert step["step"] == "digest" and step["ok"]
    assert step["summary"].startswith(f"{new.label}: 1 policy item in 1 story, 2 sent (smtp)")
    assert step["summary"].endswith(f"; owed from earlier weeks: {old.label}: 1 sent")
    assert [(w["week"], w["sent"]) for w in step["earlier"]] == [(old.label, 1)]

    again = run_digest(db_path, smtp.settings_env(), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["steps"][-1]["earlier"] == []
    assert len(smtp.messages) == 3
    with db.open_store(db_path) as s:
        assert {(r["period"], r["subscriber"]): r["status"] for r in s.deliveries()} == {
            (old.label, "fresh@example.org"): "sent", (new.label, "fresh@example.org"): "sent",
            (new.label, "late@example.org"): "sent"}


def test_run_digest_leaves_weeks_older_than_the_catch_up_limit_to_a_send_by_hand(
        db_path, smtp, feed):
    """A digest weeks late is news no more: `run --digest` catches up on at most
    `digest_catch_up_weeks` earlier weeks (4); an older one stays owed, and the summary says
    how to send it."""
    import json
    from zoneinfo import ZoneInfo

    from digest.weeks import last_complete_week

    now = datetime.now(timezone.utc)
    new = last_complete_week(ZoneInfo("Asia/Tokyo"), now)
    old = new.shift(-5)
    s = build(db_path, [story("https://x.example/old", (old.start + timedelta(days=2))
                              .astimezone(timezone.utc).isoformat(), title="Old story")])
    s.save_subscribers([{"email": "fresh@example.org"}])
    only_source(s, feed)
    report = send_week(s, settings_for(smtp_host="127.0.0.1", smtp_port=str(dead_port())), old,
                       now=old.end + timedelta(hours=6))
    assert report.unreachable == ["fresh@example.org"]
    s.close()

    run = run_digest(db_path, smtp.settings_env(), "--json")
    assert run.returncode == 0, run.stderr
    assert smtp.messages == []
    step = json.loads(run.stdout)["steps"][-1]
    assert step["stale"] == [old.label] and step["earlier"] == []
    assert step["summary"].endswith(
        f"; {old.label} still owed, older than digest_catch_up_weeks (4): send by hand with "
        "`stiwatch digest send --week`")
    wider = run_digest(db_path, {**smtp.settings_env(), "STIWATCH_DIGEST_CATCH_UP_WEEKS": "5"},
                       "--json")
    assert wider.returncode == 0, wider.stderr
    assert [(m.rcpt, m.message["X-Stiwatch-Week"]) for m in smtp.messages] == [
        ("fresh@example.org", old.label)]


def test_a_failed_digest_step_is_one_line_on_stderr_and_the_log_file_keeps_the_rest(
        db_path, tmp_path, feed):
    """Cron mails what `--quiet run` prints: one `Error:` line per failed step. What each
    delivery went through is in the log file (when set) and `digest status`, not repeated."""
    from zoneinfo import ZoneInfo

    from digest.weeks import last_complete_week

    week = last_complete_week(ZoneInfo("Asia/Tokyo"))
    when = (week.start + timedelta(days=2)).astimezone(timezone.utc).isoformat()
    s = build(db_path, [story("https://x.example/a", when, title="A story")])
    s.save_subscribers([{"email": e} for e in ("ok@example.org", "perm@example.org",
                                               "temp@example.org")])
    only_source(s, feed)
    s.close()
    log_file = tmp_path / "logs" / "stiwatch.log"
    down = {"STIWATCH_SMTP_HOST": "127.0.0.1", "STIWATCH_SMTP_PORT": str(dead_port()),
            "STIWATCH_SMTP_STARTTLS": "false"}
    for env in ({}, {"STIWATCH_LOG_FILE": str(log_file)}):  # default log_level (WARNING)
        run = run_digest(db_path, {**down, **env})
        assert run.returncode == 1 and run.stdout == ""
        [line] = run.stderr.splitlines()
        assert line.startswith(
            f"Error: digest: {week.label}: 1 policy item in 1 story, 0 sent (smtp)")
        assert f"3 not sent: the SMTP server at 127.0.0.1:{down['STIWATCH_SMTP_PORT']}" in line
    [logged] = [entry for entry in log_file.read_text(encoding="utf-8").splitlines()
                if "stiwatch.digest" in entry]
    assert (f" ERROR stiwatch.digest: digest {week.label}: the SMTP server at 127.0.0.1:"
            f"{down['STIWATCH_SMTP_PORT']} could not be reached (") in logged

    with SmtpServer({"perm@example.org": "550", "temp@example.org": "451"}) as smtp:
        for env, counts in (({"STIWATCH_LOG_FILE": str(log_file)},
                             "1 sent (smtp), 1 to retry, 1 failed"),
                            ({}, "0 sent (smtp), 1 to retry, 0 failed")):
            run = run_digest(db_path, {**smtp.settings_env(), **env,
                                       "STIWATCH_DELIVERY_RETRY_MINUTES": "0"})
            assert run.returncode == 1 and run.stdout == ""
            [line] = run.stderr.splitlines()
            assert line.startswith(
                f"Error: digest: {week.label}: 1 policy item in 1 story, {counts}"), line
    logged = log_file.read_text(encoding="utf-8")
    assert " ERROR stiwatch.digest: " in logged and "perm@example.org failed: 550" in logged
    assert " WARNING stiwatch.digest: " in logged and "temp@example.org temporarily" in logged


def test_a_scheduled_run_refused_by_the_relay_is_one_line_and_leaves_the_week_owed(
        db_path, feed, smtp):
    """`--quiet run --digest` as cron runs it: one `Error:` line naming the relay's refusal."""
    from zoneinfo import ZoneInfo

    from digest.weeks import last_complete_week

    week = last_complete_week(ZoneInfo("Asia/Tokyo"))
    when = (week.start + timedelta(days=2)).astimezone(timezone.utc).isoformat()
    s = build(db_path, [story("https://x.example/a", when, title="A story")])
    s.save_subscribers([{"email": e} for e in ("a@example.org", "b@example.org")])
    only_source(s, feed)
    s.close()
    smtp.rcpt_reply = "554 5.7.1 <{address}>: Client host rejected: Access denied"
    run = run_digest(db_path, smtp.settings_env())
    assert run.returncode == 1 and run.stdout == ""
    [line] = run.stderr.splitlines()
    assert line.startswith(
        f"Error: digest: {week.label}: 1 policy item in 1 story, 0 sent (smtp)")
    assert line.endswith(f"2 not sent: the SMTP server at 127.0.0.1:{smtp.port} refused "
                         "a@example.org at RCPT TO (554 5.7.1 <a@example.org>: Client host "
                         "rejected: Access denied), which is its refusal of this client or "
                         "sender, not of the readers: check that the server takes mail from "
                         "this host (its client rules, this host's reverse DNS)"), line
    with db.open_store(db_path) as s:
        assert {r["status"] for r in s.deliveries(week.label)} == {"pending"}

    smtp.rcpt_reply = None
    run = run_digest(db_path, smtp.settings_env())
    assert run.returncode == 0, run.stderr
    assert sorted(r.rcpt for r in smtp.messages) == ["a@example.org", "b@example.org"]


def states_of_path(db_path):
    with db.open_store(db_path) as s:
        return states(s)


def test_an_unknown_smtp_host_is_named_so_and_one_digest_stays_owed(store, stiwatch):
    # It said "([Errno -2] Name or service not known); 1 digest of 2026-W47 stay owed".
    store.close()
    for email in ("eu@example.org", "sec@example.org"):
        assert stiwatch("subscribers", "remove", email).exit_code == 0
    env = {"STIWATCH_SMTP_HOST": "nonexistent.invalid", "STIWATCH_SMTP_STARTTLS": "false"}
    result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: the SMTP server at nonexistent.invalid:587 could not be reached (host name not "
        "found); 1 digest of 2026-W47 stays owed for the next run (`stiwatch digest status` "
        "shows them)"]


def test_unreachable_server_is_one_error_recorded_on_each_delivery_still_owed(store, stiwatch,
                                                                              smtp):
    store.close()
    import json
    import socket
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"STIWATCH_SMTP_HOST": "127.0.0.1", "STIWATCH_SMTP_PORT": str(port),
           "STIWATCH_SMTP_STARTTLS": "false"}
    result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
    assert result.exit_code == 1
    [line] = result.output.splitlines()  # the error, once (not again as a log line)
    assert line.startswith(f"Error: the SMTP server at 127.0.0.1:{port} could not be reached "
                           "(connection refused); ")
    assert line.endswith("; 3 digests of 2026-W47 stay owed for the next run "
                         "(`stiwatch digest status` shows them)")
    assert "Nothing owed" not in result.output and "Traceback" not in result.output

    result = stiwatch("digest", "status", "--week", "2026-W47", "--json")
    rows = {r["subscriber"]: r for r in json.loads(result.output)}
    assert {email: r["status"] for email, r in rows.items()} == OWED_AGAIN
    for address in ("all@example.org", "eu@example.org", "sec@example.org"):
        assert rows[address]["attempts"] == 1
        assert rows[address]["last_error"].startswith(
            f"the SMTP server at 127.0.0.1:{port} could not be reached")
        assert rows[address]["next_attempt_at"] is None  # owed at once: the next run tries

    result = stiwatch("digest", "send", "--week", "2026-W47", env=env)  # still down
    assert result.exit_code == 1
    sends_each_reader_once(stiwatch, smtp, smtp.settings_env())
    result = stiwatch("digest", "status", "--week", "2026-W47", "--json")
    rows = {r["subscriber"]: r for r in json.loads(result.output)}
    assert rows["all@example.org"]["status"] == "sent" and rows["all@example.org"]["attempts"] == 3


def test_unreachable_server_keeps_each_delivery_in_its_state_and_records_why(store, smtp):
    """Sent stays sent, a row in doubt (left `sending` by a killed sender) stays in doubt, and
    each owed row records the try and the error; the next run with a server sends each once."""
    settings = settings_for(smtp, delivery_retry_minutes=0)
    smtp.behaviour["sec@example.org"] = "451"
    send_week(store, settings, WEEK)
    store.save_subscribers([{"email": "new@example.org"}])
    store.ensure_deliveries(WEEK.label, ["new@example.org"])
    store.delivery_sending("new@example.org", WEEK.label, "<id@test>", 2)
    port = smtp.port
    smtp.stop()

    report = send_week(store, settings, WEEK)
    assert report.aborted.startswith(f"the SMTP server at 127.0.0.1:{port} could not be reached")
    assert report.unreachable == ["new@example.org", "sec@example.org"]
    assert not report.ok and report.sent == []
    rows = {r["subscriber"]: r for r in store.deliveries(WEEK.label)}
    assert {email: (r["status"], r["attempts"]) for email, r in rows.items()} == {
        "all@example.org": ("sent", 1), "eu@example.org": ("sent", 1),
        "new@example.org": ("sending", 2), "sec@example.org": ("pending", 2),
        "space@example.org": ("skipped", 0)}
    assert rows["sec@example.org"]["last_error"] == report.aborted

    with SmtpServer() as again:
        report = send_week(store, settings_for(again), WEEK)
        assert report.sent == ["new@example.org", "sec@example.org"] and report.ok
        assert sorted(r.rcpt for r in again.messages) == ["new@example.org", "sec@example.org"]
    assert set(states(store).values()) == {"sent", "skipped"}


def test_starttls_required_but_not_offered_is_a_clear_error(store, smtp, stiwatch):
    store.close()
    env = {**smtp.settings_env(), "STIWATCH_SMTP_STARTTLS": "true"}
    result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
    assert result.exit_code == 2
    assert "does not offer STARTTLS" in result.output and "Traceback" not in result.output
    assert smtp.messages == []


def test_a_login_the_server_does_not_offer_is_a_clear_error(store, smtp, stiwatch):
    """A relay without SMTP AUTH and smtp_username set: the error said the server "could not
    be reached (SMTP AUTH extension not supported by server.)", pointing at the network."""
    store.close()
    env = {**smtp.settings_env(), "STIWATCH_SMTP_USERNAME": "stiwatch"}
    result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
    assert result.exit_code == 2
    assert result.stderr == (f"Error: smtp_username: 127.0.0.1:{smtp.port} does not offer a "
                             "login (SMTP AUTH); leave smtp_username empty to send without "
                             "one\n")
    assert smtp.messages == []
    result = stiwatch("digest", "send", "--week", "2026-W47", env=smtp.settings_env())
    assert result.exit_code == 0 and smtp.messages  # nothing was left half-done


def test_a_week_with_nothing_sends_nothing_and_says_so(store, smtp, stiwatch):
    store.close()
    result = stiwatch("digest", "send", "--week", "2026-W40", env=smtp.settings_env())
    assert result.exit_code == 0
    assert "No STI-policy items in 2026-W40: nothing sent." in result.output
    assert smtp.messages == []
    result = stiwatch("digest", "status", "--week", "2026-W40")
    assert "No deliveries recorded for 2026-W40." in result.output


def test_sigkill_mid_run_then_rerun_misses_nobody(db_path, smtp, tmp_path):
    emails = [f"s{n}@example.org" for n in range(6)]
    s = build(db_path, [story("https://x.example/a", "2026-11-17T01:00:00Z", title="Story")])
    s.save_subscribers([{"email": e} for e in emails])
    s.close()
    smtp.behaviour["s2@example.org"] = "block"  # the server never answers this one's DATA
    env = {**os.environ, **smtp.settings_env(), "STIWATCH_DB": str(db_path),
           "STIWATCH_SMTP_TIMEOUT": "60"}
    sender = subprocess.Popen([sys.executable, "-m", "stiwatch", "-q", "digest", "send",
                               "--week", "2026-W47"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert smtp.blocked.wait(60), sender.communicate(timeout=5)
    finally:
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(10)
    assert sender.returncode == -signal.SIGKILL
    with db.open_store(db_path) as s:
        assert states_of(s) == {"s0@example.org": "sent", "s1@example.org": "sent",
                                "s2@example.org": "sending", "s3@example.org": "pending",
                                "s4@example.org": "pending", "s5@example.org": "pending"}
    smtp.behaviour.clear()
    smtp.release()
    rerun = subprocess.run([sys.executable, "-m", "stiwatch", "digest", "send", "--week",
                            "2026-W47"], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    received = {}
    for r in smtp.received:
        received.setdefault(r.rcpt, []).append(r.message["Message-ID"])
    assert sorted(received) == emails  # nobody missed
    duplicates = {rcpt: ids for rcpt, ids in received.items() if len(ids) > 1}
    assert list(duplicates) == ["s2@example.org"]  # only the one in flight at the kill ...
    assert len(set(duplicates["s2@example.org"])) == 1  # ... with the same Message-ID
    with db.open_store(db_path) as s:
        assert set(states_of(s).values()) == {"sent"}


def states_of(store):
    return {row["subscriber"]: row["status"] for row in store.deliveries(WEEK.label)}


def test_a_second_sender_is_refused_while_one_runs(store, stiwatch, db_path):
    import os

    from db import FileLock

    store.close()
    with FileLock(f"{db_path}.digest-send.lock"):
        result = stiwatch("digest", "send", "--week", "2026-W47")
    assert result.exit_code == 2
    assert f"another `stiwatch digest send` (pid {os.getpid()}) is running" in result.output
    result = stiwatch("digest", "send", "--week", "2026-W47")  # released: it goes
    assert result.exit_code == 0 and "3 sent to the outbox" in result.output
    # The lock says what held it last: a second sender, or a restore, names it.
    lock = db_path.parent / f"{db_path.name}.digest-send.lock"
    assert lock.read_text().split(" ", 1)[1] == "stiwatch digest send\n"
    with FileLock(lock, "stiwatch digest send"):
        result = stiwatch("digest", "resolve", "a@example.org", "--week", "2026-W47", "--sent")
    assert result.exit_code == 2
    assert f"`stiwatch digest send` (pid {os.getpid()}) is running" in result.output


@pytest.mark.parametrize("command", [
    ["digest", "send", "--week", "2026-W47"],
    ["digest", "resolve", "a@example.org", "--week", "2026-W47", "--sent"],
], ids=["send", "resolve"])
def test_a_sender_takes_its_lock_before_it_opens_the_store(stiwatch, db_path, monkeypatch,
                                                           command):
    """`digest send` and `digest resolve` opened the store, then took the sender's lock, which
    a `stiwatch restore` holds throughout: a restore that ran whole in that moment moved the
    store they had opened aside, and what they then recorded there was lost (a digest sent
    was mailed again by the next run). Opening it migrated an older store under the
    restore's lock, too. The lock comes first now: held by a restore, they wait for it as the
    commands that edit the store do, then give up with exit 3, the store not even opened."""
    import sqlite3
    import threading

    from db import FileLock
    from db.schema import LATEST_VERSION, migrate
    from stiwatch.commands import digest as digest_command

    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn, target=LATEST_VERSION - 2)  # an open migrates it: visible in the file
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    lock = Path(f"{db_path}.digest-send.lock")
    monkeypatch.setattr(digest_command, "RESTORE_WAIT", 0)
    with FileLock(lock, "stiwatch restore"):
        result = stiwatch(*command)
    with db.open_store(db_path, readonly=True, as_is=True) as s:
        assert s.schema_version == LATEST_VERSION - 2  # not opened: the lock came first
    assert result.exit_code == 3
    assert result.output.splitlines() == [
        f"Error: `stiwatch restore` (pid {os.getpid()}) holds the lock {lock}; nothing was "
        "changed: run this again once it has finished"]

    # A restore that ends within the wait: the command goes on, with the restored store.
    monkeypatch.setattr(digest_command, "RESTORE_WAIT", 30)
    restore = FileLock(lock, "stiwatch restore")
    restore.acquire()
    timer = threading.Timer(1.5, restore.release)
    timer.start()
    try:
        result = stiwatch(*command)
    finally:
        timer.join()
    assert f"Migrated {db_path}" in result.output
    # the store has no subscribers: nothing to send, no such delivery to resolve
    assert result.exit_code == (0 if command[1] == "send" else 2), result.output


def test_week_files_for_the_demo(store, tmp_path):
    from digest.send import write_week_files

    paths = write_week_files(store, settings_for(), WEEK, tmp_path / "demo")
    assert sorted(p.name for p in paths.values()) == [
        "digest-2026-W47.eml", "digest-2026-W47.html", "digest-2026-W47.png"]
    msg = email.message_from_bytes(paths["eml"].read_bytes(), policy=policy.default)
    assert msg["Subject"].endswith(": 2 stories")
    assert 'src="digest-2026-W47.png"' in paths["html"].read_text(encoding="utf-8")
    assert store.deliveries() == []


def test_smtp_login_uses_the_password_from_the_environment(store, stiwatch):
    store.close()
    with SmtpServer(login=("digest", "s3cret")) as server:
        env = {**server.settings_env(), "STIWATCH_SMTP_USERNAME": "digest",
               "STIWATCH_SMTP_PASSWORD": "wrong"}
        result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
        assert result.exit_code == 1
        assert "SMTP login as 'digest' refused: 535" in result.output
        assert server.messages == []
        result = stiwatch("digest", "status", "--week", "2026-W47", "--json")
        import json
        rows = {r["subscriber"]: r for r in json.loads(result.output)}
        assert rows.pop("space@example.org")["status"] == "skipped"  # needed no server
        assert {r["status"] for r in rows.values()} == {"pending"}
        assert {r["last_error"] for r in rows.values()} == {
            "SMTP login as 'digest' refused: 535 5.7.8 Authentication credentials invalid"}

        env["STIWATCH_SMTP_PASSWORD"] = "s3cret"
        result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
        assert result.exit_code == 0, result.output
        assert sorted(r.rcpt for r in server.messages) == ["all@example.org", "eu@example.org",
                                                           "sec@example.org"]
        assert server.logins and set(server.logins) == {"digest"}


def test_removed_subscribers_get_nothing(store, smtp):
    store.deactivate_subscriber("eu@example.org")
    report = send_week(store, settings_for(smtp), WEEK)
    assert sorted(report.sent) == ["all@example.org", "sec@example.org"]
    assert "eu@example.org" not in states(store)


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_tls_connections_verify_the_server_certificate(store, stiwatch, tmp_path, monkeypatch,
                                                       mode):
    """STARTTLS (port 587 style) and implicit TLS (465): mail goes out only over verified TLS."""
    store.close()
    certfile, keyfile = self_signed_certificate(tmp_path)
    with SmtpServer(tls=mode, cert=(certfile, keyfile)) as server:
        env = {**server.settings_env(), "STIWATCH_SMTP_STARTTLS": str(mode == "starttls"),
               "STIWATCH_SMTP_SSL": str(mode == "implicit")}
        # Not trusted yet: nothing is sent, everyone stays owed, the error says why.
        result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
        assert result.exit_code == 1
        assert "CERTIFICATE_VERIFY_FAILED" in result.output and "Traceback" not in result.output
        assert server.messages == []

        monkeypatch.setenv("SSL_CERT_FILE", str(certfile))  # now the client trusts it
        result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
        assert result.exit_code == 0, result.output
        assert sorted(r.rcpt for r in server.messages) == ["all@example.org", "eu@example.org",
                                                           "sec@example.org"]


# -- a week is sent only once it is over ---------------------------------------------------------

W48 = parse_week("2026-W48", "Asia/Tokyo")
FRIDAY_W48 = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)  # Friday 18:00 in Tokyo


def test_a_week_not_over_yet_is_refused_and_nothing_is_recorded(store, smtp):
    from digest.errors import WeekNotOver

    add(store, [story("https://x.example/w48", "2026-11-24T01:00:00Z", title="Tuesday story",
                      areas=["open_science"])])
    settings = settings_for(smtp)
    last_second = datetime(2026, 11, 29, 14, 59, 59, tzinfo=timezone.utc)  # Sun 23:59:59 Tokyo
    for now in (FRIDAY_W48, last_second):
        for dry_run in (False, True):
            with pytest.raises(WeekNotOver, match=r"2026-W48 is not over until Mon 30 Nov 2026 "
                                                  r"00:00 \(Asia/Tokyo\).*--partial-week"):
                send_week(store, settings, W48, now=now, dry_run=dry_run)
    assert store.deliveries() == [] and smtp.messages == []

    # Sent once the week is over (Monday 00:00 in Tokyo is Sunday 15:00 UTC).
    report = send_week(store, settings, W48, now=datetime(2026, 11, 29, 15, 0, tzinfo=timezone.utc))
    assert report.sent == ["all@example.org"]


def test_partial_week_sends_the_week_so_far_but_never_a_future_week(store, smtp):
    from digest.errors import WeekNotOver

    add(store, [story("https://x.example/w48", "2026-11-24T01:00:00Z", title="Tuesday story",
                      areas=["open_science"])])
    settings = settings_for(smtp)
    report = send_week(store, settings, W48, now=FRIDAY_W48, partial_week=True)
    assert sorted(report.sent) == ["all@example.org"]
    # The reader is told the week is cut short, above the stories and over the trends, whose
    # counts of part of a week read as falls against whole weeks.
    text, html = (part.get_content() for part in smtp.messages[0].message.get_payload()[0]
                  .get_payload())
    note = ("This week is not over yet: stories up to Fri 27 Nov 18:00 (Asia/Tokyo); against "
            "whole weeks its counts read low.")
    flat = " ".join(text.split())
    assert flat.count(note) == 2 and flat.index(note) < flat.index("Tuesday story")
    assert " ".join(html.split()).count(note) == 2
    with pytest.raises(WeekNotOver, match="2026-W49 has not started yet"):
        send_week(store, settings, W48.shift(1), now=FRIDAY_W48, partial_week=True)
    assert {row["period"] for row in store.deliveries()} == {"2026-W48"}


def test_cli_refuses_the_current_week_unless_partial_week(store, smtp, stiwatch):
    from zoneinfo import ZoneInfo

    from digest.weeks import week_of

    now = datetime.now(timezone.utc)
    current = week_of(now, ZoneInfo("Asia/Tokyo"))
    so_far = current.start + (now - current.start) / 2
    add(store, [story("https://x.example/now", so_far.astimezone(timezone.utc).isoformat(),
                      title="This week so far", areas=["open_science"])])
    store.close()
    env = smtp.settings_env()
    result = stiwatch("digest", "send", "--week", current.label, env=env)
    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert line.startswith(f"Error: --week {current.label} is not over until ")
    assert "--partial-week" in line
    result = stiwatch("digest", "send", "--week", current.shift(1).label, "--partial-week", env=env)
    assert result.exit_code == 2
    assert f"{current.shift(1).label} has not started yet" in result.output
    result = stiwatch("digest", "status", "--week", current.label)
    assert f"No deliveries recorded for {current.label}." in result.output
    assert smtp.messages == []

    # Looking at the week so far is fine: a preview sends and records nothing.
    result = stiwatch("digest", "preview", "--week", current.label)
    assert result.exit_code == 0, result.output

    result = stiwatch("digest", "send", "--week", current.label, "--partial-week", env=env)
    assert result.exit_code == 0, result.output
    assert [r.rcpt for r in smtp.messages] == ["all@example.org"]


# -- an outbox that cannot be written ------------------------------------------------------------

def test_an_outbox_that_is_a_file_is_one_error_and_marks_nothing_sending(store, stiwatch,
                                                                         isolated_env):
    store.close()
    (isolated_env / "afile").write_text("not a folder\n")
    for dry_run in ((), ("--dry-run",)):
        result = stiwatch("digest", "send", "--week", "2026-W47", *dry_run,
                          env={"STIWATCH_OUTBOX": "afile"})
        assert result.exit_code == 2, result.output
        assert result.output.splitlines() == [
            "Error: outbox: afile is a file, not a folder (setting `outbox`: point it at a "
            "folder, or move the file)"]
    assert (isolated_env / "afile").read_text() == "not a folder\n"
    result = stiwatch("digest", "status", "--week", "2026-W47")
    assert "sending" not in result.output and " sent " not in result.output

    result = stiwatch("digest", "send", "--week", "2026-W47", env={"STIWATCH_OUTBOX": "box"})
    assert result.exit_code == 0, result.output
    assert "3 sent to the outbox" in result.output
    assert len(list((isolated_env / "box" / "2026-W47").glob("*.eml"))) == 3


def test_a_message_that_cannot_be_written_is_retried_not_left_sending(store, isolated_env):
    settings = settings_for(delivery_retry_minutes=0)
    blocker = isolated_env / "outbox" / "2026-W47" / "eu@example.org.eml"
    blocker.mkdir(parents=True)  # a folder where the message file must go
    report = send_week(store, settings, WEEK)
    assert sorted(report.sent) == ["all@example.org", "sec@example.org"]
    [retry] = report.retry
    assert retry["email"] == "eu@example.org"
    assert retry["error"].startswith("cannot write outbox/2026-W47/eu@example.org.eml: ")
    assert states(store)["eu@example.org"] == "pending"
    assert sorted(p.name for p in blocker.parent.iterdir()) == [
        "all@example.org.eml", "eu@example.org.eml", "sec@example.org.eml"]  # no temp left

    blocker.rmdir()
    report = send_week(store, settings, WEEK)
    assert report.sent == ["eu@example.org"]
    assert blocker.is_file()


def test_a_story_stored_after_its_weeks_digest_comes_in_the_readers_next_one(store, smtp):
    """A source down over the weekend, a press release posted days after its date: a story
    stored once its week's digest went out reaches each reader's next digest, once, in a
    section of its own; one stored before that digest was built is not repeated, and a reader
    who had no digest before gets only the week's own stories."""
    settings = settings_for(smtp)
    send_week(store, settings, WEEK, now=datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc))
    assert len(smtp.to("all@example.org")) == 1
    add(store, [
        story("https://x.example/kr", "2026-11-19T02:00:00Z", source="news-a",
              title="Korea doubles AI semiconductor grants", areas=["business_innovation"],
              countries=["KR"], regions=["east_asia"]),
        story("https://x.example/old", "2026-09-01T02:00:00Z", source="news-a",
              title="A September item found only now", areas=["governance"]),
        story("https://x.example/w48", "2026-11-25T02:00:00Z", source="eu-rtd",
              title="EU research security guidance", areas=["research_security"],
              countries=["EU"], regions=["europe"]),
    ])
    store.save_subscribers([{"email": "new@example.org", "name": "New"}])
    week48 = parse_week("2026-W48", "Asia/Tokyo")
    report = send_week(store, settings, week48,
                       now=datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc))
    assert sorted(report.sent) == ["all@example.org", "eu@example.org", "new@example.org",
                                   "sec@example.org"]

    def text(email):
        [msg] = [m for m in smtp.to(email) if "2026-W48" in m["Subject"]]
        return msg["Subject"], msg.get_body(("plain",)).get_content(), \
            msg.get_body(("html",)).get_content()

    subject, body, html = text("all@example.org")
    assert subject.endswith(": 2 stories")
    assert "2 STI-policy stories this week (1 published earlier" in body  # no filters
    late = body.split("== Found since your last digest ==", 1)[1]
    assert "Korea doubles AI semiconductor grants" in late and "Thu 19 Nov" in late
    assert "EU research security guidance" in body.split("== Found since", 1)[0]
    assert "Japan research security" not in body  # in last week's digest already
    assert "September" not in body  # older than the weeks a late story is looked for in
    assert "Found since your last digest" in html and "Korea doubles" in html
    # filters apply to the late section as to the rest
    assert "Korea" not in text("sec@example.org")[1]
    # a reader without an earlier digest: the week's own stories only
    subject, body, _ = text("new@example.org")
    assert subject.endswith(": 1 story") and "Found since" not in body and "Korea" not in body
    assert {row["subscriber"]: row["through_item_id"] for row in store.deliveries("2026-W48")
            } == dict.fromkeys(["all@example.org", "eu@example.org", "new@example.org",
                                "sec@example.org", "space@example.org"], 5)

    # the week after: the late story is not shown again
    week49 = parse_week("2026-W49", "Asia/Tokyo")
    add(store, [story("https://x.example/w49", "2026-12-01T02:00:00Z", title="Week 49 story",
                      areas=["governance"])])
    send_week(store, settings, week49, now=datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc))
    [msg] = [m for m in smtp.to("all@example.org") if "2026-W49" in m["Subject"]]
    body = msg.get_body(("plain",)).get_content()
    assert "Week 49 story" in body and "Korea" not in body and "Found since" not in body


def test_a_new_report_of_an_event_a_reader_had_brings_it_back_as_found_late(store, smtp):
    """The reports of one event are one story, led by the official source's. A reader whose
    digest had that report alone (sent on a retry, after it was stored) gets the story again
    in the next digest's late section once another source's report of it is stored: that
    report is news to them, though the story's lead is not."""
    news, official, _ = G7_MEETING
    settings = settings_for(smtp)
    t0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
    smtp.behaviour["sec@example.org"] = "451"
    send_week(store, settings, WEEK, now=t0)
    add(store, [official])  # published in the week, stored after all@'s digest was built
    smtp.behaviour.clear()
    assert send_week(store, settings, WEEK, now=t0 + timedelta(hours=2)).sent == [
        "sec@example.org"]
    [first] = smtp.to("sec@example.org")
    assert official["title"] in first.get_body(("plain",)).get_content()
    add(store, [news])
    send_week(store, settings, parse_week("2026-W48", "Asia/Tokyo"),
              now=datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc))
    for reader in ("sec@example.org", "all@example.org"):
        [msg] = [m for m in smtp.to(reader) if "2026-W48" in m["Subject"]]
        late = msg.get_body(("plain",)).get_content().split(
            "== Found since your last digest ==", 1)[1]
        assert official["title"] in late and "STI News A" in late, reader


def test_two_installations_give_the_same_reader_different_message_ids(store, smtp, tmp_path):
    """A pilot beside the production store, both mailing a reader from the same domain: mail
    providers drop a second message with a Message-ID they have seen, so each store has its
    own. A resend keeps the one its delivery recorded."""
    other = build(tmp_path / "pilot.db", [
        story("https://x.example/jp", "2026-11-17T01:00:00Z", title="Japan research security",
              areas=["research_security"], countries=["JP"], regions=["east_asia"])])
    other.save_subscribers([{"email": "all@example.org"}])
    settings = settings_for(smtp)
    now = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
    send_week(store, settings, WEEK, now=now)
    send_week(other, settings, WEEK, now=now)
    ids = [m["Message-ID"] for m in smtp.to("all@example.org")]
    assert len(ids) == 2 and ids[0] != ids[1]
    assert store.get_delivery("all@example.org", WEEK.label)["message_id"] == ids[0]

    # a delivery recorded with an earlier stiwatch's Message-ID is resent with it
    with store.write():
        store.conn.execute("UPDATE deliveries SET status = 'sending', message_id = ?"
                           " WHERE subscriber = 'all@example.org'", ["<digest-old@localhost>"])
    send_week(store, settings, WEEK, now=now)
    assert smtp.to("all@example.org")[-1]["Message-ID"] == "<digest-old@localhost>"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_sender_stopped_while_the_server_holds_the_message_leaves_it_in_doubt(
        db_path, smtp, tmp_path, signum):
    """`systemctl stop` (SIGTERM) or Ctrl-C while the server has the whole message and has not
    answered yet: the row was left `sending`, so the next run sent it again, a second copy
    of a message the server may well have delivered. Now it is in doubt, as after a timeout
    there, and the stop is quick (no QUIT waiting for the server). Its one error line named
    only the signal: which reader was left in doubt, and how to settle it, is said there."""
    import time

    emails = ["s0@example.org", "s1@example.org", "s2@example.org"]
    s = build(db_path, [story("https://x.example/a", "2026-11-17T01:00:00Z", title="Story")])
    s.save_subscribers([{"email": e} for e in emails])
    s.close()
    smtp.behaviour["s1@example.org"] = "block"
    env = {**os.environ, **smtp.settings_env(), "STIWATCH_DB": str(db_path),
           "STIWATCH_SMTP_TIMEOUT": "60"}
    sender = subprocess.Popen([sys.executable, "-m", "stiwatch", "-q", "digest", "send",
                               "--week", "2026-W47"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert smtp.blocked.wait(60), sender.communicate(timeout=5)
    time.sleep(0.5)  # the server has it; the sender is past its last write, awaiting the answer
    stopped_at = time.monotonic()
    sender.send_signal(signum)
    _out, err = sender.communicate(timeout=30)
    assert time.monotonic() - stopped_at < 10
    assert sender.returncode == 128 + signum
    # the one line says what needs a look: the reader in doubt, how to settle it, what is owed
    assert err.splitlines()[-1] == (
        f"Error: interrupted by {signal.Signals(signum).name}: the send stopped; in doubt "
        "s1@example.org (the server may have it: `stiwatch digest resolve s1@example.org "
        "--week 2026-W47 --sent` once it is known to have arrived, or `--resend`); 1 digest "
        "of 2026-W47 stays owed for the next run (`stiwatch digest status` shows them)"), err
    with db.open_store(db_path) as s:
        rows = {row["subscriber"]: row for row in s.deliveries(WEEK.label)}
    stopped = rows["s1@example.org"]
    assert stopped["status"] == "sending" and stopped["unanswered_at"], err
    assert stopped["last_error"].startswith("stopped after the message was sent")
    smtp.behaviour.clear()
    smtp.release()
    rerun = subprocess.run([sys.executable, "-m", "stiwatch", "digest", "send", "--week",
                            "2026-W47"], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 in doubt" in rerun.stdout, rerun.stdout  # for the operator to settle
    assert [r.rcpt for r in smtp.received].count("s1@example.org") == 1  # never a second copy
    assert sorted({r.rcpt for r in smtp.received}) == emails  # and nobody missed


def test_a_login_without_a_password_in_the_environment_names_the_variable(store, stiwatch):
    """smtp_username set, STIWATCH_SMTP_PASSWORD missing from the job's environment (a
    crontab without it, systemd's optional EnvironmentFile=- not there): the empty password was
    sent, and the error, 'login refused: 535 Authentication credentials invalid' (exit 1, every
    delivery's try counted), said the password was wrong when none had been given."""
    store.close()
    with SmtpServer(login=("digest", "s3cret")) as server:
        env = {**server.settings_env(), "STIWATCH_SMTP_USERNAME": "digest"}
        result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
        assert result.exit_code == 2
        assert result.stderr == (
            "Error: smtp_username is set (digest) but the SMTP password is empty: give it in "
            "the environment variable STIWATCH_SMTP_PASSWORD of the command (never in a file "
            "stiwatch reads; see docs/operations.md)\n")
        assert server.messages == [] and not server.logins
        result = stiwatch("digest", "status", "--week", "2026-W47", "--json")
        import json
        assert {r["attempts"] for r in json.loads(result.output)} == {0}  # nothing was tried

        env["STIWATCH_SMTP_PASSWORD"] = "s3cret"
        result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
        assert result.exit_code == 0, result.output
        assert sorted(r.rcpt for r in server.messages) == ["all@example.org", "eu@example.org",
                                                           "sec@example.org"]


SECRET = "k9-unsubscribe-key-for-tests-only"
TOKEN_URL = "https://agency.example/unsub?email={email}&token={token}"


def hmac_token(secret: str, address: str) -> str:
    """The token as docs/operations.md tells a service to make it, independently of stiwatch."""
    import hashlib
    import hmac

    return hmac.new(secret.encode(), address.strip().lower().encode(), hashlib.sha256).hexdigest()


def test_token_in_the_unsubscribe_link_is_the_readers_hmac_and_removes_only_them(store, smtp,
                                                                                stiwatch):
    """{email} alone lets anyone who knows an address unsubscribe it (RFC 8058 section 3 asks
    for a URI that is hard to forge): {token} is the HMAC-SHA256 of the address keyed by
    STIWATCH_UNSUBSCRIBE_SECRET, and `subscribers remove --token` checks one for a service."""
    store.close()
    env = {**smtp.settings_env(), "STIWATCH_LIST_UNSUBSCRIBE": TOKEN_URL,
           "STIWATCH_UNSUBSCRIBE_SECRET": SECRET}
    result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
    assert result.exit_code == 0, result.output
    assert sorted(r.rcpt for r in smtp.messages) == ["all@example.org", "eu@example.org",
                                                     "sec@example.org"]
    for received in smtp.messages:
        msg = received.message
        url = (f"https://agency.example/unsub?email={received.rcpt.replace('@', '%40')}"
               f"&token={hmac_token(SECRET, received.rcpt)}")
        assert msg["List-Unsubscribe"] == \
            f"<{url}>, <mailto:stiwatch@localhost?subject=unsubscribe>"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert f"Unsubscribe: {url}" in msg.get_body(("plain",)).get_content()
        assert f'href="{url.replace("&", "&amp;")}"' in msg.get_body(("html",)).get_content()

    # Another reader's token, a made-up one, and an empty one: refused, nothing changed.
    for wrong in (hmac_token(SECRET, "all@example.org"), "0" * 64, "",
                  hmac_token("another secret", "sec@example.org")):
        result = stiwatch("subscribers", "remove", "sec@example.org", "--token", wrong, env=env)
        assert result.exit_code == 2
        assert result.stderr == ("Error: --token: not the unsubscribe token of "
                                 "sec@example.org; nothing was changed\n")
    # Without the secret a token cannot be checked at all.
    result = stiwatch("subscribers", "remove", "sec@example.org", "--token",
                      hmac_token(SECRET, "sec@example.org"))
    assert result.exit_code == 2
    assert "STIWATCH_UNSUBSCRIBE_SECRET" in result.stderr and "nothing was changed" in \
        result.stderr
    active = {r["email"] for r in json.loads(stiwatch("subscribers", "list", "--json").output)}
    assert "sec@example.org" in active

    # The right one (as a service passes what the link carried, in any case) removes the reader.
    result = stiwatch("subscribers", "remove", "Sec@Example.org", "--token",
                      hmac_token(SECRET, "sec@example.org").upper(), env=env)
    assert result.exit_code == 0, result.output
    assert "removed sec@example.org" in result.output
    active = {r["email"] for r in json.loads(stiwatch("subscribers", "list", "--json").output)}
    assert active == {"all@example.org", "eu@example.org", "space@example.org"}


@pytest.mark.parametrize("setting", ["list_unsubscribe", "list_unsubscribe_mailto"])
def test_a_token_without_the_secret_refuses_the_send_before_anything_is_sent(
        store, smtp, stiwatch, db_path, setting):
    """A {token} and no STIWATCH_UNSUBSCRIBE_SECRET in the job's environment: an empty token in
    every link would be refused by the operator's service (readers could not unsubscribe), so
    nothing is sent and no delivery is touched."""
    store.close()
    value = (TOKEN_URL if setting == "list_unsubscribe"
             else "mailto:unsub@agency.example?subject={email}%20{token}")
    env = {**smtp.settings_env(), f"STIWATCH_{setting.upper()}": value}
    if setting == "list_unsubscribe_mailto":
        env["STIWATCH_LIST_UNSUBSCRIBE"] = "https://agency.example/unsub?email={email}"
    result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {setting} uses {{token}} but the unsubscribe secret is empty: give it in the "
        "environment variable STIWATCH_UNSUBSCRIBE_SECRET of the command (never in a file "
        "stiwatch reads; see docs/operations.md)\n")
    assert smtp.received == []
    with db.open_store(db_path) as s:
        assert s.deliveries(WEEK.label) == []
    # The preview of a reader's digest holds the same link: refused alike.
    result = stiwatch("digest", "preview", "--week", "2026-W47", "--subscriber",
                      "sec@example.org", env=env)
    assert result.exit_code == 2 and "STIWATCH_UNSUBSCRIBE_SECRET" in result.stderr

    result = stiwatch("digest", "send", "--week", "2026-W47",
                      env={**env, "STIWATCH_UNSUBSCRIBE_SECRET": SECRET})
    assert result.exit_code == 0, result.output
    assert len(smtp.messages) == 3


def test_run_with_digest_refuses_a_token_without_its_secret_before_crawling(store, smtp,
                                                                            stiwatch, db_path):
    """The scheduled `run --digest` would crawl for minutes, then stop at the digest: it stops
    at once, says why in one line, and records the run as stopped for `stiwatch status`."""
    store.close()
    env = {**smtp.settings_env(), "STIWATCH_LIST_UNSUBSCRIBE": TOKEN_URL}
    result = stiwatch("run", "--digest", env=env)
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: list_unsubscribe uses {token} but the unsubscribe secret is empty: give it in "
        "the environment variable STIWATCH_UNSUBSCRIBE_SECRET of the command (never in a file "
        "stiwatch reads; see docs/operations.md)\n")
    assert smtp.received == []
    with db.open_store(db_path) as s:
        assert s.deliveries(WEEK.label) == []
        [run] = s.runs()
    assert run["status"] == "failed" and run["command"] == "run --digest"


HORIZON_WEEK = [
    story("https://eu-rtd.example/wp", "2026-11-17T03:00:00Z", source="eu-rtd",
          title="Horizon Europe work programme for 2027 adopted",
          summary="The Commission adopted the programme's last work plan.",
          areas=["open_science"], countries=["EU"], regions=["europe"]),
    story("https://de-bmbf.example/oa", "2026-11-18T03:00:00Z", source="de-bmbf",
          title="Germany sets open access rules for federal grants",
          summary="The rules follow those of Horizon Europe for publications.",
          areas=["open_science"], countries=["DE"], regions=["europe"]),
    story("https://jp-mext.example/assoc", "2026-11-19T03:00:00Z", source="jp-mext",
          title="Japan opens talks on association to Horizon Europe",
          summary="Japanese researchers could lead projects of the EU programme.",
          areas=["international"], countries=["JP"], regions=["east_asia"]),
]


def test_a_reader_who_follows_words_gets_the_weeks_stories_that_name_them(
        store, stiwatch, isolated_env, db_path):
    """`subscribers add --query`: the week's stories that name the words and meet the other
    filters, each saying so; the digest's filters name the query; a section cut short gives
    the search commands that list what it took; stories found late are matched alike."""
    add(store, HORIZON_WEEK)
    store.close()
    for args in (["hz@example.org", "--query", '"Horizon Europe"'],
                 ["hzeu@example.org", "--query", '"Horizon Europe"', "--regions", "europe"],
                 ["all@example.org", "--query", '"Horizon Europe"'],
                 ["all@example.org", "--query", ""]):  # cleared: everything again
        assert stiwatch("subscribers", "add", *args).exit_code == 0
    env = {"STIWATCH_DIGEST_SECTION_CAP": "1"}
    result = stiwatch("digest", "send", "--week", "2026-W47", env=env)
    assert result.exit_code == 0, result.output
    folder = isolated_env / "outbox" / "2026-W47"

    def read(path):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        return msg["Subject"], msg.get_body(("plain",)).get_content(), \
            msg.get_body(("html",)).get_content()

    subject, text, html = read(folder / "hz@example.org.eml")
    assert subject.endswith(": 3 stories")
    # cap 1: the headline and the open-science section's top story are shown
    assert HORIZON_WEEK[2]["title"] in text and HORIZON_WEEK[1]["title"] in text
    assert "1 more in Open science not shown" in text
    assert "Japan research security" not in text and "EU open science mandate" not in text
    assert text.count('Why you got this: words: "Horizon Europe"') == 2  # cap 1: 2 shown
    assert "Why you got this: words: &#34;Horizon Europe&#34;" in html
    assert 'Filters: words: "Horizon Europe".' in text
    assert "filters: words: &#34;Horizon Europe&#34;." in html
    # the open-science section took two stories and shows one: its command lists both
    [command] = [line.strip() for line in text.splitlines()
                 if line.strip().startswith("stiwatch search") and "open_science" in line]
    assert command.endswith("--sort newest -- '\"Horizon Europe\"'"), command
    # run as printed (JSON asked for before the `--` that starts the query)
    listed = stiwatch("search", "--format", "json", *shlex.split(command)[2:])
    assert listed.exit_code == 0, listed.output
    assert sorted(row["title"] for row in json.loads(listed.stdout)) == sorted(
        item["title"] for item in HORIZON_WEEK[:2])

    subject, text, _ = read(folder / "hzeu@example.org.eml")
    assert subject.endswith(": 2 stories") and HORIZON_WEEK[2]["title"] not in text
    assert "Why you got this: region: Europe; words: \"Horizon Europe\"" in text
    assert 'Filters: places: Europe; and words: "Horizon Europe".' in text
    subject, text, _ = read(folder / "all@example.org.eml")
    assert subject.endswith(": 5 stories") and "Filters: none" in text

    # W48: two stories of W47 stored since, one naming the programme
    with db.open_store(db_path) as later:
        add(later, [
            story("https://eu-rtd.example/late", "2026-11-20T03:00:00Z", source="eu-rtd",
                  title="Horizon Europe mission boards named", areas=["governance"],
                  countries=["EU"], regions=["europe"]),
            story("https://eu-rtd.example/other", "2026-11-20T04:00:00Z", source="eu-rtd",
                  title="EU digital skills targets", areas=["governance"], countries=["EU"],
                  regions=["europe"]),
        ])
        report = send_week(later, settings_for(digest_section_cap=1),
                           parse_week("2026-W48", "Asia/Tokyo"),
                           now=datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc))
    assert "hz@example.org" in report.sent
    subject, text, _ = read(isolated_env / "outbox" / "2026-W48" / "hz@example.org.eml")
    late = text.split("== Found since your last digest ==", 1)[1]
    assert "Horizon Europe mission boards named" in late
    assert "EU digital skills targets" not in text
    assert subject.endswith(": 1 story")
