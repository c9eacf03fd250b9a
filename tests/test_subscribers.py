"""`stiwatch subscribers add/import/list/remove`: filters checked against the taxonomy, addresses
checked, a CSV validated as a whole before anything is written."""

from __future__ import annotations

import json
import os
import threading

import db


def listed(stiwatch, *extra):
    result = stiwatch("subscribers", "list", "--json", *extra)
    assert result.exit_code == 0, result.output
    return {row["email"]: row for row in json.loads(result.output)}


def test_add_list_update_remove(stiwatch, db_path):
    result = stiwatch("subscribers", "add", "Aiko@Example.org", "--name", "Aiko Sato",
                      "--areas", "research_security,International", "--countries", "jp,US",
                      "--regions", "Europe")  # ids in any case
    assert result.exit_code == 0, result.output
    assert "added aiko@example.org" in result.output
    assert stiwatch("subscribers", "add", "ben@example.org").exit_code == 0
    rows = listed(stiwatch)
    assert rows["aiko@example.org"]["areas"] == ["research_security", "international"]
    assert rows["aiko@example.org"]["countries"] == ["JP", "US"]
    assert rows["aiko@example.org"]["regions"] == ["europe"]
    assert rows["aiko@example.org"]["domains"] == []
    assert rows["ben@example.org"]["areas"] == []  # everything

    table = stiwatch("subscribers", "list").output
    assert "aiko@example.org" in table and "research_security,international" in table

    result = stiwatch("subscribers", "add", "aiko@example.org", "--domains", "AI")
    assert "updated aiko@example.org" in result.output
    aiko = listed(stiwatch)["aiko@example.org"]
    assert aiko["domains"] == ["ai"]  # only what was given changes
    assert aiko["areas"] == ["research_security", "international"] and aiko["name"] == "Aiko Sato"
    stiwatch("subscribers", "add", "aiko@example.org", "--areas", "")
    assert listed(stiwatch)["aiko@example.org"]["areas"] == []

    result = stiwatch("subscribers", "remove", "ben@example.org")
    assert result.exit_code == 0 and "removed ben@example.org" in result.output
    assert "ben@example.org" not in listed(stiwatch)
    assert listed(stiwatch, "--all")["ben@example.org"]["active"] is False
    with db.open_store(db_path) as store:  # history kept
        ben = store.get_subscriber("ben@example.org")
        assert ben["active"] is False

    # again (an unsubscribe link followed twice): nothing to do, said so, as `tag` says of a
    # correction already made; nothing written
    result = stiwatch("subscribers", "remove", "Ben@example.org")
    assert result.exit_code == 0, result.output
    assert result.output == (f"ben@example.org is not subscribed: removed already "
                             f"({ben['updated_at'][:10]}); nothing changed.\n")
    with db.open_store(db_path) as store:
        assert store.get_subscriber("ben@example.org") == ben

    result = stiwatch("subscribers", "remove", "nobody@example.org")
    assert result.exit_code == 2
    assert "Error: no subscriber 'nobody@example.org'" in result.output


def test_add_refuses_unknown_ids_and_bad_addresses(stiwatch, db_path):
    db.open_store(db_path).close()  # an existing store, so that `list` can show it unchanged
    cases = [
        (["a@example.org", "--areas", "governance,space_policy"],
         "areas: unknown area 'space_policy' (expected one of: governance, public_research"),
        (["a@example.org", "--domains", "blockchain"], "domains: unknown domain 'blockchain'"),
        (["a@example.org", "--countries", "JP,XX"], "countries: unknown country 'XX'"),
        (["a@example.org", "--regions", "asia"], "regions: unknown region 'asia'"),
        (["a@example.org", "--countries", "JP,UK"],
         "countries: unknown country 'UK' (United Kingdom is 'GB')\n"),
        (["a@example.org", "--areas", "open-science"],
         "areas: unknown area 'open-science' (did you mean 'open_science'?)\n"),
        (["not-an-address"], "'not-an-address' is not a valid e-mail address"),
        (["a@b"], "'a@b' is not a valid e-mail address"),
        (["a b@example.org"], "'a b@example.org' is not a valid e-mail address"),
        (["a@@example.org"], "is not a valid e-mail address"),
        # two dots in a row: the local part's pattern lets them through, SMTP refuses them
        (["ann..lee@example.org"], "'ann..lee@example.org' is not a valid e-mail address"),
    ]
    for args, message in cases:
        result = stiwatch("subscribers", "add", *args)
        assert result.exit_code == 2, args
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert listed(stiwatch) == {}


