"""Reading the store for analysts: full-text search (FTS5, bm25) and a streaming export.

Search is rank-first: FTS5 returns matches already ordered by bm25 (``ORDER BY rank``), the
filters are checked row by row on that stream, and the loop stops at ``limit`` stories (an
original and its near-duplicates are one story, shown once, in every order as the item
``_shown_items`` chooses). Copy counts and tags are computed only for the rows returned, snippets
for the rows read.

bm25 costs about 5 microseconds per matching row (FTS5 reads each row's positions and size), so a
word found in 50,000 items would take a quarter of a second to rank. Ranking is therefore done
among the ``RANK_WINDOW`` most recently stored matches (found cheaply by walking the index in
rowid order); a query matching fewer items is ranked exactly, and when the window does not fill
the page (selective filters) the search is repeated over every match. ``exact=True`` always
ranks every match.

``sort="newest"`` orders the same stories by date: the window's matches are sorted on their
date alone (no bm25), the older-stored matches published after the last story read are merged
in from the ``published_at`` index, and bm25 is computed for the stories shown only.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone, tzinfo
from itertools import islice
import re
import sqlite3
from typing import Any, Iterable, Iterator, Sequence
import unicodedata

from .cjk import CJK_CLASS, has_cjk, query_phrase, squeeze
from .clock import iso_utc
from .errors import StoreError
from .items import chunks as _chunks

# bm25 weights per items_fts column: a word in the title counts most, then the summary.
TITLE_WEIGHT, SUMMARY_WEIGHT, BODY_WEIGHT = 10.0, 4.0, 1.0
RANKING = f"bm25({TITLE_WEIGHT}, {SUMMARY_WEIGHT}, {BODY_WEIGHT})"
HIGHLIGHT = ("**", "**")
RANK_WINDOW = 5_000
SORTS = ("relevance", "newest")  # search's orders: best bm25 first, or latest published first
TAG_FACETS = ("area", "domain", "country", "region")
# Sources whose page is the story's own (the registry's org_type), rather than a report of it:
# a story they reported is shown as their copy, in search as in the digest (``_shown_items``).
OFFICIAL_ORG_TYPES = frozenset({"ministry", "funding_agency", "intergovernmental",
                                "research_org", "academy"})
LIST_KEYS = {"area": "areas", "domain": "domains", "country": "countries", "region": "regions"}

COLUMNS = ("title", "summary", "body")
CJK_TABLE = "items_fts_cjk"
# One lexeme: a NEAR group, a quoted phrase (perhaps unterminated, perhaps a prefix), a
# parenthesis, or a run of anything else up to a space, quote or parenthesis.
_LEXEME = re.compile(r'NEAR\([^()]*\)|"[^"]*"?\*?|[()]|[^\s"()]+')
_SYNTAX = ('Use words, "quoted phrases", AND, OR, NOT (in capitals), parentheses, prefix*, '
           "title:word and -word (see `stiwatch search --help`).")


class BadQuery(StoreError):
    """A search query that FTS5 cannot parse (or a filter that cannot be applied); ``reason``
    is what is wrong, without the query and the syntax reminder."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


def _is_word_char(char: str) -> bool:
    """A character FTS5's unicode61 tokenizer keeps in words (letters, digits, marks)."""
    category = unicodedata.category(char)
    return category[0] in "LNM" or category == "Co"


@dataclass(frozen=True)
class Term:
    """A word or phrase: ``text`` as typed, punctuation at its ends removed. Punctuation
    inside separates words, as the tokenizer does in the items: `research-security` is the
    phrase "research security"."""
    text: str
    prefix: bool = False

    @property
    def cjk(self) -> bool:
        return has_cjk(self.text)


@dataclass(frozen=True)
class Column:
    name: str
    node: Any


@dataclass(frozen=True)
class Near:
    terms: tuple[Term, ...]
    distance: int | None


@dataclass(frozen=True)
class Or:
    nodes: tuple[Any, ...]


@dataclass(frozen=True)
class And:
    """Every one of ``positives``, none of ``negatives`` (`a AND b NOT c`, `a b -c`)."""
    positives: tuple[Any, ...]
    negatives: tuple[Any, ...] = ()


@dataclass
class _Lexeme:
    kind: str  # term, mark (a bare `-` or `title:` before a phrase or "("), (, ), AND, OR, NOT
    raw: str
    node: Any = None
    negated: bool = False
    column: str | None = None


def _fail(query: str, reason: str) -> BadQuery:
    return BadQuery(f"cannot search for {query!r}: {reason}. {_SYNTAX}", reason)


def _strip(text: str) -> str:
    """``text`` without the punctuation at its ends (`#quantum`, `research;`, `[x]`)."""
    start, end = 0, len(text)
    while start < end and not _is_word_char(text[start]):
        start += 1
    while end > start and not _is_word_char(text[end - 1]):
        end -= 1
    return text[start:end]


def _bare(raw: str, query: str) -> _Lexeme:
    """A run of text without spaces, quotes or parentheses: an operator, or a term with an
    optional leading `-`, `column:` and trailing `*`."""
    if raw in ("AND", "OR", "NOT"):
        return _Lexeme(raw, raw)
    text = raw
    negated = text.startswith("-")
    text = text.lstrip("-")
    column = None
    named = re.fullmatch(r"([^\W\d_]+):(.*)", text, re.DOTALL)
    if named:
        name, rest = named.groups()
        if name.lower() in COLUMNS:
            column, text = name.lower(), rest
            # `title:-word` is `-title:word`: the `-` must not be stripped as punctuation,
            # which would search for the word it was meant to exclude.
            if text.startswith("-"):
                if negated:
                    raise _fail(query, f"{raw!r} has two minus signs: exclude with one, "
                                f"'-{name}:{text.lstrip('-')}'")
                negated, text = True, text.lstrip("-")
        elif any(_is_word_char(char) for char in rest):
            raise _fail(query, f"{name!r} in {raw!r} is not a column (a word before a colon "
                        "names a column: title, summary or body; to search for both words, "
                        f"put them in quotes: '\"{name} {rest}\"')")
    star = text.endswith("*")
    text = text.rstrip("*")
    prefix = star and bool(text) and _is_word_char(text[-1])
    text = _strip(text)
    if not text:
        return _Lexeme("mark", raw, negated=negated, column=column)
    return _Lexeme("term", raw, Term(text, prefix), negated, column)


def _phrase(raw: str, query: str) -> Term | None:
    if len(raw) < 2 or not raw.rstrip("*").endswith('"'):
        raise _fail(query, f"the quote in {raw!r} is not closed")
    text = raw.rstrip("*")[1:-1]
    if not any(_is_word_char(char) for char in text):
        return None
    return Term(" ".join(text.split()), raw.endswith("*"))


def _near(raw: str, query: str) -> Near | None:
    inner = raw[len("NEAR("):-1]
    distance = None
    found = re.search(r",\s*(\d+)\s*$", inner)
    if found:
        distance, inner = int(found.group(1)), inner[:found.start()]
    terms = []
    for match in _LEXEME.finditer(inner):
        token = match.group()
        lexeme = _Lexeme("term", token, _phrase(token, query)) if token.startswith('"') \
            else _bare(token, query)
        if lexeme.kind != "term" or lexeme.negated or lexeme.column:
            if lexeme.kind == "mark" and not (lexeme.negated or lexeme.column):
                continue  # punctuation
            raise _fail(query, f"{token!r} cannot be inside NEAR(...), only words and phrases")
        if lexeme.node is not None:
            terms.append(lexeme.node)
    return Near(tuple(terms), distance) if terms else None


