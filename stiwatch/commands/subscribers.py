"""`stiwatch subscribers`: who gets the weekly digest, and with which filters."""

from __future__ import annotations

from contextlib import contextmanager
import csv
import io
from pathlib import Path
import re
from typing import Any, Iterable, Iterator

import click

from classifier.taxonomy import UnknownLabel, load_taxonomy, spelt
import db
from digest.errors import InvalidSubscriber
from digest.message import SECRET_VARIABLE, name_problem, normalise_email, token_matches

from ..app import App, pass_app
from ..output import counted, echo_json, echo_table

COLUMNS = ("email", "name", *db.FILTERS, db.QUERY)  # of a subscribers CSV
FACETS = db.FILTER_FACETS
# Deliberately plain: one @, a dot-separated domain with a 2+ letter top level, no spaces.
EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,63}$"
)
SPLIT_RE = re.compile(r"[\s,;|]+")
LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")


def check_email(value: str) -> str:
    """The address, trimmed and lower-cased, or InvalidSubscriber."""
    email = (value or "").strip()
    if not EMAIL_RE.match(email) or ".." in email or email.startswith(".") or len(email) > 254:
        raise InvalidSubscriber(f"{email!r} is not a valid e-mail address")
    return email.lower()


def check_name(value: str | None) -> str | None:
    """The display name, trimmed (None when empty), or InvalidSubscriber: it goes into the To:
    header, where a line break would start a header of its own, so control characters are
    refused here rather than failing that subscriber's delivery later."""
    name = (value or "").strip()
    problem = name_problem(name)
    if problem:
        raise InvalidSubscriber(f"name: {problem}; a display name is one line of plain text")
    return name or None


def check_ids(key: str, raw: str | Iterable[str] | None) -> list[str]:
    """Split a comma list of label ids for a filter and check each against the taxonomy."""
    if raw is None:
        return []
    values = SPLIT_RE.split(raw) if isinstance(raw, str) else list(raw)
    taxonomy = load_taxonomy()
    facet = FACETS[key]
    out = []
    for value in (v.strip() for v in values):
        if not value:
            continue
        value = spelt(facet, value)
        try:
            taxonomy.check(facet, value)
        except UnknownLabel as error:
            raise InvalidSubscriber(f"{key}: {error}") from None
        if value not in out:
            out.append(value)
    return out


def check_query(raw: str | None) -> str:
    """The words a reader follows, whitespace collapsed ("" for none), or InvalidSubscriber
    when `stiwatch search` would refuse them: the digest runs them as search does, so a
    query search cannot read is refused now rather than failing that reader's every digest."""
    text = " ".join((raw or "").split())
    if text:
        try:
            db.search.parse_query(text)
        except db.BadQuery as error:
            raise InvalidSubscriber(f"{db.QUERY}: {error}") from None
    return text


def make_subscriber(fields: dict[str, Any]) -> dict[str, Any]:
    subscriber = {"email": check_email(fields.get("email") or ""),
                  "name": check_name(fields.get("name"))}
    for key in FACETS:
        subscriber[key] = check_ids(key, fields.get(key))
    subscriber[db.QUERY] = check_query(fields.get(db.QUERY))
    return subscriber