def test_import_csv(stiwatch, tmp_path):
    good = tmp_path / "subs.csv"
    good.write_text(
        "email,name,areas,domains,countries,regions\n"
        "aiko@example.org,Aiko,\"research_security,international\",,JP,\n"
        "ben@example.org,Ben,,ai;quantum,,europe\n"
        "\n"
        "chloe@example.org,,,,,\n"
        ",,,,,\n", encoding="utf-8")  # a spreadsheet's empty row: commas only
    result = stiwatch("subscribers", "import", str(good))
    assert result.exit_code == 0, result.output
    assert "3 subscribers imported" in result.output and "3 added, 0 updated" in result.output
    rows = listed(stiwatch)
    assert rows["aiko@example.org"]["areas"] == ["research_security", "international"]
    assert rows["ben@example.org"]["domains"] == ["ai", "quantum"]
    assert rows["chloe@example.org"]["name"] is None


def test_import_of_a_shift_jis_csv_says_to_save_it_as_utf8(stiwatch, tmp_path):
    """Excel's plain "CSV" in Japan is Shift_JIS: the error was Python's "'utf-8' codec can't
    decode byte 0x8e in position 25: invalid start byte"."""
    csv_file = tmp_path / "subs.csv"
    csv_file.write_bytes("email,name\nyamada@example.org,山田太郎\n".encode("cp932"))
    result = stiwatch("subscribers", "import", str(csv_file))
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {csv_file}: line 2: not UTF-8 text (byte 0x8e): save the "
                             "file as UTF-8 (in Excel: CSV UTF-8)\n")


def test_import_reports_every_bad_line_and_imports_nothing(stiwatch, tmp_path):
    assert stiwatch("subscribers", "add", "keep@example.org").exit_code == 0
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "email,name,areas,countries\n"
        "ok@example.org,OK,governance,JP\n"
        "broken-address,Bad,,\n"
        "x@example.org,X,\"governance,quantum_stuff\",\n"
        "y@example.org,Y,,ZZ\n"
        "ok@example.org,Again,,\n", encoding="utf-8")
    result = stiwatch("subscribers", "import", str(bad))
    assert result.exit_code == 2
    out = result.output
    assert f"{bad}: line 3: email: 'broken-address' is not a valid e-mail address" in out
    assert f"{bad}: line 4: areas: unknown area 'quantum_stuff'" in out
    assert f"{bad}: line 5: countries: unknown country 'ZZ'" in out
    assert f"{bad}: line 6: email: ok@example.org already on line 2" in out
    assert "nothing was imported" in out
    assert set(listed(stiwatch)) == {"keep@example.org"}

    header = tmp_path / "header.csv"
    header.write_text("mail,name\nx@example.org,X\n", encoding="utf-8")
    result = stiwatch("subscribers", "import", str(header))
    assert result.exit_code == 2 and "line 1: the header needs an 'email' column" in result.output
    result = stiwatch("subscribers", "import", str(tmp_path / "missing.csv"))
    assert result.exit_code == 2 and "missing.csv: no such file" in result.output
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_text("email;name\nx@example.org;X\n", encoding="utf-8")
    result = stiwatch("subscribers", "import", str(semicolons))
    assert result.exit_code == 2
    assert result.output.splitlines()[-1].endswith(
        "its columns are separated by semicolons; separate them by commas (in Excel: CSV UTF-8)")
    assert set(listed(stiwatch)) == {"keep@example.org"}