def _lex(query: str) -> list[_Lexeme]:
    out: list[_Lexeme] = []
    matches = list(_LEXEME.finditer(query))
    for n, match in enumerate(matches):
        raw = match.group()
        following = matches[n + 1] if n + 1 < len(matches) else None
        if raw in ("(", ")"):
            out.append(_Lexeme(raw, raw))
        elif raw.startswith("NEAR("):
            near = _near(raw, query)
            if near is not None:
                out.append(_Lexeme("term", raw, near))
        elif raw.startswith('"'):
            term = _phrase(raw, query)
            if term is not None:
                out.append(_Lexeme("term", raw, term))
            elif out and out[-1].kind == "mark":
                out.pop()  # `title:"#"`: nothing to apply the mark to
        else:
            lexeme = _bare(raw, query)
            # `-"a phrase"`, `title:(a OR b)`: a mark applies to what follows it directly;
            # anything else with no word in it is punctuation, a separator.
            if lexeme.kind == "mark" and not (
                    (lexeme.negated or lexeme.column) and following is not None
                    and following.start() == match.end() and following.group() != ")"):
                continue
            out.append(lexeme)
    return out


class _Parser:
    """FTS5's grammar as its documentation gives it (NOT binds tighter than AND, AND than OR;
    words side by side are ANDed), plus `-word`, web-search style: excluded from the whole
    query, or from the whole of the parentheses it is written in (`a OR b -c` is
    `(a OR b) NOT c`, where FTS5's NOT would bind to `b` alone)."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.lexemes = _lex(query)
        self.at = 0
        # The `-word`s of each group being parsed (the query, then each open parenthesis).
        self.excluded: list[list[Any]] = []

    def peek(self) -> str | None:
        return self.lexemes[self.at].kind if self.at < len(self.lexemes) else None

    def fail(self, reason: str) -> BadQuery:
        return _fail(self.query, reason)

    def parse(self) -> Any:
        if not self.lexemes:
            raise self.fail("it has no word to search for")
        node = self.parse_or()
        if self.peek() == ")":
            raise self.fail("a ')' has no '(' before it")
        return node

    def parse_or(self) -> Any:
        """A group: ORed AND-groups, then the group's `-word`s excluded from all of them."""
        self.excluded.append([])
        nodes = [self.parse_and(None)]
        while self.peek() == "OR":
            self.at += 1
            nodes.append(self.parse_and("OR"))
        node = nodes[0] if len(nodes) == 1 else Or(tuple(nodes))
        excluded = self.excluded.pop()
        if not excluded:
            return node
        if isinstance(node, And):  # `a NOT b -c`: one And, as `a b -c` always was
            return And(node.positives, node.negatives + tuple(excluded))
        return And((node,), tuple(excluded))

    def parse_and(self, after: str | None) -> Any:
        """Words side by side or joined by AND, with their NOTs; a `-word` goes to the
        group's exclusions (``self.excluded``)."""
        items: list[tuple[str, str, Any]] = []  # ("+", "NOT" or "-", the text, the node)
        while self.peek() not in (None, ")", "OR"):
            kind = self.peek()
            if kind in ("AND", "NOT"):
                if not items:
                    raise self.fail(f"{kind} has no word before it")
                self.at += 1
                if self.peek() in (None, ")", "OR", "AND", "NOT"):
                    raise self.fail(f"{kind} has no word after it")
                if kind == "NOT":
                    negated, raw, node = self.parse_primary()
                    if negated:
                        raise self.fail(f"{raw!r} after NOT: use NOT or -, not both")
                    items.append(("NOT", raw, node))
                continue
            negated, raw, node = self.parse_primary()
            items.append(("-" if negated else "+", raw, node))
        if not items:
            if after:
                raise self.fail(f"{after} has no word after it")
            raise self.fail("OR has no word before it" if self.peek() == "OR"
                            else "it has no word to search for")
        positives = tuple(node for sign, _, node in items if sign == "+")
        negatives = tuple(node for sign, _, node in items if sign == "NOT")
        if not positives:
            raw = items[0][1]
            raise self.fail(f"{raw!r} only excludes: add a word to search for, e.g. "
                            f"'research {raw}'")
        self.excluded[-1].extend(node for sign, _, node in items if sign == "-")
        if not negatives and len(positives) == 1:
            return positives[0]
        return And(positives, negatives)

    def parse_primary(self) -> tuple[bool, str, Any]:
        """(excluded by a `-`, the text as typed, the node)."""
        lexeme = self.lexemes[self.at]
        self.at += 1
        if lexeme.kind == "mark":
            negated, raw, node = self.parse_primary()
            node = Column(lexeme.column, node) if lexeme.column else node
            return negated or lexeme.negated, lexeme.raw + raw, node
        if lexeme.kind == "term":
            node = Column(lexeme.column, lexeme.node) if lexeme.column else lexeme.node
            return lexeme.negated, lexeme.raw, node
        if lexeme.kind == "(":
            if self.peek() == ")":
                raise self.fail("the parentheses '()' are empty")
            if self.peek() is None:
                raise self.fail("a '(' is not closed with ')'")
            node = self.parse_or()
            if self.peek() != ")":
                raise self.fail("a '(' is not closed with ')'")
            self.at += 1
            return False, "(...)", node
        raise self.fail("a ')' has no '(' before it")  # AND, OR, NOT are handled by callers


def parse_query(text: str) -> Any:
    """The user's query as a tree of Term, Column, Near, Or and And (BadQuery if malformed)."""
    return _Parser(text).parse()


def _render(node: Any, cjk: bool, typed_cjk: bool = False) -> str | None:
    """``node`` in FTS5 syntax for items_fts (``cjk`` False) or items_fts_cjk (True).

    For items_fts a term containing CJK characters matches nothing (those items are searched
    in items_fts_cjk), unless ``typed_cjk``: then it is searched as typed. None stands for
    "matches nothing" and is simplified away."""
    if isinstance(node, Term):
        if node.cjk and (cjk or not typed_cjk):
            if not cjk:
                return None
            text, prefix = query_phrase(node.text)
            return f'"{text}"' + ("*" if prefix else "")
        return f'"{node.text}"' + ("*" if node.prefix else "")
    if isinstance(node, Column):
        inner = _render(node.node, cjk, typed_cjk)
        return None if inner is None else f"{node.name}:({inner})"
    if isinstance(node, Near):
        phrases = [_render(term, cjk, typed_cjk) for term in node.terms]
        if None in phrases:
            return None
        distance = "" if node.distance is None else f", {node.distance}"
        return f"NEAR({' '.join(phrases)}{distance})"  # type: ignore[arg-type]
    if isinstance(node, Or):
        parts = [part for part in (_render(child, cjk, typed_cjk) for child in node.nodes) if part]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
    if isinstance(node, And):
        positives = [_render(child, cjk, typed_cjk) for child in node.positives]
        if None in positives:
            return None
        out = positives[0] if len(positives) == 1 else "(" + " AND ".join(positives) + ")"
        for child in node.negatives:
            part = _render(child, cjk, typed_cjk)
            if part is not None:
                out = f"({out} NOT {part})"
        return out
    raise TypeError(node)