def read_csv(path: Path) -> list[dict[str, Any]]:
    """Every row of a subscribers CSV, validated as a whole: all problems, or none."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        # Excel's plain "CSV" is the machine's code page (Shift_JIS in Japan), not UTF-8.
        line = error.object[:error.start].count(b"\n") + 1
        raise InvalidSubscriber(f"{path}: line {line}: not UTF-8 text (byte "
                                f"{error.object[error.start]:#04x}): save the file as UTF-8 "
                                "(in Excel: CSV UTF-8)") from None
    except OSError as error:
        raise InvalidSubscriber(f"{path}: cannot read: {error}") from None
    # newline="": a line break inside a quoted cell stays in the value (and is refused in a
    # name) instead of vanishing, and line numbers count the file's own lines.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    problems = []
    if "email" not in header:
        # Excel saves "CSV" with semicolons where the decimal mark is a comma (Europe).
        hint = (": its columns are separated by semicolons; separate them by commas (in "
                "Excel: CSV UTF-8)" if len(header) == 1 and ";" in header[0] else "")
        raise InvalidSubscriber(f"{path}: line 1: the header needs an 'email' column "
                                f"(columns: {', '.join(COLUMNS)}){hint}")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise InvalidSubscriber(f"{path}: line 1: unknown column(s) {', '.join(unknown)} "
                                f"(columns: {', '.join(COLUMNS)})")
    reader.fieldnames = header
    subscribers: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for row in reader:
        # The line the row starts on: a quoted cell may span several.
        line = reader.line_num - sum(len(LINE_BREAK_RE.findall(v)) for v in row.values()
                                     if isinstance(v, str))
        if not any((v or "").strip() for k, v in row.items() if k):
            continue
        if None in row:
            problems.append(f"{path}: line {line}: more fields than the header has")
            continue
        email = None
        try:
            email = check_email(row.get("email") or "")
        except InvalidSubscriber as error:
            # the line's other fields are still checked: every problem in one pass
            problems.append(f"{path}: line {line}: email: {error}")
        if email is not None and email in seen:
            problems.append(f"{path}: line {line}: email: {email} already on line {seen[email]}")
            continue
        if email is not None:
            seen[email] = line
        subscriber = {"email": email, "name": None}
        try:
            subscriber["name"] = check_name(row.get("name"))
        except InvalidSubscriber as error:
            problems.append(f"{path}: line {line}: {error}")
        for key in FACETS:
            try:
                subscriber[key] = check_ids(key, row.get(key))
            except InvalidSubscriber as error:
                problems.append(f"{path}: line {line}: {error}")
        try:
            subscriber[db.QUERY] = check_query(row.get(db.QUERY))
        except InvalidSubscriber as error:
            problems.append(f"{path}: line {line}: {error}")
        subscribers.append(subscriber)
    if problems:
        raise InvalidSubscriber("\n".join(problems + ["nothing was imported"]))
    return subscribers


def _filter_option(key: str, example: str) -> Any:
    return click.option(f"--{key}", key, metavar="IDS", default=None,
                        help=f"Comma-separated {FACETS[key]} ids, e.g. {example} "
                        "(empty: everything).")


EDIT_WAIT = 10  # seconds: another change of the subscribers holds the lock for a moment


@contextmanager
def no_restore(app: App, *, creates: bool = True) -> Iterator[None]:
    """Keep a `stiwatch restore` out while a change of the subscribers opens the store and
    writes (see ``App.keep_restore_out``): a reader added then would be written into the
    store the restore moves aside, after it read the readers to carry over, and lost.
    ``creates``: whether the change may create the store."""
    app.keep_restore_out(creates=creates, wait=EDIT_WAIT)
    yield


@click.group("subscribers")
def subscribers_group() -> None:
    """Manage who receives the weekly digest and with which filters.

    Filters are taxonomy ids in any case (see docs/schema.md `labels`): areas, domains,
    countries (ISO codes or EU) and regions; and a query, words to follow as `stiwatch search` takes them. Empty
    means everything; areas, domains, places (countries or regions) and the query must all
    match when given.
    """


@subscribers_group.command("add")
@click.argument("email")
@click.option("--name", metavar="NAME", default=None,
              help="Display name used in the greeting and the To: header (one line of text: "
              "line breaks and other control characters are refused).")
@_filter_option("areas", "research_security,international")
@_filter_option("domains", "ai,quantum")
@_filter_option("countries", "JP,US,EU")
@_filter_option("regions", "europe,east_asia")
@click.option("--query", db.QUERY, metavar="WORDS", default=None,
              help="Words to follow, in `stiwatch search`'s syntax, e.g. '\"Horizon Europe\"' "
              "or 'export control*' (empty: no such filter). A query search refuses is "
              "refused.")
@pass_app
def add_command(app: App, email: str, name: str | None, **filters: str | None) -> None:
    """Add a subscriber, or update one (and reactivate it).

    When EMAIL exists, only the options given change; pass an empty value (--areas "",
    --query "") to clear a filter.

    Within a filter any id matches; the filters given must all match, countries and regions
    together counting as one (places): --areas research_security --countries JP --regions
    europe sends the research-security stories about Japan or Europe. --query is one more:
    a story is sent when one of its items (a copy or another source's report of it
    included) matches the query, as `stiwatch search` matches items, and the story's "Why you
    got this" line names the words of it the story has where the query looks for them (a
    title:word in a title, a NEAR group's words near each other): --query '"CHIPS and
    Science Act"' --countries US sends the stories about the United States that name the act.
    """
    subscriber = make_subscriber({"email": email, "name": name, **filters})
    with no_restore(app):
        store = app.store(create=True)
        try:
            old = store.get_subscriber(subscriber["email"])
        except db.NoSuchSubscriber:
            old = None
        if old is not None:
            if name is None:
                subscriber["name"] = old["name"]
            for key, value in filters.items():
                if value is None:
                    subscriber[key] = old[key]
        created = store.save_subscribers([subscriber])
    verb = "added" if created else "updated"
    app.echo(f"{verb} {subscriber['email']}.")


@subscribers_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_app
def import_command(app: App, file: Path) -> None:
    """Add or update subscribers from a CSV file (the whole file is checked first).

    Columns: email,name,areas,domains,countries,regions,query (only email is required); put
    several ids in one quoted cell separated by commas or semicolons. A name is one line of
    text (no line breaks or other control characters). A query is words to follow, as
    `subscribers add --query` takes them (in CSV, a quote inside a cell is written twice). If
    any line is invalid, every problem is listed with its line and field and nothing is
    imported. The file is UTF-8 (from Excel: save as "CSV UTF-8").

    \b
    Example file:
      email,name,areas,domains,countries,regions,query
      tanaka@example.org,Tanaka Taro,"research_security,international",,"CN,US",
      sato@example.org,Sato Hanako,,quantum,,europe,\"\"\"Horizon Europe\"\"\"

    \b
    Example:
      stiwatch subscribers import readers.csv
    """
    # Not is_file(): a pipe (`<(grep ... readers.csv)`, /dev/stdin) is read as a file is;
    # click refuses a folder.
    if not file.exists():
        raise InvalidSubscriber(f"{file}: no such file")
    subscribers = read_csv(file)
    with no_restore(app):
        created = app.store(create=True).save_subscribers(subscribers)
    app.echo(f"{counted(len(subscribers), 'subscriber')} imported from {file}: "
             f"{len(created)} added, {len(subscribers) - len(created)} updated.")


@subscribers_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print all fields as JSON.")
@click.option("--all", "show_all", is_flag=True, help="Include removed (inactive) subscribers.")
@pass_app
def list_command(app: App, as_json: bool, show_all: bool) -> None:
    """List subscribers and their filters."""
    rows = app.existing_store().list_subscribers(active_only=not show_all)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        app.echo("No subscribers yet: add one with `stiwatch subscribers add EMAIL`.")
        return
    echo_table(rows, [*COLUMNS, "active"])


@subscribers_group.command("remove")
@click.argument("email")
@click.option("--token", metavar="TOKEN", default=None,
              help="Remove only if TOKEN is EMAIL's {token} from the digest's unsubscribe link "
              "(keyed by STIWATCH_UNSUBSCRIBE_SECRET, or by one of "
              "STIWATCH_UNSUBSCRIBE_PREVIOUS_SECRETS for links sent before it changed); a wrong "
              "one is refused (exit 2) and nothing changes. For a web service that unsubscribes "
              "readers who follow the link.")
@pass_app
def remove_command(app: App, email: str, token: str | None) -> None:
    """Stop sending the digest to EMAIL (the subscriber and its history are kept).

    An address removed already is left as it is, and said so (exit 0); one never added is an
    error (exit 2). `subscribers add EMAIL` subscribes a removed address again.

    \b
    A one-click unsubscribe service can run, for the email and token of the link:
      stiwatch subscribers remove --token "$TOKEN" -- "$EMAIL"
    """
    email = normalise_email(email)
    if token is not None:
        secrets = [app.settings["unsubscribe_secret"],
                   *app.settings["unsubscribe_previous_secrets"].split()]
        if not any(secrets):
            raise InvalidSubscriber(f"--token needs the secret the tokens were made with: give it "
                                    f"in the environment variable {SECRET_VARIABLE}; nothing "
                                    "was changed")
        if not any(token_matches(secret, email, token) for secret in secrets if secret):
            raise InvalidSubscriber(f"--token: not the unsubscribe token of {email}; nothing "
                                    "was changed")
    with no_restore(app, creates=False):
        store = app.store()
        if not store.deactivate_subscriber(email):
            # Nothing to do, as `tag` says of a correction already made (exit 0): an unsubscribe
            # link followed twice is not an error. An address never added is (exit 2).
            since = store.get_subscriber(email)["updated_at"][:10]
            app.echo(f"{email} is not subscribed: removed already ({since}); nothing changed.")
            return
    app.echo(f"removed {email}: no more digests will be sent (history kept).")