def test_import_reads_a_pipe(stiwatch, tmp_path):
    # `subscribers import <(grep ... readers.csv)` said "/dev/fd/63: no such file"
    fifo = tmp_path / "readers.pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_text,
                              args=("email,name\npipe@example.org,Pipe\n",), daemon=True)
    writer.start()
    result = stiwatch("subscribers", "import", str(fifo))
    if writer.is_alive():  # the pipe was never read: free the writer before failing
        fifo.read_text()
    writer.join(timeout=10)
    assert result.exit_code == 0, result.output
    assert "1 subscriber imported" in result.output
    assert listed(stiwatch)["pipe@example.org"]["name"] == "Pipe"


# A name goes into the To: header: a line break there would start a header of its own (Bcc: ...).
BAD_NAMES = [
    ("Bob\nBcc: victim@example.com", "U+000A"),
    ("Bob\rBcc: victim@example.com", "U+000D"),
    ("Bob\tSmith", "U+0009"),
    ("Bob\x00", "U+0000"),
    ("Bob\x1b[31m", "U+001B"),
    ("Bob\x7f", "U+007F"),
    ("Bob\x85Smith", "U+0085"),  # C1: NEXT LINE
    ("Bob\u2028Smith", "U+2028"),  # LINE SEPARATOR: a line break to the e-mail package too
]


def test_add_refuses_a_name_with_a_line_break_or_control_character(stiwatch):
    assert stiwatch("subscribers", "add", "bob@example.org", "--name", "Bob").exit_code == 0
    for name, code in BAD_NAMES:
        for email in ("new@example.org", "bob@example.org"):  # a new one, and an update
            result = stiwatch("subscribers", "add", email, "--name", name)
            assert result.exit_code == 2, (name, result.output)
            assert result.output.splitlines() == [
                f"Error: name: {name!r} contains a line break or control character ({code}); "
                "a display name is one line of plain text"], (name, result.output)
    rows = listed(stiwatch)
    assert list(rows) == ["bob@example.org"] and rows["bob@example.org"]["name"] == "Bob"
    # Letters of any script, and spaces, are fine.
    result = stiwatch("subscribers", "add", "bob@example.org", "--name", "Bób 佐藤 O'Brien")
    assert result.exit_code == 0, result.output
    assert listed(stiwatch)["bob@example.org"]["name"] == "Bób 佐藤 O'Brien"


def test_import_refuses_names_with_control_characters_naming_each_line(stiwatch, tmp_path):
    assert stiwatch("subscribers", "add", "keep@example.org").exit_code == 0
    bad = tmp_path / "names.csv"
    bad.write_bytes(
        "email,name\n"
        "ok@example.org,Fine Name\n"
        "bob@example.org,\"Bob\nBcc: victim@example.com\"\n"  # a quoted line break: lines 3-4
        "vt@example.org,Ver\x0btical\n"
        "esc@example.org,Esc\x1bape\n".encode("utf-8"))
    result = stiwatch("subscribers", "import", str(bad))
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"Error: {bad}: line 3: name: 'Bob\\nBcc: victim@example.com' contains a line break or "
        "control character (U+000A); a display name is one line of plain text",
        f"Error: {bad}: line 5: name: 'Ver\\x0btical' contains a line break or control "
        "character (U+000B); a display name is one line of plain text",
        f"Error: {bad}: line 6: name: 'Esc\\x1bape' contains a line break or control "
        "character (U+001B); a display name is one line of plain text",
        "Error: nothing was imported"]
    assert set(listed(stiwatch)) == {"keep@example.org"}


