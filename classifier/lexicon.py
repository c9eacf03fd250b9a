"""Shared machinery of the rule taggers: reading lexicon TOML files and matching terms fast.

Term syntax (the same in domains.toml, areas.toml and places*.toml, so an analyst learns it once):

- a term written in lower case matches in any case: "machine learning" matches "Machine Learning";
- a term with a capital letter is case-sensitive: "AI" matches "AI" but not "ai" or "said";
  a gazetteer may also let a capitalised name match in ALL CAPS headlines ("JAPAN");
- terms match whole words only ("AI" never matches inside "AIDS", "chip" not inside "chipset");
- a space in a term matches any run of spaces, newlines or a hyphen ("open access" = "open-access");
- a final "s" or "es" (plurals, "LLMs") is accepted after any term;
- a term ending in "*" matches any word that starts with it ("nanotech*" = "nanotechnology");
- a term with Chinese characters, kana or Hangul (two characters or more in all) matches
  anywhere in a run of them: those scripts do not put spaces between words, and Korean joins
  particles to the word ("한국의" = Korea's), so whole words cannot be told from the text; for
  the same reason a Chinese character, kana or Hangul beside a Latin word is a word boundary
  ("JSTは", "AI研究").

Matching uses Aho-Corasick automata (pyahocorasick), so a lexicon of thousands of terms scans a
long article in one pass; overlapping matches keep the longest, which is how negative terms
("chocolate chip") mask the positive terms inside them ("chip").
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from importlib import resources
from itertools import islice
from pathlib import Path
import math
import operator
import pickle
import re
import string
import tomllib
from typing import Any, NamedTuple

import ahocorasick


class LexiconError(ValueError):
    """A lexicon file that cannot be read or does not follow its format (message names file and key)."""


def read_toml(path: str | Path, text: str | None = None) -> dict[str, Any]:
    """Parse a lexicon TOML file; errors name the file."""
    path = Path(path)
    try:
        if text is None:
            data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
            text = data.decode("utf-8")
        return tomllib.loads(text)
    except FileNotFoundError:
        raise LexiconError(f"lexicon file {path} does not exist.") from None
    except UnicodeDecodeError as error:
        # A file saved in Shift_JIS by a Windows editor: say where, as the editor shows it.
        line = data[:error.start].count(b"\n") + 1
        raise LexiconError(f"lexicon file {path} is not UTF-8 (byte 0x{data[error.start]:02x} "
                           f"on line {line}): save it as UTF-8.") from None
    except OSError as error:
        raise LexiconError(f"cannot read lexicon file {path}: {error}.") from None
    except tomllib.TOMLDecodeError as error:
        raise LexiconError(f"lexicon file {path} is not valid TOML: {error}.") from None


def data_file(name: str) -> Path:
    """A data file (lexicon, labelled news) shipped in classifier/data/."""
    return Path(str(resources.files(__package__).joinpath("data", name)))


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


class Hit(NamedTuple):
    start: int
    end: int
    keys: tuple[Hashable, ...]  # what the matched term stands for; () for a masking (negative) term


_SEPARATOR = re.compile("[\t\n\r\f\v\xa0\u2010\u2011-]")
# the same on UTF-8 bytes: ASCII bytes only, so multi-byte characters pass unchanged
_SEPARATOR_BYTES = bytes(32 if chr(b) in "\t\n\r\f\v-" else b for b in range(256))
_recent: dict[str, str] = {}


def term_id(term: str) -> str:
    """The form under which a lexicon counts a term: lower case, with hyphens and runs of
    spaces as one space, as the matcher reads it ("net-zero" and "net zero" are one term,
    counted once per hit however many of its spellings a lexicon lists)."""
    return _lower(normalize(term).strip())


def normalize(text: str) -> str:
    """Text as the matcher sees it: every run of spaces, newlines and hyphens is one space.

    The last few results are kept: the taggers of one item normalise the same texts in turn."""
    cached = _recent.get(text)
    if cached is not None:
        return cached
    # C-fast ways to _SEPARATOR.sub(" ", text) (same result)
    if text.isascii():  # bytes.translate: twice as fast as str.translate with a dict
        result = text.encode("ascii").translate(_SEPARATOR_BYTES).decode("ascii")
    else:
        result = (text.replace("\xa0", " ").replace("\u2010", " ").replace("\u2011", " ")
                  .encode("utf-8", "surrogatepass").translate(_SEPARATOR_BYTES)
                  .decode("utf-8", "surrogatepass"))
    if "  " in result:
        result = " ".join(result.split())
    if len(_recent) >= 4:
        _recent.clear()
    _recent[text] = result
    return result


_counted: dict[str, int] = {}


def word_count(text: str) -> int:
    """Approximate number of words of a normalised text (cheap: counts spaces, and in Chinese
    and Japanese, which write words without spaces between them, half the Chinese characters
    and kana). The last few counts are kept: each tagger of an item counts the same text."""
    if not text:
        return 0
    count = _counted.get(text)
    if count is None:
        if len(_counted) >= 4:
            _counted.clear()
        count = _counted[text] = text.count(" ") + 1 + cjk_words(text)
    return count


def cjk_words(text: str) -> int:
    """Words written in Chinese characters or kana, which have no spaces between them, about
    two characters each (0 for text without them). Korean spaces its words: they are
    counted as spaces."""
    if text.isascii():
        return 0
    first = _UNSPACED.search(text)  # most non-ASCII text has none: one pass, no list
    return 0 if first is None else len(_UNSPACED.findall(text, first.start())) // 2


def _lower(text: str) -> str:
    lowered = text.lower()
    if len(lowered) != len(text):  # a few characters ("İ") lower to two: keep offsets aligned
        lowered = "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)
    return lowered


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


# Han (with its extensions and compatibility forms), kana and Hangul (syllables and jamo)
_CJK = re.compile("[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf"
                  "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


# Han and kana: the scripts written without spaces between words
_UNSPACED = re.compile("[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def cjk_term(folded: str) -> bool:
    """True for a term with Chinese characters, kana or Hangul, two characters or more
    ("中国", "生成AI", "AI法"): it matches without word boundaries. One such character alone
    ("米" for the US, also rice) says too little to match inside other words, and matches
    nothing (those characters are word boundaries to the bounded terms)."""
    return bool(_CJK.search(folded)) and sum(map(_is_word, folded)) >= 2


# re's \w is exactly str.isalnum() or "_" (checked over all of Unicode), and lower-casing one
# character never changes whether it is a word character.
_NON_WORD = re.compile(r"[^\w ]")
_NON_WORD_BYTES = bytes(32 if b < 128 and _NON_WORD.match(chr(b)) else b for b in range(256))
_ONE_WORD = re.compile(r"\w+")
_TERM_LENGTH = operator.itemgetter(1)


_ASCII_BYTES = bytes(range(128))


def non_ascii_chars(text: str) -> set[str]:
    """The distinct characters of ``text`` outside ASCII. Its UTF-8 bytes without the ASCII
    ones are those characters' own bytes, found at C speed, where ``set(text)`` took every
    character of the text, mostly ASCII, into a set one by one: 6% of `stiwatch classify`'s
    instructions, for the few curly quotes and dashes of an English article."""
    return set(text.encode("utf-8", "surrogatepass").translate(None, _ASCII_BYTES)
               .decode("utf-8", "surrogatepass"))


def _map_non_word(text: str) -> str:
    """``_NON_WORD.sub(" ", text)`` (a space for every non-word character), C-fast: see
    _map_words."""
    return _map_words(text)[0]


def _map_words(text: str) -> tuple[str, bool]:
    """(``_NON_WORD.sub(" ", text)``, whether the text has Chinese characters, kana or
    Hangul), C-fast: ASCII text by bytes.translate; other text by replacing its few distinct
    non-ASCII non-word characters (and looking for CJK among the others), then translating
    the ASCII bytes of its UTF-8 form (multi-byte characters pass unchanged, so offsets
    stay)."""
    if text.isascii():
        return text.encode("ascii").translate(_NON_WORD_BYTES).decode("ascii"), False
    cjk = False
    for ch in non_ascii_chars(text):
        if not ch.isalnum():
            text = text.replace(ch, " ")
        elif not cjk and _CJK.match(ch):
            cjk = True
    return text.encode("utf-8").translate(_NON_WORD_BYTES).decode("utf-8"), cjk


class Matcher:
    """Finds every lexicon term in a text: whole words, longest match wins.

    One Aho-Corasick automaton of every term's lower-case form scans a long article in a single
    C-speed pass over its lower-case copy; Python then checks case-sensitive terms against the
    original text, keeps only matches on word boundaries (a plural "s"/"es" may follow) and,
    where matches overlap, the longest one.
    """

    def __init__(self, terms: Iterable[tuple[str, Hashable | None]], *, caps: bool = False,
                 layered: bool = False) -> None:
        """``terms``: (term, key) pairs; key None marks a masking term. ``caps``: in ALL-CAPS
        text ("JAPAN TO FUND"), capitalised terms match whatever their case. ``layered``: keys
        are tuples whose first item names a layer (and a masking term's key is (layer, None));
        overlaps are resolved within each layer, so two lexicons share one scan."""
        self.caps = caps
        self.layered = layered
        # lower-cased form -> {written form or None (any case): [keys, prefix?]}
        table: dict[str, dict[str | None, list]] = {}
        for term, key in terms:
            prefix = term.endswith("*")
            base = normalize(term[:-1] if prefix else term).strip()
            written = base if case_sensitive(base) else None
            entry = table.setdefault(_lower(base), {}).setdefault(written, [set(), False])
            if key is not None:
                entry[0].add(key)
            entry[1] = entry[1] or prefix
        # Keys carry the word boundaries: " " + term + " " (and + "s " / "es " for plurals, or
        # no end for a prefix term) over the text with every non-word character mapped to a
        # space (see _collect), so the automaton reports whole-word matches only and Python only
        # confirms the exact characters (and case) of each.
        # Each layer of a layered matcher has its own slot: the scan puts a candidate straight
        # into its layer's list (a term of two layers gives one reading per layer).
        slots: dict[Hashable, int] = {}
        readings: dict[str, list[tuple]] = {}
        for folded, forms in table.items():
            if not folded:
                continue
            mapped = " " + _NON_WORD.sub(" ", folded)
            for written, (keys, prefix) in forms.items():
                ordered = tuple(sorted(keys, key=str))
                by_slot: list[tuple[int, tuple]] = [(0, ordered)]
                if layered:  # (slot, kept keys) per layer; a masking term keeps none
                    layers: dict[Hashable, list] = {}
                    for key in ordered:
                        layers.setdefault(key[0], [])
                        if key[1] is not None:
                            layers[key[0]].append(key)
                    by_slot = [(slots.setdefault(layer, len(slots)), tuple(kept))
                               for layer, kept in layers.items()]
                # the key's leading space stands for the word boundary before a term; a term
                # without boundaries has none, and its start is one character further on
                lead = " "
                if cjk_term(folded):
                    lead, endings = "", (("", 0),)
                elif prefix:
                    endings = (("", 2),)
                else:
                    endings = ((" ", 0), ("s ", 1), ("es ", 1))
                for ending, rank in endings:
                    key = lead + mapped[1:] + ending
                    # a one-word term's key matches its exact characters: nothing to confirm
                    check = None if _ONE_WORD.fullmatch(folded) else folded
                    for slot, kept in by_slot:
                        readings.setdefault(key, []).append(
                            (len(key) + 1 - len(lead), len(folded), ending.rstrip(), rank,
                             check, written, kept,
                             slot))  # last: the candidate list (slot; see share_scan)
        self.slots = max(len(slots), 1)
        # the layer of each slot, in slot order (a plain matcher: one slot, layer None)
        self.layers: list[Hashable] = list(slots) if layered else [None]
        self._readings = readings
        self._automata = _automata(readings)
        self._shared: tuple[SharedScan, int] | None = None

    def scan(self, text: str) -> tuple[str, list[Hit]]:
        """The normalised text and its hits (offsets into that text), in text order."""
        text = normalize(text)
        return text, self._find(text)

    def find(self, text: str) -> list[Hit]:
        """Hits in ``normalize(text)``: non-overlapping, in text order, longest first."""
        return self._find(normalize(text))

    def _candidates(self, text: str) -> list[list[tuple]]:
        """Each slot's candidate hits (start, end, rank, keys) in a normalised text."""
        if self._shared is not None:
            scan, first = self._shared
            return scan.found(text)[first:first + self.slots]
        return _collect(self._automata, text, (self.caps,) * self.slots)

    def _find(self, text: str) -> list[Hit]:
        lists = self._candidates(text)
        if self.slots == 1:
            return _longest(_ordered(lists[0]))
        # overlaps are resolved within each layer
        hits = [hit for found in lists for hit in _longest(_ordered(found))]
        hits.sort(key=_START)
        return hits


def _automata(readings: dict[str, list[tuple]], compact: bool = False) -> tuple[Any, Any]:
    """(the automaton of the terms with word boundaries, that of the boundary-free (CJK)
    terms), each None when it has no term. Two automata, because the CJK terms' hundreds of
    first characters at the root made every scan of English text twice as slow (every
    bounded key starts with the same space). ``compact``: see _automaton."""
    bounded = {key: found for key, found in readings.items() if key.startswith(" ")}
    free = {key: found for key, found in readings.items() if not key.startswith(" ")}
    return ((_automaton(bounded, compact) if bounded else None),
            (_automaton(free, compact) if free else None))


def _automaton(readings: dict[str, list[tuple]], compact: bool = False) -> Any:
    automaton = ahocorasick.Automaton()
    for key, found in readings.items():
        # ties (same span and rank) keep the shorter term first, as a scan term by term would
        found.sort(key=_TERM_LENGTH)
        automaton.add_word(key, tuple(map(_compiled, found)))
    automaton.make_automaton()
    if not compact:
        return automaton
    # ``compact`` (the shared scan's, which every item goes through): the same automaton
    # again, made from its pickle, which lays its nodes out one after the other where adding
    # the words scattered them among the readings' objects. Its scans read less memory:
    # 10-15 % faster, and up to twice as fast when other work has evicted it from the CPU
    # caches (as the taggers do between two items' scans); a tenth of a second to load.
    return pickle.loads(pickle.dumps(automaton, protocol=pickle.HIGHEST_PROTOCOL))


def _compiled(reading: tuple) -> tuple:
    """A reading as _collect takes it: (offset of its start from the scan's end position,
    length of its hit, rank, keys, slot, the whole reading or None). Most readings (a
    one-word lower-case term, not a prefix) need no check: their hit is known from the
    automaton's position alone, and _collect adds it without unpacking the rest."""
    key_length, length, ending, rank, folded, written, keys, index = reading
    plain = written is None and folded is None and rank != 2
    return (1 - key_length, length + len(ending), rank, keys, index,
            None if plain else reading)


def _collect(automata: tuple[Any, Any], text: str, caps: tuple[bool, ...]) -> list[list[tuple]]:
    """Candidate hits (start, end, rank, keys) per slot (a matcher, or a layer of a layered
    one), in automaton order; ``automata``: see _automata; ``caps``: each slot's matcher's
    caps setting."""
    out: list[list[tuple]] = [[] for _ in caps]
    adds = [found.append for found in out]
    bounded, free = automata
    size = len(text)
    lowered = _lower(text)
    # a space for every non-word character and one at each end: the keys' word boundaries
    words, cjk = _map_words(lowered)
    mapped = " " + words + " "
    shouting = any(caps) and is_shouting(text[:200])
    any_cases = [flag and shouting for flag in caps]
    scans = ((bounded, mapped),)
    if cjk:
        # A Chinese character, kana or Hangul beside a Latin word ends that word ("JSTは"):
        # bounded terms are read where those characters are spaces (one for one, so offsets
        # stay), and boundary-free terms, which need them, in the text itself.
        scans = ((bounded, _CJK.sub(" ", mapped)), (free, mapped))
    for automaton, scanned_text in scans:
        if automaton is None:
            continue
        for last, readings in automaton.iter(scanned_text):
            for offset, span, rank, keys, index, reading in readings:
                start = last + offset  # mapped has one extra leading space
                if reading is None:  # nothing to check (see _compiled)
                    adds[index]((start, start + span, rank, keys))
                    continue
                _key_length, length, ending, _rank, folded, written, _keys, _index = reading
                end = start + length
                if written is not None and not any_cases[index]:
                    if text[start:end] != written:
                        continue
                    # a capitalised term takes a lower-case plural only ("LLMs", not "CNRS")
                    if ending and text[end:end + len(ending)] != ending:
                        continue
                elif folded is not None and lowered[start:end] != folded:
                    continue
                if rank == 2:  # prefix term: the rest of the word
                    stop = end
                    while stop < size and _is_word(text[stop]):
                        stop += 1
                    # of two prefix terms reading the same word, the longer one wins, as a
                    # longer term does elsewhere: "Quantensprung*" masks "Quanten*"
                    adds[index]((start, stop, 2 + 1 / (1 + length), keys))
                else:
                    adds[index]((start, end + len(ending), rank, keys))
    return out


class SharedScan:
    """One automaton for several matchers (the rules, domain and place lexicons): each text is
    scanned once for all of them, and each matcher takes its own hits, exactly as its own scan
    would have found them. The last few texts' results are kept, since the taggers of one item
    ask for the same texts in turn."""

    def __init__(self, matchers: Iterable["Matcher"]) -> None:
        self.matchers = list(matchers)
        readings: dict[str, list[tuple]] = {}
        # each matcher's slots (one per layer) follow the previous matcher's
        self._first: list[int] = []
        caps: list[bool] = []
        for matcher in self.matchers:
            first = len(caps)
            self._first.append(first)
            caps += [matcher.caps] * matcher.slots
            for key, found in matcher._readings.items():
                readings.setdefault(key, []).extend(r[:-1] + (first + r[-1],) for r in found)
        self._caps = tuple(caps)
        self._automata = _automata(readings, compact=True)
        self._recent: dict[str, list[list[tuple]]] = {}
        self.activate()

    def activate(self) -> None:
        """Make the matchers use this scan (a matcher, like the cached gazetteer's, may be in
        several; any of them gives it the same hits, this one saves the others' scans)."""
        for first, matcher in zip(self._first, self.matchers):
            matcher._shared = (self, first)

    def found(self, text: str) -> list[list[tuple]]:
        cached = self._recent.get(text)
        if cached is not None:
            return cached
        result = _collect(self._automata, text, self._caps)
        if len(self._recent) >= 4:
            self._recent.clear()
        self._recent[text] = result
        return result


def share_scan(matchers: Iterable["Matcher"]) -> SharedScan:
    """Make ``matchers`` scan each text once, together (results unchanged)."""
    return SharedScan(matchers)


_START = operator.itemgetter(0)
_END = operator.itemgetter(1)
_RANK = operator.itemgetter(2)


def _ordered(found: list[tuple[int, int, int, tuple]]) -> list[tuple[int, int, int, tuple]]:
    """Candidates leftmost first, then longest, then a term as written before a plural or
    prefix reading, else in scan order: three stable sorts on C-level keys, last key first
    (one sort with a Python key function per candidate took half as long again)."""
    found = sorted(found, key=_RANK)
    found.sort(key=_END, reverse=True)
    found.sort(key=_START)
    return found


_new_tuple = tuple.__new__


def _longest(found: list[tuple[int, int, int, tuple]]) -> list[Hit]:
    """Non-overlapping hits from sorted candidates: leftmost, then longest, wins."""
    hits: list[Hit] = []
    last_end = -1
    for start, end, _plural, keys in found:
        if start < last_end:  # overlaps a longer (or earlier) hit
            continue
        hits.append(_new_tuple(Hit, (start, end, keys)))  # Hit(start, end, keys), faster
        last_end = end
    return hits


# a full stop before a capital, a digit or a Korean word; Chinese and Japanese full stops
# need no space after them
_SENTENCE_END = re.compile(r"[.!?][\"'”’)]*\s+(?=[\"'“‘(]?[A-Z0-9\uac00-\ud7af])"
                           r"|[。！？][」』）\"”’)]*")


def lead_length(text: str, limit: int) -> int:
    """Characters of the lead: the first two sentences, at most ``limit`` characters."""
    # the second sentence end, without looking for the ones after it
    second = next(islice(_SENTENCE_END.finditer(text, 0, limit), 1, None), None)
    return min(second.end(), limit) if second is not None else limit


def scanned(text: str, limit: float) -> str:
    """The part of a normalised text that taggers read: the first ``limit`` characters, cut at
    a word boundary. Who and what an article is about is settled well before its end, and a
    bounded scan keeps tagging fast on very long pages."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, int(limit))
    return text[:cut if cut > 0 else int(limit)]


_bodies: dict[tuple[str, float], str] = {}
_leads: dict[tuple[str, int], int] = {}


def _body(text: str, limit: float, lead_chars: int) -> tuple[str, int]:
    """(the scanned part of ``text``, normalised; the length of its lead). The taggers of one
    item ask for the same text in turn: the last few are kept, the scanned part apart from
    the lead, so that taggers with other leads (the gazetteer's) get the same string object
    (and the shared scan finds it without comparing its characters)."""
    key = (text, limit)
    body = _bodies.get(key)
    if body is None:
        raw = text if len(text) <= 2 * limit else text[:int(2 * limit)]  # normalise what is read
        body = scanned(normalize(raw), limit)
        if len(_bodies) >= 4:
            _bodies.clear()
        _bodies[key] = body
    lead_key = (body, lead_chars)
    lead = _leads.get(lead_key)
    if lead is None:
        lead = lead_length(body, lead_chars)
        if len(_leads) >= 4:
            _leads.clear()
        _leads[lead_key] = lead
    return body, lead


def weighted_hits(matcher: "Matcher", title: str, text: str, settings: dict[str, float]
                  ) -> tuple[list[tuple[float, Hit, str]], str]:
    """Every hit with its position weight (title, lead or body) and the normalised part it
    is in, plus the scanned text (for length-dependent thresholds)."""
    out: list[tuple[float, Hit, str]] = []
    title_n, title_hits = matcher.scan(title or "")
    for hit in title_hits:
        out.append((settings["title_weight"], hit, title_n))
    body, lead_end = _body(text or "", settings.get("scan_chars", 3000),
                           int(settings["lead_chars"]))
    for hit in matcher._find(body):  # already normalised
        out.append((settings["lead_weight"] if hit.start < lead_end else 1.0, hit, body))
    return out, body


def layer_evidence(matcher: "Matcher", title: str, text: str, settings: dict[str, float],
                   counted: Callable[[tuple], bool] | None = None,
                   ) -> tuple[dict[Hashable, dict[str, float]], str]:
    """Evidence per label in each layer of ``matcher`` (a plain matcher: layer None) for hits
    whose keys end with (label, term, weight), and the scanned text. Each hit weighs by its
    position as in :func:`weighted_hits`; each term counts its ``max_repeats`` best-placed
    hits (diminishing returns on repetition). ``counted``: only the keys it accepts count
    (a label's strong terms alone: RuleTagger.strong_evidence_of).

    The same sums as adding up weighted_hits() term by term, made straight from the scan's
    candidates: the rules and domain taggers ask this of every item, and building a hundred
    Hit objects per item only to add them up was a tenth of `stiwatch classify`'s time."""
    body, lead_end = _body(text or "", settings.get("scan_chars", 3000),
                           int(settings["lead_chars"]))
    title_lists = matcher._candidates(normalize(title or ""))
    body_lists = matcher._candidates(body)
    title_weight, lead_weight = settings["title_weight"], settings["lead_weight"]
    keep = int(settings["max_repeats"])
    out: dict[Hashable, dict[str, float]] = {}
    for layer, in_title, in_body in zip(matcher.layers, title_lists, body_lists):
        # keyed by the whole key: a label lists a term once (parse_entries keeps a term listed
        # both as strong and ordinary as strong only), so the key stands for its (label,
        # term). Most terms are hit once: a multiplier stays a float until a second hit.
        multipliers: dict[tuple, Any] = {}
        seen = multipliers.get
        for found, lead in ((in_title, -1), (in_body, lead_end)):
            last_end = -1
            for start, end, _rank, keys in _ordered(found):
                if start < last_end:  # overlaps a longer (or earlier) hit: see _longest
                    continue
                last_end = end
                mult = title_weight if lead < 0 else lead_weight if start < lead else 1.0
                for key in keys:
                    known = seen(key)
                    if known is None:
                        multipliers[key] = mult
                    elif known.__class__ is list:
                        known.append(mult)
                    else:
                        multipliers[key] = [known, mult]
        evidence: dict[str, float] = {}
        terms = (multipliers.items() if counted is None
                 else [(key, mults) for key, mults in multipliers.items() if counted(key)])
        for key, mults in terms:
            if mults.__class__ is not list:
                total = mults if keep >= 1 else 0.0
            else:
                total = sum(sorted(mults, reverse=True)[:keep])
            label = key[-3]
            evidence[label] = evidence.get(label, 0.0) + key[-1] * total
        out[layer] = evidence
    return out, body


def length_threshold(settings: dict[str, float], body: str) -> float:
    """Evidence needed: `min_evidence`, plus one unit per `words_per_extra_evidence` words of
    the scanned text beyond the first 500, so a long article's passing mentions do not add up.
    A brief (a text of at most `brief_words` words, when a lexicon sets it) needs only
    `brief_min_evidence`: two or three sentences leave no room for a passing mention. A
    headline without a text is no brief: one word of it is too little context."""
    words = word_count(body)
    brief = settings.get("brief_words", 0)
    if brief and 0 < words <= brief:
        return settings["brief_min_evidence"]
    per = settings["words_per_extra_evidence"] or math.inf
    return settings["min_evidence"] + max(0, words - 500) / per


_LOWER_RUN = re.compile(r"[^\W\d_A-Z]+")  # runs of letters that are not A-Z capitals


_ASCII_LOWERCASE = string.ascii_lowercase.encode("ascii")
_ASCII_LETTERS = string.ascii_letters.encode("ascii")


def is_shouting(text: str) -> bool:
    """True for ALL-CAPS text (wire headlines), where case tells nothing about acronyms."""
    if text.isascii():
        # the same counts at C speed: in ASCII the lower-case runs are the a-z letters
        raw = text.encode("ascii")
        lower = len(raw) - len(raw.translate(None, _ASCII_LOWERCASE))
        if lower * 5 > len(text):
            return False
        letters = len(raw) - len(raw.translate(None, _ASCII_LETTERS))
        return letters >= 8 and lower / letters < 0.2
    if _CJK.search(text):
        # Chinese, Japanese and Korean have no case: their Latin words are the acronyms
        # ("JSTとNSF、AI研究で連携"), capitals anyway, and no headline of theirs shouts
        return False
    if text.isupper():
        return sum(ch.isalpha() for ch in text) >= 8
    lower = sum(len(run) for run in _LOWER_RUN.findall(text) if run.islower())
    if lower * 5 > len(text):  # ordinary text: bail out early
        return False
    letters = sum(ch.isalpha() for ch in text)
    return letters >= 8 and lower / letters < 0.2


def read_version(data: dict[str, Any], path: Path, required: bool) -> str | None:
    """A lexicon file's edition (its `version` key), None when an analyst's file has none."""
    if "version" not in data:
        if required:
            raise LexiconError(f"{path}: missing key 'version' (a number or string naming this lexicon's edition).")
        return None
    version = data["version"]
    if isinstance(version, bool) or not isinstance(version, (int, float, str)):
        raise LexiconError(f"{path}: key 'version' must be a number or a string.")
    return str(version)


def check_top_level(data: dict[str, Any], path: Path, shipped: Iterable[str]) -> None:
    """Refuse a top-level key of an analyst's file that the shipped lexicon does not have.

    Each loader reads only the tables it knows, so a misspelt table (``[domains.quantum]``
    for ``[domain.quantum]``) would otherwise be ignored without a word. The shipped file's
    own keys are the layout, so this list cannot drift from what the loaders read.
    """
    allowed = list(dict.fromkeys(shipped))
    for key in data:
        if key not in allowed:
            raise LexiconError(f"{path}: unknown top-level key {key!r} "
                               f"(expected one of: {', '.join(allowed)}).")