def _scoped(node: Any, columns: tuple[str, ...] = (), positive: bool = True
            ) -> Iterator[tuple[Term, bool, Any]]:
    """Every term of ``node`` with whether it is searched for (True) or excluded, and where
    it is looked for: the term, or its NEAR group, within the columns around it."""
    if isinstance(node, Term | Near):
        scope = node
        for name in reversed(columns):
            scope = Column(name, scope)
        for term in node.terms if isinstance(node, Near) else (node,):
            yield term, positive, scope
    elif isinstance(node, Column):
        yield from _scoped(node.node, (*columns, node.name), positive)
    elif isinstance(node, Or):
        for child in node.nodes:
            yield from _scoped(child, columns, positive)
    elif isinstance(node, And):
        for child in node.positives:
            yield from _scoped(child, columns, positive)
        for child in node.negatives:
            yield from _scoped(child, columns, not positive)


def _terms(node: Any) -> Iterator[tuple[Term, bool]]:
    """Every term of ``node`` with whether it is searched for (True) or excluded."""
    for term, positive, _ in _scoped(node):
        yield term, positive


def _shown(term: Term) -> str:
    """``term`` written as a query of its own: bare where that reads the same (a word), else
    quoted: a phrase, and a quoted "OR", which bare would be the operator."""
    bare = term.text not in ("AND", "OR", "NOT") and all(map(_is_word_char, term.text))
    return (term.text if bare else f'"{term.text}"') + ("*" if term.prefix else "")


def _typed(node: Any) -> str:
    """A scope of ``_scoped`` (a term or NEAR group within columns) in the syntax of
    `stiwatch search`, which reads it back as ``node``."""
    if isinstance(node, Term):
        return _shown(node)
    if isinstance(node, Near):
        distance = "" if node.distance is None else f", {node.distance}"
        return f"NEAR({' '.join(map(_shown, node.terms))}{distance})"
    if isinstance(node, Column):
        return f"{node.name}:({_typed(node.node)})"
    raise TypeError(node)


def query_words(text: str) -> list[tuple[str, str]]:
    """The words and phrases ``text`` searches for (not those it excludes), each once, in
    order, written as a query of its own (`"Horizon Europe"`, `semicond*`, `量子技術`), with
    the query that finds it where ``text`` looks for it: in the columns ``text`` names for it
    (`title:(quantum)`), with the other words of its NEAR group near it
    (`NEAR(research security, 3)`), in any of those places when it is looked for in several
    (`title:(quantum) OR summary:(quantum)`). What a match may owe to each, as the index says:
    the digest's "why" line. BadQuery if malformed."""
    scopes: dict[str, list[str]] = {}
    for term, positive, scope in _scoped(parse_query(text)):
        if positive:
            found = scopes.setdefault(_shown(term), [])
            if _typed(scope) not in found:
                found.append(_typed(scope))
    return [(shown, " OR ".join(found)) for shown, found in scopes.items()]


def fts_query(text: str) -> str:
    """The user's query in FTS5 syntax for items_fts, the index of every item.

    Punctuation separates words as in the items; quotes, AND, OR, NOT, parentheses,
    `column:`, prefix* and `-word` keep their meaning. Terms with CJK characters are left
    out (they match nothing there); ``cjk_query`` is the query for items_fts_cjk.
    """
    return _render(parse_query(text), cjk=False) or '""'


def box_query(text: str) -> str:
    """The user's query in FTS5 syntax for items_fts as Datasette's search box runs it
    (`stiwatch serve`): as ``fts_query``, but a CJK word is searched as typed, found where it
    stands between spaces or punctuation (`stiwatch serve` searches items with CJK letters in
    items_fts_cjk with ``cjk_query``). BadQuery if malformed."""
    return _render(parse_query(text), cjk=False, typed_cjk=True) or '""'


def plain_query(text: str) -> str:
    """Every word of ``text`` as a quoted FTS5 phrase, operators and quotes taken as words:
    valid FTS5 for any text (``'""'``, matching nothing, when there is no word)."""
    words = re.findall(r'[^\s"]+', text)
    return " ".join(f'"{word}"' for word in words) or '""'


def cjk_query(text: str) -> str:
    """The user's query in FTS5 syntax for items_fts_cjk (CJK words as character pairs)."""
    return _render(parse_query(text), cjk=True) or '""'


def _explain(error: sqlite3.OperationalError, query: str) -> BadQuery:
    message = str(error).removeprefix("fts5: ").replace('near ""', "at the end of the query")
    if message.startswith("no such column"):
        message += " (a word before a colon names a column: title, summary or body)"
    return _fail(query, message)


def _is_query_error(error: sqlite3.OperationalError) -> bool:
    text = str(error)
    return any(
        marker in text
        for marker in ("fts5", "no such column", "unterminated string", "syntax error",
                       "unknown special query", "malformed MATCH")
    )


def time_bound(value: str, name: str, tz: tzinfo = timezone.utc, *,
               end: bool = False) -> tuple[str, str]:
    """A ``since`` (``end`` False) or ``until`` (True) filter as an SQL comparison with
    ``published_at``: (the operator, a UTC timestamp in the store's form, which compares
    correctly as text with the stored ones).

    A date (YYYY-MM-DD) is a whole day in ``tz``: since its first instant, until (inclusive)
    the next day's first instant, excluded. A date-time without an offset is read in ``tz``;
    one with an offset (or Z) is that instant; until includes it. BadQuery names ``name``
    for anything else."""
    text = value.strip()
    moment = None
    # The shape first: fromisoformat also takes 20261123, week dates and other forms.
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?", text):
        try:  # the shape alone lets 2026-13-01 through, which matches nothing, silently
            moment = datetime.fromisoformat(text)
        except ValueError:
            pass
    if moment is None:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ].*", text):
            raise BadQuery(f"{name}: {value!r} is not a date-time (expected YYYY-MM-DD, or "
                           "YYYY-MM-DDTHH:MM with an optional offset such as +09:00 or Z)")
        raise BadQuery(f"{name}: {value!r} is not a date (expected YYYY-MM-DD)")
    whole_day = len(text) == 10
    try:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        if whole_day and end:
            # The next day's first instant in ``tz`` (not 24 hours later: a day with a DST
            # change is 23 or 25 hours long).
            moment = datetime.combine(moment.date() + timedelta(days=1), time(), tz)
        elif moment.microsecond and not end:
            # Stored times are whole seconds: since 10:00:00.5 starts at 10:00:01 (and until
            # 10:00:00.5 ends at 10:00:00, the fraction dropped below).
            moment += timedelta(microseconds=1_000_000 - moment.microsecond)
        bound = iso_utc(moment)
    except OverflowError:
        raise BadQuery(f"{name}: {value!r} is out of range") from None
    if not end:
        return ">=", bound
    return ("<" if whole_day else "<="), bound