def test_import_lists_every_problem_of_a_line_with_a_bad_address(stiwatch, tmp_path):
    """`subscribers import --help`: every problem is listed with its line and field. A line
    whose address was bad had its other fields left unchecked: fixing the address, the
    operator met the next error of the same line only at the next try."""
    bad = tmp_path / "bad.csv"
    bad.write_text("email,name,areas,countries\n"
                   "alice@,Alice,,UK\n", encoding="utf-8")
    result = stiwatch("subscribers", "import", str(bad))
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"Error: {bad}: line 2: email: 'alice@' is not a valid e-mail address",
        f"Error: {bad}: line 2: countries: unknown country 'UK' (United Kingdom is 'GB')",
        "Error: nothing was imported"]


def test_a_new_store_whose_first_migration_was_interrupted_is_created_by_subscribers_add(
        stiwatch, db_path):
    """Stopped after migrate() made its schema_migrations table but before migration 1, a
    new store was refused by `subscribers add` as "not a stiwatch database" (its read-only
    check before the restore's lock), though `init` and the open under the lock finish it."""
    import sqlite3

    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    conn.close()
    result = stiwatch("subscribers", "add", "a@example.org")
    assert result.exit_code == 0, result.output
    assert list(listed(stiwatch)) == ["a@example.org"]


def _operations_token_check():
    """The token check docs/operations.md gives services that do not run stiwatch, as written
    there (the first ```python block after the `--token` command)."""
    from pathlib import Path
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text("utf-8")
    after = text[text.index('subscribers remove --token "$TOKEN" -- "$WHO"'):]
    code = re.search(r"```python\n(.*?)```", after, re.S).group(1)
    # a snippet to copy, not a library (14: it also reads the earlier secrets)
    assert len(code.strip().splitlines()) <= 14
    namespace: dict = {}
    exec(compile(code, "operations.md", "exec"), namespace)
    return namespace["token_ok"]


def test_remove_with_a_token_checks_it_as_the_documented_snippet_does(stiwatch, db_path,
                                                                     monkeypatch):
    """`subscribers remove EMAIL --token TOKEN` is what a one-click unsubscribe service runs:
    it removes only with EMAIL's token, refuses any other (exit 2, nothing changed) without
    saying whether EMAIL is a reader, and agrees with the documented check for services that
    do not run stiwatch."""
    from digest.message import unsubscribe_token

    secret = "k9-a long random secret"
    env = {"STIWATCH_UNSUBSCRIBE_SECRET": secret}
    monkeypatch.setenv("STIWATCH_UNSUBSCRIBE_SECRET", secret)  # for the snippet
    token_ok = _operations_token_check()
    assert stiwatch("subscribers", "add", "Aiko@Example.org").exit_code == 0
    right = unsubscribe_token(secret, "aiko@example.org")
    assert token_ok("Aiko@Example.org ", right) and token_ok("aiko@example.org", right.upper())
    wrong = unsubscribe_token(secret, "ben@example.org")
    assert not token_ok("aiko@example.org", wrong) and not token_ok("aiko@example.org", "")
    monkeypatch.delenv("STIWATCH_UNSUBSCRIBE_SECRET")  # stiwatch gets it from `env` alone

    for email, token in (("aiko@example.org", wrong), ("nobody@example.org", right),
                         ("aiko@example.org", "é" * 64)):
        result = stiwatch("subscribers", "remove", email, "--token", token, env=env)
        assert result.exit_code == 2
        assert result.stderr == (f"Error: --token: not the unsubscribe token of {email}; "
                                 "nothing was changed\n")
    assert listed(stiwatch)["aiko@example.org"]["active"] is True

    # The secret missing from the service's environment: said, nothing changed.
    result = stiwatch("subscribers", "remove", "aiko@example.org", "--token", right)
    assert result.exit_code == 2
    assert result.stderr == ("Error: --token needs the secret the tokens were made with: give "
                             "it in the environment variable STIWATCH_UNSUBSCRIBE_SECRET; "
                             "nothing was changed\n")
    assert "aiko@example.org" in listed(stiwatch)

    # as the documented command line has it: the address after `--`
    result = stiwatch("subscribers", "remove", "--token", right, "--", "aiko@example.org",
                      env=env)
    assert result.exit_code == 0, result.output
    assert listed(stiwatch, "--all")["aiko@example.org"]["active"] is False
    # a token that is right for an address no one subscribed: no such subscriber, as without
    result = stiwatch("subscribers", "remove", "nobody@example.org", "--token",
                      unsubscribe_token(secret, "nobody@example.org"), env=env)
    assert result.exit_code == 2 and "no subscriber 'nobody@example.org'" in result.stderr


