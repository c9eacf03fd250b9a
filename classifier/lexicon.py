"""Shared machinery of the rule taggers: reading lexicon TOML files and matching terms fast.

Term syntax (the same in domains.toml, areas.toml and places*.toml, so an analyst learns it once):

- a term written in lower case matches in any case: "machine learning" matches "Machine Learning";
- a term with a capital letter is case-sensitive: "AI" matches "AI" but not "ai" or "said";
  a gazetteer may also let a capitalised name match in ALL CAPS headlines ("JAPAN");
- terms match whole words only ("AI" never matches inside "AIDS", "chip" not inside "chipset");
- a space in a term matches any run of spaces, newlines or a hyphen ("open access" = "open-access");
- a final "s" or "es" (plurals, "LLMs") is accepted after any term;
- a term ending in "*" matches any word that starts with it ("nanotech*" = "nanotechnology").

Matching builds one trie-shaped regular expression per case mode, so a lexicon of thousands of
terms scans a long article in one pass; overlapping matches keep the longest, which is how
negative terms ("chocolate chip") mask the positive terms inside them ("chip").
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
import re
import tomllib
from typing import Any


class LexiconError(ValueError):
    """A lexicon file that cannot be read or does not follow its format (message names file and key)."""


def read_toml(path: str | Path, text: str | None = None) -> dict[str, Any]:
    """Parse a lexicon TOML file; errors name the file."""
    path = Path(path)
    try:
        if text is None:
            text = path.read_text(encoding="utf-8")
        return tomllib.loads(text)
    except FileNotFoundError:
        raise LexiconError(f"lexicon file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise LexiconError(f"cannot read lexicon file {path}: {error}.") from None
    except tomllib.TOMLDecodeError as error:
        raise LexiconError(f"lexicon file {path} is not valid TOML: {error}.") from None


def term_list(value: Any, where: str) -> list[str]:
    """``value`` as a list of non-empty term strings, or a LexiconError naming ``where``."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise LexiconError(f"{where} must be a list of strings, not {type(value).__name__}.")
    terms = []
    for term in value:
        if not isinstance(term, str) or not term.strip() or term.strip() == "*":
            raise LexiconError(f"{where} must hold only non-empty strings (found {term!r}).")
        terms.append(" ".join(term.split()))
    return terms


def number(value: Any, where: str, low: float = 0.0, high: float = 1e9) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise LexiconError(f"{where} must be a number between {low:g} and {high:g} (found {value!r}).")
    return float(value)


def table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LexiconError(f"{where} must be a table, not {type(value).__name__}.")
    return value


def case_sensitive(term: str) -> bool:
    return any(ch.isupper() for ch in term)


@dataclass(frozen=True)
class Hit:
    start: int
    end: int
    keys: tuple[Hashable, ...]  # what the matched term stands for; () for a masking (negative) term


_PLURAL = r"(?:e?s)?"
_SEP = r"[\s\-]+"
_WORD = re.compile(r"\w")


class _Trie:
    def __init__(self) -> None:
        self.root: dict[str, Any] = {}

    def add(self, pieces: list[str]) -> None:
        node = self.root
        for piece in pieces:
            node = node.setdefault(piece, {})
        node[""] = True

    def pattern(self) -> str:
        return self._node(self.root)

    def _node(self, node: dict[str, Any]) -> str:
        end = "" in node
        branches = [piece + self._node(child) for piece, child in node.items() if piece != ""]
        if not branches:
            return ""
        if len(branches) == 1 and not end:
            return branches[0]
        return "(?:" + "|".join(branches) + ")" + ("?" if end else "")


def _pieces(term: str) -> list[str]:
    """A term as regex pieces, one per character, so the trie shares prefixes."""
    pieces = []
    for ch in term:
        if ch == " ":
            pieces.append(_SEP)
        elif ch == "-":
            pieces.append(_SEP)
        else:
            pieces.append(re.escape(ch))
    return pieces


def _norm(text: str, fold: bool) -> str:
    text = re.sub(r"[\s\-]+", " ", text)
    return text.lower() if fold else text


class Matcher:
    """Finds every lexicon term in a text: whole words, longest match wins, one pass per case mode."""

    def __init__(self, terms: Iterable[tuple[str, Hashable | None]], *, caps: bool = False) -> None:
        """``terms``: (term, key) pairs; key None marks a masking term. ``caps``: capitalised
        multi-letter names also match written in capitals ("South Korea" -> "SOUTH KOREA")."""
        self._exact: dict[str, set] = {}
        self._folded: dict[str, set] = {}
        self._prefix: list[tuple[str, bool, set]] = []
        tries = {True: _Trie(), False: _Trie()}
        for term, key in terms:
            prefix = term.endswith("*")
            base = term[:-1].rstrip() if prefix else term
            sensitive = case_sensitive(base)
            forms = [base]
            if sensitive and caps and not base.isupper() and sum(c.isalpha() for c in base) > 3:
                forms.append(base.upper())
            for form in forms:
                written = form if sensitive else form.lower()
                keys = (self._exact if sensitive else self._folded).setdefault(
                    _norm(written, not sensitive), set())
                if key is not None:
                    keys.add(key)
                pieces = _pieces(written)
                if prefix:
                    pieces.append(r"\w*")
                    self._prefix.append((_norm(written, not sensitive), sensitive, keys))
                tries[sensitive].add(pieces)
        self._regexes = []
        for sensitive, trie in tries.items():
            if trie.root:
                body = trie.pattern()
                flags = 0 if sensitive else re.IGNORECASE
                self._regexes.append(
                    (sensitive, re.compile(r"(?<!\w)" + body + _PLURAL + r"(?!\w)", flags)))

    def _keys(self, matched: str, sensitive: bool) -> set:
        table = self._exact if sensitive else self._folded
        form = _norm(matched, not sensitive)
        for candidate in (form, form[:-1], form[:-2]):
            if candidate in table:
                return table[candidate]
        for prefix, prefix_sensitive, keys in self._prefix:
            if prefix_sensitive == sensitive and form.startswith(prefix):
                return keys
        return set()

    def find(self, text: str) -> list[Hit]:
        """Non-overlapping hits in text order; where matches overlap the longest one wins."""
        found: list[tuple[int, int, bool, str]] = []
        for sensitive, regex in self._regexes:
            for match in regex.finditer(text):
                found.append((match.start(), match.end(), sensitive, match.group()))
        if len(self._regexes) > 1:
            found.sort(key=lambda hit: (hit[0], hit[0] - hit[1]))
        hits: list[Hit] = []
        last_end = -1
        for start, end, sensitive, matched in found:
            if start < last_end:  # overlaps a longer (or earlier) hit
                continue
            keys = self._keys(matched, sensitive)
            hits.append(Hit(start, end, tuple(sorted(keys, key=str))))
            last_end = end
        return hits


def is_shouting(text: str) -> bool:
    """True for ALL-CAPS text (wire headlines), where case tells nothing about acronyms."""
    letters = [ch for ch in text if ch.isalpha()]
    return len(letters) >= 8 and sum(ch.isupper() for ch in letters) / len(letters) > 0.8