def _bind(params: dict[str, Any], prefix: str, values: Sequence[str]) -> str:
    """Bind ``values`` as ``:prefix0, :prefix1, ...`` in ``params``; the list for ``IN (...)``."""
    names = []
    for n, value in enumerate(values):
        params[f"{prefix}{n}"] = value
        names.append(f":{prefix}{n}")
    return ", ".join(names)


def _cjk_snippets(conn: sqlite3.Connection, rows: list[dict[str, Any]],
                  terms: list[Term], width: int = 80) -> None:
    """Give rows found in items_fts_cjk a snippet of their own text (in place): FTS5's would
    show the character pairs. Around the first place a searched term occurs, in the column
    where terms occur most, with the terms **highlighted**."""
    if not rows:
        return
    patterns = []
    for term in terms:
        words = squeeze(term.text).split()
        # Punctuation or spaces between a phrase's words: any run of non-word characters.
        pattern = r"[\W_]+".join(re.escape(part) for word in words
                                  for part in re.split(r"[\W_]+", word) if part)
        if pattern and not term.cjk:
            # A whole word (`ai` is not in `said`), also against CJK letters (`生成AIの`).
            letter = f"[^\\W_{CJK_CLASS}]"
            pattern = f"(?<!{letter}){pattern}" + (f"{letter}*" if term.prefix
                                                   else f"(?!{letter})")
        if pattern:
            patterns.append(pattern)
    found = re.compile("|".join(sorted(patterns, key=len, reverse=True)), re.IGNORECASE) \
        if patterns else None
    marks = ", ".join("?" for _ in rows)
    texts = {item_id: (title, summary, body) for item_id, title, summary, body in conn.execute(
        f"SELECT id, title, summary, body FROM items WHERE id IN ({marks})",
        [row["id"] for row in rows])}
    open_, close = HIGHLIGHT
    for row in rows:
        columns = [text or "" for text in texts.get(row["id"], ())]
        hits = [list(found.finditer(text)) if found else [] for text in columns]
        best = max(range(len(columns)), key=lambda n: (len(hits[n]), n)) if columns else 0
        text = " ".join(columns[best].split()) if columns else ""
        first = found.search(text) if found else None
        start = max(0, first.start() - width // 4) if first else 0
        window = text[start:start + width]
        if found:
            window = found.sub(lambda m: f"{open_}{m.group()}{close}", window)
        row["snippet"] = ("…" if start else "") + window + (
            "…" if start + width < len(text) else "")


Table = tuple[str, str, list[str]]  # an FTS5 table, the query for it, the conditions on items


def _filters(
    areas: Sequence[str], domains: Sequence[str], countries: Sequence[str],
    regions: Sequence[str], sources: Sequence[str], since: str | None, until: str | None,
    policy_only: bool, tz: tzinfo, after_id: int | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """SQL conditions on the item ``i`` for search's filters, and their parameters.
    ``after_id``: only the items of stories first stored after that item (ids only grow as
    items are stored): an item stored after it whose original was stored before is left out."""
    where: list[str] = []
    params: dict[str, Any] = {}
    for facet, values in (("area", areas), ("domain", domains), ("country", countries),
                          ("region", regions)):
        if values:
            where.append(
                f"EXISTS (SELECT 1 FROM tags t WHERE t.item_id = i.id AND t.facet = "
                f"'{facet}' AND t.value IN ({_bind(params, facet, values)}))"
            )
    if policy_only:
        where.append("EXISTS (SELECT 1 FROM tags t WHERE t.item_id = i.id "
                     "AND t.facet = 'policy' AND t.value = '1')")
    if sources:
        where.append(f"i.source_id IN ({_bind(params, 'source', sources)})")
    if since:
        operator, params["since"] = time_bound(since, "since", tz)
        where.append(f"i.published_at {operator} :since")
    if until:
        operator, params["until"] = time_bound(until, "until", tz, end=True)
        where.append(f"i.published_at {operator} :until")
    if after_id is not None:
        params["after_id"] = int(after_id)
        # New stories, as the digest's "Found since your last digest" and the serve page (which
        # lists originals) take them: a copy stored since of a story stored before it (a
        # newspaper syndicating a release the reader already had) is not one.
        where.append("i.id > :after_id AND coalesce(i.duplicate_of, i.id) > :after_id")
    return where, params


def _matching(table: str, conditions: list[str], match: str = ":q") -> str:
    """FROM and WHERE of the items whose FTS5 ``table`` row matches ``match`` (a parameter)
    and that meet ``conditions``."""
    return (f"FROM {table} CROSS JOIN items i ON i.id = {table}.rowid "
            f"WHERE {' AND '.join([f'{table} MATCH {match}', *conditions])}")


# An item with CJK letters is searched in items_fts_cjk alone, where its CJK words are pairs.
NOT_CJK = f"NOT EXISTS (SELECT 1 FROM {CJK_TABLE} c WHERE c.rowid = i.id)"


def stories_sql(tables: Sequence[Table]) -> str:
    """SQL selecting ``story``, the stories that match in ``tables`` (FTS5 tables, each with
    an SQL expression of its query and conditions on the item ``i``): those any of whose
    items matches, the original or a copy (``duplicate_of``), each item on its own text; a
    story is its original's id, once per item that matches.

    The one rule of a story matching words: the digest's test of a reader's query
    (``stories_matching``), search's count (``count_matches``) and the search box of
    `stiwatch serve`'s page of stories (``story_search_sql``)."""
    return " UNION ALL ".join("SELECT coalesce(i.duplicate_of, i.id) AS story "
                              + _matching(table, conditions, match)
                              for table, match, conditions in tables)


def story_search_sql(latin: str, cjk: str) -> str:
    """``stories_sql`` for the SQL expressions ``latin``, the query for items_fts, and
    ``cjk``, the query for items_fts_cjk (which alone searches the items with CJK letters):
    `stiwatch serve`'s search box on its page of stories, items_tagged_json."""
    return stories_sql([("items_fts", latin, [NOT_CJK]), (CJK_TABLE, cjk, [])])


@contextmanager
def _query_errors(query: str) -> Iterator[None]:
    """An FTS5 error the query caused, as a BadQuery quoting it; any other error as it is."""
    try:
        yield
    except sqlite3.OperationalError as error:
        if _is_query_error(error):
            raise _explain(error, query) from None
        raise


def _named(cursor: sqlite3.Cursor) -> Iterator[dict[str, Any]]:
    """The cursor's rows as dicts keyed by their column names, read one at a time."""
    names = [column[0] for column in cursor.description]
    for values in cursor:
        yield dict(zip(names, values))


def _require_words(query: str) -> None:
    if not query or not query.strip():
        raise BadQuery("empty search query: give at least one word")


SNIPPET_CHARS = 160  # a listed story's snippet: about as long as a ranked one


def _start(text: str | None) -> str:
    """The first SNIPPET_CHARS of ``text`` on one line, with `…` if cut: at a space near the
    end, else mid-run (Chinese and Japanese put no spaces between words)."""
    text = " ".join((text or "").split())
    if len(text) <= SNIPPET_CHARS:
        return text
    cut = text[:SNIPPET_CHARS]
    space = cut.rfind(" ")
    return (cut[:space] if space >= SNIPPET_CHARS * 3 // 4 else cut) + "…"


def _batches(rows: Iterator[dict[str, Any]], limit: int) -> Iterator[list[dict[str, Any]]]:
    """``rows`` a few at a time: as many as ``limit`` (up to 256) first, so that the item shown
    for each story is looked up once for many stories, not once for each."""
    size = max(1, min(limit, 256))
    while True:
        batch = list(islice(rows, size))
        if not batch:
            return
        yield batch


def _story(row: dict[str, Any]) -> int:
    """The story a result row belongs to: its original's id (its own for an original)."""
    return row["duplicate_of"] or row["id"]


class SearchMixin:
    def search(
        self,
        query: str,
        *,
        areas: Sequence[str] = (),
        domains: Sequence[str] = (),
        countries: Sequence[str] = (),
        regions: Sequence[str] = (),
        sources: Sequence[str] = (),
        since: str | None = None,
        until: str | None = None,
        policy_only: bool = False,
        limit: int = 20,
        exact: bool = False,
        tz: tzinfo = timezone.utc,
        sort: str = "relevance",
        after_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Stories matching ``query`` (FTS5 syntax), best bm25 first, each shown once
        (``sort="newest"``: latest published first).

        Every item, original or near-duplicate, is matched and filtered on its own. A story
        (an original and its near-duplicates) is shown once, in either order as the item
        ``_shown_items`` chooses among those that match the query and the filters: the
        digest's page of it (an official source's copy of a news report) where that matches,
        else the first stored that matches (a copy's ``duplicate_of`` names the original).
        Stories are ranked by their best-ranked matching item, whose bm25 is the row's
        ``score`` (higher is better).

        Filters combine with AND; several values of one filter combine with OR. ``since`` and
        ``until`` are inclusive bounds on ``published_at``: dates (YYYY-MM-DD, a whole day in
        ``tz``) or ISO date-times (read in ``tz`` unless they have an offset); ``after_id``
        keeps the stories first stored after that item (an original with a higher id, and its
        copies): a copy stored later of an older story is not new. Each row has the
        item's id, url, title, source, date, ``duplicate_of``, a highlighted ``snippet``,
        ``score``, ``copies`` (how many near-duplicates its story has: as many other items of
        the story are folded into the row, whichever of them it is) and its tags as lists.
        Unless ``exact``, a query matching more than RANK_WINDOW items is ranked among the most
        recent of them.

        ``sort="newest"`` shows each story as exact ranking does (the same item, score, snippet
        and copies) ordered by the shown item's ``published_at``, then id, both descending
        (items without a date last), among every match whatever ``exact``: the window is the
        most recently *stored* matches, which are not always the latest published (a source
        crawled for the first time brings old items in last), so what it misses is merged in.

        Items containing CJK letters are searched in items_fts_cjk, the others in items_fts
        (where a CJK word matches nothing: `quantum OR 量子` finds English items by `quantum`);
        the two lists are merged by score. A store without CJK items uses items_fts alone.
        """
        _require_words(query)
        if limit < 1:
            raise BadQuery(f"limit must be at least 1, not {limit}")
        if sort not in SORTS:
            raise BadQuery(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
        terms, tables, params = self._plan(query, areas, domains, countries, regions, sources,
                                           since, until, policy_only, tz, after_id)
        params["ranking"] = RANKING
        with _query_errors(query):
            if sort == "newest":
                rows = self._newest(tables, params, limit, exact)
            else:
                best: dict[int, dict[str, Any]] = {}  # the best-ranked matching item per story
                for table, match, conditions in tables:
                    for row in self._ranked(table, match, conditions, params, limit, exact):
                        kept = best.get(_story(row))
                        if kept is None or row["score"] > kept["score"]:
                            best[_story(row)] = row
                rows = sorted(best.values(), key=lambda row: -row["score"])[:limit]
                self._show_chosen(rows, tables, params)
            # items_fts_cjk's text is character pairs: its rows get a snippet of their text
            _cjk_snippets(self.conn, [row for row in rows if row["table"] == CJK_TABLE],
                          [t for t, positive in terms if positive])
        for row in rows:
            del row["table"]
        self._decorate(rows)
        return rows

    def list_stories(
        self,
        *,
        areas: Sequence[str] = (),
        domains: Sequence[str] = (),
        countries: Sequence[str] = (),
        regions: Sequence[str] = (),
        sources: Sequence[str] = (),
        since: str | None = None,
        until: str | None = None,
        policy_only: bool = False,
        limit: int = 20,
        tz: tzinfo = timezone.utc,
        after_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Stories meeting the filters, without a query: newest first (``published_at``, then
        id, both descending; items without a date last), each shown once as ``search`` shows
        it (``_shown_items``, among the items that meet the filters). The rows have
        ``search``'s keys, ``copies`` counted the same way; ``score`` is None (nothing is
        ranked) and ``snippet`` is the start of the summary (of the body when there is no
        summary), unhighlighted. At least one filter is needed: BadQuery
        otherwise, as listing the whole store is ``export``'s job."""
        if limit < 1:
            raise BadQuery(f"limit must be at least 1, not {limit}")
        where, params = _filters(areas, domains, countries, regions, sources, since, until,
                                 policy_only, tz, after_id)
        if not where:
            raise BadQuery("give a query or at least one filter")
        condition = " AND ".join(where)
        # Read newest first (the published_at index, rowid breaking ties) and stop at ``limit``
        # stories, rather than group every match: `--policy` alone would read the whole store.
        # Each story is shown as the item ``_shown_items`` chooses among those meeting the
        # filters, where that item's own date places it (earlier or later on).
        cursor = self.conn.execute(f"""
            SELECT i.id, i.url, i.title, i.source_id, i.published_at, i.language,
                   i.duplicate_of, substr(coalesce(nullif(trim(i.summary), ''), i.body, ''),
                                          1, {SNIPPET_CHARS * 2}) AS snippet,
                   NULL AS score
            FROM items i WHERE {condition}
            ORDER BY i.published_at DESC, i.id DESC""", params)
        found: dict[int, dict[str, Any]] = {}
        chosen: dict[int, int] = {}  # story -> the item shown for it (``_shown_items``)
        try:
            for batch in _batches(_named(cursor), limit):
                new = [row for row in batch if _story(row) not in chosen]
                if new:
                    chosen.update(self._shown_items([_story(row) for row in new], None, params,
                                                   where, matched=[row["id"] for row in new]))
                for row in batch:
                    if chosen[_story(row)] == row["id"]:
                        found[_story(row)] = row
                        if len(found) == limit:
                            break
                if len(found) == limit:
                    break
        finally:
            cursor.close()
        rows = list(found.values())
        for row in rows:
            row["snippet"] = _start(row["snippet"])
        self._decorate(rows)
        return rows

    def _plan(self, query: str, *filters: Any
              ) -> tuple[list[tuple[Term, bool]], list[Table], dict[str, Any]]:
        """(the query's terms, the FTS5 tables it searches with their queries and conditions,
        the filters' parameters) for ``search`` and ``count_matches``; ``filters`` as
        ``_filters`` takes them."""
        tree = parse_query(query)
        where, params = _filters(*filters)
        terms = list(_terms(tree))
        return terms, self._tables(tree, terms, where), params

    def _tables(self, tree: Any, terms: list[tuple[Term, bool]], where: list[str]
                ) -> list[Table]:
        """The FTS5 tables a query searches, each with its query and the conditions on items
        (CJK items only in items_fts_cjk where both take part)."""
        latin, cjk = self._matches(tree, terms)
        tables: list[Table] = []
        if latin is not None:
            extra = [NOT_CJK] if cjk is not None else []
            tables.append(("items_fts", latin, where + extra))
        if cjk is not None:
            tables.append((CJK_TABLE, cjk, where))
        return tables

    def _matches(self, tree: Any, terms: list[tuple[Term, bool]]
                 ) -> tuple[str | None, str | None]:
        """(the items_fts query, the items_fts_cjk query) of a parsed query; the second is None
        when items_fts_cjk takes no part (``_uses_cjk``), the first when only CJK words are
        asked for. Where both take part, CJK items are searched in items_fts_cjk only."""
        cjk = _render(tree, cjk=True) if self._uses_cjk(terms) else None
        return _render(tree, cjk=False), cjk

    def _uses_cjk(self, terms: list[tuple[Term, bool]]) -> bool:
        """Whether items_fts_cjk takes part: for CJK words, and for every query once the store
        has CJK items (their Latin words written against CJK letters, `NEDOは` or `生成AI`,
        are whole words only there). A store without CJK items searches as it always did."""
        return any(term.cjk for term, _ in terms) or self.conn.execute(
            f"SELECT 1 FROM {CJK_TABLE} LIMIT 1").fetchone() is not None

    @staticmethod
    def _select(table: str, conditions: list[str], *, ranked: bool = True) -> str:
        """SQL for the items matching ``:q`` in the FTS5 ``table`` and meeting ``conditions``,
        with their bm25 score (best first if the caller adds ORDER BY); ``ranked`` False
        leaves the score NULL, for a lookup by rowid: bm25 counts the items holding each term
        again at every lookup (milliseconds for a common word)."""
        open_, close = HIGHLIGHT
        # items_fts_cjk's text is character pairs: its rows get a snippet later (_cjk_snippets)
        snippet = (f"snippet({table}, -1, '{open_}', '{close}', '…', 24)"
                   if table == "items_fts" else "NULL")
        if ranked:
            conditions = [f"{table}.rank MATCH :ranking", *conditions]
        return f"""
            SELECT i.id, i.url, i.title, i.source_id, i.published_at, i.language,
                   i.duplicate_of, {snippet} AS snippet,
                   {f"-{table}.rank" if ranked else "NULL"} AS score, '{table}' AS "table"
            {_matching(table, conditions)}"""

    def _ranked(self, table: str, match: str, where: list[str], params: dict[str, Any],
                limit: int, exact: bool) -> list[dict[str, Any]]:
        """The best-ranked match of each of the ``limit`` best stories among the matches of
        ``match`` in the FTS5 ``table`` meeting ``where``, best first."""
        sql = self._select(table, where) + f" ORDER BY {table}.rank"
        params = {**params, "q": match}
        floor = None if exact else self._rank_floor(match, table)
        rows = []
        if floor is not None:
            windowed = sql.replace("WHERE ", f"WHERE {table}.rowid >= :floor AND ", 1)
            rows = self._stories(windowed, {**params, "floor": floor}, limit)
        if floor is None or len(rows) < limit:
            rows = self._stories(sql, params, limit)
        return rows

    def _newest(self, tables: list[Table], params: dict[str, Any], limit: int, exact: bool
                ) -> list[dict[str, Any]]:
        """The ``limit`` latest-published stories matching in ``tables``, each as ``search``
        shows it (``_shown_items``) with
        ``search``'s score (its best match's) and snippet.

        Matches are sorted by date on their id, date and original alone: bm25 and snippets
        (the costly part) are computed only for the stories shown. Unless ``exact``, only the
        RANK_WINDOW most recently stored matches are sorted first; stored order is not
        publication order, so the older matches published after the last story read (found
        through the ``published_at`` index, usually none) are merged in, and a window short of
        ``limit`` stories sorts every match: the order is exact either way."""
        floors = [None if exact else self._rank_floor(match, table)
                  for table, match, _ in tables]
        found = dict(params)
        for n, ((_, match, _), floor) in enumerate(zip(tables, floors)):
            found[f"q{n}"], found[f"floor{n}"] = match, floor
        head = "SELECT i.id AS id, i.published_at AS published_at, i.duplicate_of AS duplicate_of"

        def matches(windowed: bool) -> list[str]:
            return [f"{head} " + _matching(table, [*conditions, *(
                [f"{table}.rowid >= :floor{n}"] if windowed and floor is not None else [])],
                f":q{n}") for n, ((table, _, conditions), floor) in enumerate(zip(tables, floors))]

        chosen: dict[int, int] = {}  # story -> the id of the item that stands for it
        shown, last = self._fold_by_date(matches(True), found, chosen, tables, params, limit)
        windowed = any(floor is not None for floor in floors)  # else every match was sorted
        if windowed and len(shown) < limit:  # the window was not enough: sort every match
            shown, _ = self._fold_by_date(matches(False), found, chosen, tables, params, limit)
        elif windowed:
            # Older matches published after the last row read come before it: found from the
            # newest end of the published_at index, each looked up in the FTS5 index (`+i.id`:
            # not by rowid, which would read every item below the window).
            found["after"] = last["published_at"]  # type: ignore[index]
            later = [f"{head} FROM items i WHERE " + " AND ".join([
                f"+i.id < :floor{n}",
                "i.published_at IS NOT NULL" if found["after"] is None
                else "i.published_at > :after",
                *conditions,
                f"EXISTS (SELECT 1 FROM {table} WHERE {table} MATCH :q{n} "
                f"AND {table}.rowid = i.id)"])
                for n, ((table, _, conditions), floor) in enumerate(zip(tables, floors))
                if floor is not None]
            if self.conn.execute(f"SELECT EXISTS ({' UNION ALL '.join(later)})",
                                 found).fetchone()[0]:
                shown, _ = self._fold_by_date(matches(True) + later, found, chosen, tables,
                                              params, limit)
        if not shown:
            return []
        wanted = set(shown)
        stories = [story for story, item in chosen.items() if item in wanted]
        scored = self._matching_items(stories, tables, params, ranked=True)
        best: dict[int, float] = {}
        for row in scored.values():
            story = _story(row)
            best[story] = max(best.get(story, row["score"]), row["score"])
        rows = [scored[item] for item in shown]
        for row in rows:
            row["score"] = best[_story(row)]
        return rows

    def _fold_by_date(self, parts: list[str], found: dict[str, Any], chosen: dict[int, int],
                      tables: list[Table], params: dict[str, Any], limit: int
                      ) -> tuple[list[int], dict[str, Any] | None]:
        """(the ids shown for the first ``limit`` stories among the rows of the SELECTs
        ``parts``, latest published first; the last row read). ``chosen`` caches which item
        stands for each story (it does not depend on the rows read)."""
        shown: list[int] = []
        last = None
        cursor = self.conn.execute(
            " UNION ALL ".join(parts) + " ORDER BY published_at DESC, id DESC", found)
        try:
            for batch in _batches(_named(cursor), limit):
                new = [row for row in batch if _story(row) not in chosen]
                if new:
                    chosen.update(self._shown_items([_story(row) for row in new], tables, params,
                                                   matched=[row["id"] for row in new]))
                for row in batch:
                    last = row
                    # Only the item standing for its story is shown, where its own date puts
                    # it: another item of the story read first waits for it further down.
                    if chosen[_story(row)] == row["id"]:
                        shown.append(row["id"])
                        if len(shown) == limit:
                            return shown, last
        finally:
            cursor.close()
        return shown, last

    def _shown_items(self, stories: Sequence[int], tables: list[Table] | None,
                    params: dict[str, Any], where: Sequence[str] = (),
                    matched: Sequence[int] = ()) -> dict[int, int]:
        """{story: the id of the item shown for it}: the one rule of search (both orders) and
        of listing without a query, the digest's rule applied to the items that qualify.

        A story's items that qualify are those that match the query in ``tables`` and meet
        their conditions (``tables`` None: no query, the items meeting ``where``). Taken in the
        digest's order, the original first, then its copies as they were stored, the first
        from an official source (``OFFICIAL_ORG_TYPES``) is shown, else the first: the
        original when it qualifies, unless it is a news report and an official source's copy
        qualifies too. Stories none of whose items qualify are left out. ``matched``: items
        already known to qualify (a story with no copies is then not looked up again)."""
        known = set(matched)
        stories = list(dict.fromkeys(stories))
        official = f"s.org_type IN ({', '.join(repr(kind) for kind in sorted(OFFICIAL_ORG_TYPES))})"
        flags: dict[int, bool] = {}  # item -> from an official source
        copies: dict[int, list[int]] = {}
        for chunk in _chunks(stories):
            found: dict[str, Any] = {}
            for item, story, flag in self.conn.execute(
                    f"SELECT i.id, i.duplicate_of, {official} FROM items i LEFT JOIN sources s "
                    f"ON s.id = i.source_id WHERE i.duplicate_of IN ({_bind(found, 's', chunk)})",
                    found):
                copies.setdefault(story, []).append(item)
                flags[item] = bool(flag)
        # Most stories are an original alone, read as a row that qualifies: nothing to choose.
        shown = {story: story for story in stories if story not in copies and story in known}
        rest = [story for story in stories if story not in shown]
        for chunk in _chunks(rest):
            found = {}
            flags.update((item, bool(flag)) for item, flag in self.conn.execute(
                f"SELECT i.id, {official} FROM items i LEFT JOIN sources s ON s.id = i.source_id "
                f"WHERE i.id IN ({_bind(found, 's', chunk)})", found))
        # The digest's order: the original, then the copies by id (the order they came in).
        members = {story: [item for item in [story, *sorted(copies.get(story, []))]
                           if item in flags] for story in rest}
        qualifying = set(known)
        for chunk in _chunks([item for items in members.values() for item in items
                              if item not in known]):
            if tables is None:
                found = dict(params)
                ids = _bind(found, "member", chunk)
                qualifying.update(item for (item,) in self.conn.execute(
                    f"SELECT i.id FROM items i WHERE i.id IN ({ids})"
                    + "".join(f" AND {condition}" for condition in where), found))
                continue
            for table, match, conditions in tables:
                found = {**params, "q": match}
                ids = _bind(found, "member", chunk)
                qualifying.update(item for (item,) in self.conn.execute(
                    f"SELECT i.id {_matching(table, [*conditions, f'{table}.rowid IN ({ids})'])}",
                    found))
        for story, items in members.items():
            ordered = [item for item in items if item in qualifying]
            if ordered:
                shown[story] = next((item for item in ordered if flags[item]), ordered[0])
        return shown

    def _matching_items(self, stories: list[int], tables: list[Table],
                        params: dict[str, Any], *, ranked: bool) -> dict[int, dict[str, Any]]:
        """The items of ``stories`` (originals and copies) that match in ``tables``, by id,
        with their snippet and, if ``ranked``, their bm25 score."""
        marks = ", ".join("?" for _ in stories)
        members = [item for (item,) in self.conn.execute(
            f"SELECT id FROM items WHERE id IN ({marks}) UNION "
            f"SELECT id FROM items WHERE duplicate_of IN ({marks})", [*stories, *stories])]
        found: dict[int, dict[str, Any]] = {}
        for table, match, conditions in tables:
            lookup = {**params, "q": match, "low": min(members), "high": max(members)}
            ids = _bind(lookup, "member", members)
            # bm25 counts the items holding each term at every lookup by rowid (milliseconds
            # for common words, 10 ms for a phrase of two), once for a range of rowids: the
            # members' range is read instead when it holds few other matches (as when the
            # latest published are the latest stored). `+i.id`: not looked up one by one.
            spread = ranked and self.conn.execute(
                f"SELECT count(*) FROM {table} WHERE {table} MATCH :q AND {table}.rowid "
                "BETWEEN :low AND :high", lookup).fetchone()[0] <= RANK_WINDOW
            where = ([f"{table}.rowid BETWEEN :low AND :high", f"+i.id IN ({ids})"] if spread
                     else [f"{table}.rowid IN ({ids})"])
            sql = self._select(table, [*conditions, *where], ranked=ranked)
            for row in _named(self.conn.execute(sql, lookup)):
                found[row["id"]] = row
        return found

    def _stories(self, sql: str, params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        """The first row of each story in the rows of ``sql`` (best first), up to ``limit``
        stories: the rows are read one at a time and no further than needed."""
        rows: dict[int, dict[str, Any]] = {}
        cursor = self.conn.execute(sql, params)
        try:
            for row in _named(cursor):
                rows.setdefault(_story(row), row)
                if len(rows) == limit:
                    break
        finally:
            cursor.close()
        return list(rows.values())

    def _show_chosen(self, rows: list[dict[str, Any]], tables: list[Table],
                     params: dict[str, Any]) -> None:
        """Show each story's row as the item ``_shown_items`` chooses for it, where that is not
        its best-ranked match (in place). The story keeps its place and score, its best
        match's. Looked up by id: the item may be older than the ranking window."""
        chosen = self._shown_items([_story(row) for row in rows], tables, params,
                                  matched=[row["id"] for row in rows])
        wanted = {chosen[_story(row)]: n for n, row in enumerate(rows)
                  if chosen[_story(row)] != row["id"]}
        for table, match, conditions in tables:
            if not wanted:
                return
            found = {**params, "q": match}
            marks = _bind(found, "shown", list(wanted))
            sql = self._select(table, [*conditions, f"{table}.rowid IN ({marks})"],
                               ranked=False)
            for item in _named(self.conn.execute(sql, found)):
                n = wanted.pop(item["id"])
                item["score"] = rows[n]["score"]
                rows[n] = item

    def _rank_floor(self, match: str, table: str = "items_fts") -> int | None:
        """The rowid of the RANK_WINDOW-th most recent match, or None if there are fewer.

        Walking a doclist from the newest rowid is cheap when matches are dense; when they are
        sparse (a phrase of two common words) the walk would read the whole index for nothing.
        So the newest tenth of the rowid space is sampled first: a sparse query is sent
        straight to exact ranking, which has to read its matches once anyway.
        """
        top = self.scalar("SELECT max(rowid) FROM items") or 0
        recent = top - top // 10
        count, oldest = self.conn.execute(
            f"SELECT count(*), min(rowid) FROM (SELECT rowid FROM {table} WHERE {table} "
            "MATCH ? AND rowid >= ? ORDER BY rowid DESC LIMIT ?)", [match, recent, RANK_WINDOW]
        ).fetchone()
        if count >= RANK_WINDOW:
            return oldest
        if count * 10 < RANK_WINDOW:  # fewer than the window expected in all: rank them all
            return None
        row = self.conn.execute(
            f"SELECT rowid FROM {table} WHERE {table} MATCH ? ORDER BY rowid DESC "
            "LIMIT 1 OFFSET ?", [match, RANK_WINDOW - 1]
        ).fetchone()
        return None if row is None else row[0]

    def count_matches(
        self,
        query: str,
        *,
        areas: Sequence[str] = (),
        domains: Sequence[str] = (),
        countries: Sequence[str] = (),
        regions: Sequence[str] = (),
        sources: Sequence[str] = (),
        since: str | None = None,
        until: str | None = None,
        policy_only: bool = False,
        tz: tzinfo = timezone.utc,
        after_id: int | None = None,
    ) -> int:
        """How many stories ``search`` finds for ``query`` with these filters, with no limit:
        the rows it would show (an original and its near-duplicates count once)."""
        _require_words(query)
        _, tables, params = self._plan(query, areas, domains, countries, regions,
                                       sources, since, until, policy_only, tz, after_id)
        named = []
        for n, (table, match, conditions) in enumerate(tables):
            params[f"q{n}"] = match
            named.append((table, f":q{n}", conditions))
        with _query_errors(query):
            return self.conn.execute(
                f"SELECT count(DISTINCT story) FROM ({stories_sql(named)})", params
            ).fetchone()[0]

    def stories_matching(self, query: str, story_ids: Iterable[int]) -> set[int]:
        """The stories among ``story_ids`` (their originals' ids) that ``query`` matches: those
        any of whose items, the original or a copy, it matches, each item on its own text as
        ``search`` matches it (``stories_sql``, the rule the search box of `stiwatch serve`'s
        page of stories applies too): the digest's test of a reader's saved query on the
        week's stories. BadQuery if ``query`` is empty or malformed.

        The index is read over the range of the ids of the stories' items (a copy may be
        stored long after its original) and the matches kept in Python: one walk of each
        term's doclist, where a lookup per id costs one seek per id (a week holds thousands),
        and a week's items are stored close together."""
        _require_words(query)
        stories = set(story_ids)
        _, tables, params = self._plan(query, (), (), (), (), (), None, None, False,
                                       timezone.utc)
        if not stories:
            return set()
        low, high = min(stories), max(stories)
        # The copies of every original in that range: a few more than the stories' own
        # (others' copies only widen the walk), in one read of the index of copies.
        first, last = self.conn.execute(
            "SELECT min(id), max(id) FROM items WHERE duplicate_of BETWEEN ? AND ?",
            [low, high]).fetchone()
        if first is not None:
            low, high = min(low, first), max(high, last)
        params.update(low=low, high=high)
        bounded = []
        for n, (table, match, conditions) in enumerate(tables):
            params[f"q{n}"] = match
            bounded.append((table, f":q{n}",
                            [*conditions, f"{table}.rowid BETWEEN :low AND :high"]))
        with _query_errors(query):
            return {story for (story,) in self.conn.execute(stories_sql(bounded), params)
                    if story in stories}

    def _decorate(self, rows: list[dict[str, Any]]) -> None:
        """Add source names, copy counts and tags to a page of result rows (in place)."""
        if not rows:
            return
        ids = [row["id"] for row in rows]
        marks = ", ".join("?" for _ in ids)
        by_id = {row["id"]: row for row in rows}
        by_story = {_story(row): row for row in rows}
        for row in rows:
            row["score"] = None if row["score"] is None else round(row["score"], 3)
            row["copies"] = 0
            row["source_name"] = None
        # The same number whichever of its items stands for a story: an original folds its
        # copies, a copy shown folds the original and the other copies.
        for story, copies in self.conn.execute(
            f"SELECT duplicate_of, count(*) FROM items WHERE duplicate_of IN "
            f"({', '.join('?' for _ in by_story)}) GROUP BY duplicate_of", list(by_story)
        ):
            by_story[story]["copies"] = copies
        for item_id, name in self.conn.execute(
            f"SELECT i.id, s.name FROM items i JOIN sources s ON s.id = i.source_id "
            f"WHERE i.id IN ({marks})", ids
        ):
            by_id[item_id]["source_name"] = name
        self._attach_tags(by_id)

    def _attach_tags(self, by_id: dict[int, dict[str, Any]], analyst: bool = False) -> None:
        """Give each row ``policy`` and ``policy_score`` (the probability of policy relevance;
        both None when untagged) and its tag lists (``areas``, ...); with ``analyst``, also
        ``analyst_tags``, the tags an analyst set, as ``facet=value``."""
        for row in by_id.values():
            row["policy"] = row["policy_score"] = None
            for key in LIST_KEYS.values():
                row[key] = []
            if analyst:
                row["analyst_tags"] = []
        ids = list(by_id)
        marks = ", ".join("?" for _ in ids)
        for item_id, facet, value, score, method in self.conn.execute(
            f"SELECT item_id, facet, value, score, method FROM tags WHERE item_id IN ({marks}) "
            "ORDER BY item_id, facet, value", ids
        ):
            if analyst and method == "analyst":
                by_id[item_id]["analyst_tags"].append(f"{facet}={value}")
            if facet == "policy":
                by_id[item_id]["policy"] = int(value)
                by_id[item_id]["policy_score"] = score
            else:
                by_id[item_id][LIST_KEYS[facet]].append(value)

    # -- export -------------------------------------------------------------------------------

    def iter_export(self, *, since: str | None = None, tz: tzinfo = timezone.utc,
                    batch: int = 1000) -> Iterator[dict]:
        """Every item with its tags, in id order, a batch at a time (never all in memory).

        ``since`` keeps items published on or after that date (YYYY-MM-DD, from the start of
        that day in ``tz``) or ISO date-time; a bad one raises BadQuery here, before the caller
        has written anything (not at the first row).
        """
        condition, extra = "1", []
        if since:
            operator, bound = time_bound(since, "since", tz)
            condition, extra = f"i.published_at {operator} ?", [bound]
        return self._export_batches(condition, extra, batch)

    def _export_batches(self, condition: str, extra: list[Any], batch: int) -> Iterator[dict]:
        last = 0
        while True:
            rows = self.query(
                f"""SELECT i.id, i.url, i.source_id, s.name AS source_name, i.title, i.summary,
                           i.body, i.language, i.published_at, i.date_source, i.fetched_at,
                           i.status, i.fetch_error, i.fetch_attempts, i.duplicate_of,
                           c.classified_at
                    FROM items i LEFT JOIN sources s ON s.id = i.source_id
                    LEFT JOIN item_classification c ON c.item_id = i.id
                    WHERE i.id > ? AND {condition}
                    ORDER BY i.id LIMIT {int(batch)}""",
                [last, *extra],
            )
            if not rows:
                return
            self._attach_tags({row["id"]: row for row in rows}, analyst=True)
            yield from rows
            last = rows[-1]["id"]