def test_after_the_secret_changes_links_already_sent_work_while_the_old_one_is_listed(
        stiwatch, monkeypatch):
    """An operator changes the unsubscribe secret: a reader following the link of a digest
    sent before is still unsubscribed while the old secret is in
    STIWATCH_UNSUBSCRIBE_PREVIOUS_SECRETS, and not once it is dropped; the documented check
    agrees. `stiwatch config` masks the old secrets as it masks the secret."""
    from digest.message import unsubscribe_token

    old, older, new = "old-secret-k1", "older-secret-k0", "new-secret-k2"
    for email in ("aiko@example.org", "ben@example.org", "chen@example.org"):
        assert stiwatch("subscribers", "add", email).exit_code == 0
    sent_before = unsubscribe_token(old, "aiko@example.org")
    rotated = {"STIWATCH_UNSUBSCRIBE_SECRET": new,
               "STIWATCH_UNSUBSCRIBE_PREVIOUS_SECRETS": f"{older}  {old}"}

    dropped = {"STIWATCH_UNSUBSCRIBE_SECRET": new}
    result = stiwatch("subscribers", "remove", "aiko@example.org", "--token", sent_before,
                      env=dropped)
    assert result.exit_code == 2 and "not the unsubscribe token" in result.stderr
    for name, value in rotated.items():
        monkeypatch.setenv(name, value)  # for the documented snippet
    token_ok = _operations_token_check()
    assert token_ok("aiko@example.org", sent_before)
    assert token_ok("ben@example.org", unsubscribe_token(new, "ben@example.org"))
    assert not token_ok("aiko@example.org", unsubscribe_token("another", "aiko@example.org"))
    for name in rotated:
        monkeypatch.delenv(name)

    result = stiwatch("subscribers", "remove", "aiko@example.org", "--token", sent_before,
                      env=rotated)
    assert result.exit_code == 0, result.output
    # the current secret's tokens, and the oldest listed, work too; another address's do not
    assert stiwatch("subscribers", "remove", "ben@example.org", "--token",
                    unsubscribe_token(new, "ben@example.org"), env=rotated).exit_code == 0
    result = stiwatch("subscribers", "remove", "chen@example.org", "--token",
                      unsubscribe_token(older, "ben@example.org"), env=rotated)
    assert result.exit_code == 2
    assert stiwatch("subscribers", "remove", "chen@example.org", "--token",
                    unsubscribe_token(older, "chen@example.org"), env=rotated).exit_code == 0
    assert not any(row["active"] for row in listed(stiwatch, "--all").values())

    shown = stiwatch("config", env=rotated).output
    assert old not in shown and older not in shown and new not in shown
    assert "unsubscribe_previous_secrets" in shown


def test_add_saves_a_query_lists_it_keeps_it_on_update_and_clears_it(stiwatch, db_path):
    result = stiwatch("subscribers", "add", "eve@example.org", "--query",
                      '  "Horizon   Europe" OR title:grant*  ')
    assert result.exit_code == 0, result.output
    assert listed(stiwatch)["eve@example.org"]["query"] == '"Horizon Europe" OR title:grant*'
    assert '"Horizon Europe" OR title:grant*' in stiwatch("subscribers", "list").output
    # another option changes only itself
    assert stiwatch("subscribers", "add", "eve@example.org", "--areas", "governance").exit_code == 0
    eve = listed(stiwatch)["eve@example.org"]
    assert eve["query"] == '"Horizon Europe" OR title:grant*' and eve["areas"] == ["governance"]
    assert stiwatch("subscribers", "add", "eve@example.org", "--query", "").exit_code == 0
    eve = listed(stiwatch)["eve@example.org"]
    assert eve["query"] == "" and eve["areas"] == ["governance"]
    with db.open_store(db_path) as store:  # no query is no value, not an empty string
        assert store.scalar("SELECT query FROM subscribers WHERE email = 'eve@example.org'") is None
    assert stiwatch("subscribers", "add", "ann@example.org").exit_code == 0
    assert listed(stiwatch)["ann@example.org"]["query"] == ""


def test_add_refuses_a_query_search_refuses_and_stores_nothing(stiwatch, db_path):
    assert stiwatch("subscribers", "add", "eve@example.org", "--query", "quantum").exit_code == 0
    for query, reason in [('"Horizon Europe', "the quote in '\"Horizon Europe' is not closed"),
                          ("-china", "'-china' only excludes"),
                          ("quantum OR", "OR has no word after it"),
                          ("(chips", "a '(' is not closed with ')'"),
                          ("#", "it has no word to search for")]:
        for email in ("eve@example.org", "new@example.org"):
            result = stiwatch("subscribers", "add", email, "--query", query, "--areas",
                              "governance")
            assert result.exit_code == 2, (query, result.output)
            [line] = result.stderr.splitlines()
            assert line.startswith(f"Error: query: cannot search for {query!r}: {reason}"), line
            # the very words `stiwatch search` gives
            search = stiwatch("search", "--", query)
            assert search.exit_code == 2 and reason in search.output
    assert listed(stiwatch) == {"eve@example.org": listed(stiwatch)["eve@example.org"]}
    eve = listed(stiwatch)["eve@example.org"]
    assert eve["query"] == "quantum" and eve["areas"] == []


def test_import_takes_a_query_column_and_refuses_a_bad_query_naming_its_line(stiwatch, tmp_path):
    good = tmp_path / "subs.csv"
    good.write_text(
        "email,name,areas,domains,countries,regions,query\n"
        'aiko@example.org,Aiko,,,JP,,"""Horizon Europe"" OR 量子技術"\n'
        "ben@example.org,Ben,,,,,export control*\n"
        "chloe@example.org,,,,,,\n", encoding="utf-8")
    result = stiwatch("subscribers", "import", str(good))
    assert result.exit_code == 0, result.output
    rows = listed(stiwatch)
    assert rows["aiko@example.org"]["query"] == '"Horizon Europe" OR 量子技術'
    assert rows["ben@example.org"]["query"] == "export control*"
    assert rows["chloe@example.org"]["query"] == ""

    bad = tmp_path / "bad.csv"
    bad.write_text(
        "email,query\n"
        "dan@example.org,quantum\n"
        'ben@example.org,"""CHIPS and Science Act"\n'
        "erin@example.org,research NOT\n", encoding="utf-8")
    result = stiwatch("subscribers", "import", str(bad))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: {bad}: line 3: query: cannot search for '\"CHIPS and Science Act': the quote "
        "in '\"CHIPS and Science Act' is not closed. Use words, \"quoted phrases\", AND, OR, "
        "NOT (in capitals), parentheses, prefix*, title:word and -word (see `stiwatch search "
        "--help`).",
        f"Error: {bad}: line 4: query: cannot search for 'research NOT': NOT has no word after it. "
        "Use words, \"quoted phrases\", AND, OR, NOT (in capitals), parentheses, prefix*, "
        "title:word and -word (see `stiwatch search --help`).",
        "Error: nothing was imported"]
    assert listed(stiwatch) == rows  # nothing stored, ben's query kept
