"""Reports of one event: which of a week's stories are different write-ups of the same news.

Near-duplicates (one text syndicated) are folded when items are stored (``duplicate_of``). What
is left is what Europe Media Monitor groups into one story: a ministry's press release, the wire
report of it and a partner agency's reaction, each written in its own words. Two reports are
taken for one event when

- the TF-IDF cosine similarity of their title and lead text (scikit-learn, fitted on the week's
  reports: a word all of them use weighs little, a name only two share weighs much) is at
  least ``EVENT_SIMILARITY``;
- they were published at most ``EVENT_DAYS`` apart;
- they share a country or region tag (or one has none: no place known is no evidence);
- they come from different sources (one source's two releases in a week are two pieces of news,
  a call opened and its results, not two reports of one).

Words are what scikit-learn's tokenizer finds between spaces and punctuation. Chinese and
Japanese are written without spaces, so there a "word" would be a whole clause, which another
report never repeats; each run of Chinese characters and kana is therefore compared as its
character pairs (``db.cjk.index_text``, as the store's CJK search indexes it: 研究開発 -> 研究 究開
開発), the unit Lucene's CJK analyzer uses. Korean is written with spaces and stays in words.
Reports in two languages share few words or pairs (a name in Latin letters at most), so a
Japanese release and an English report of it stay two stories.

Such pairs are joined into connected groups, and each group is then split where its reports are
not alike on average (average linkage), so one close pair cannot pull two events into one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
import re
from typing import Sequence

from db.cjk import CJK_RUN, has_cjk, index_text

# Measured on the demo week (20 reports; the G7 ministers' meeting in 5, the Seoul meeting of AI
# safety institutes in 3): from 0.22 to 0.30 the result is the same, G7 in 4 (the OSIC
# speech at the meeting apart) and Seoul in 3, with no wrong pair; from 0.18 the speech joins
# too; below 0.18 a Japanese funding call for AI safety research joins the Seoul meeting.
# 0.25 is the middle of the range that holds, so a week worded a little differently moves no
# edge onto it; and it errs on the side of two stories where one would do (a missed grouping
# repeats a story, a wrong one hides an event under another's headline).
EVENT_SIMILARITY = 0.25
# Reactions and national releases follow a meeting by up to a working week (the demo's G7
# meeting: Monday's first release, Friday's ministry statement); the same body's next meeting
# is rarely within days.
EVENT_DAYS = 4
# The lead: the body's first characters, which say who did what where. On the demo week longer
# leads raised different news more than reports of one event (at 1,200 characters a funding
# call and a fund for AI safety research came to 0.39, over two of the G7 reports).
LEAD_CHARS = 500
# Each report is compared with its most alike reports only: memory grows with the week, not
# with its square (a week of 5,000 reports in one vocabulary would make 25 million pairs).
# An event reported by more sources stays one group through their neighbours' neighbours.
NEIGHBOURS = 30
# A connected group this large is a busy week's topic chained report by report, not an event:
# it is left ungrouped rather than split at a cost that grows with its square. Splitting 2,000
# reports takes under a second and 40 MB (a chained topic splits into its events, one event
# reported by 2,000 sources stays one); at 500, an event 600 sources reported was 600 stories,
# each with the same headline.
MAX_GROUP = 2000


@dataclass(frozen=True)
class Report:
    """What grouping reads of one report."""

    text: str  # title and lead text
    published: datetime
    places: frozenset[str]  # country and region ids
    source: str


def event_groups(reports: Sequence[Report]) -> list[list[int]]:
    """Positions in ``reports`` grouped by event, each group in the order of ``reports``; a
    report like no other is a group of one. Groups are ordered by their first position."""
    count = len(reports)
    singles = [[n] for n in range(count)]
    if count < 2:
        return singles
    # Imported here: every command imports the digest (through `demo`), and scikit-learn
    # costs 1.5 s and 90 MB that `status` or a `classify` with nothing new never needs.
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from sklearn import config_context
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.neighbors import kneighbors_graph

    try:
        vectors = TfidfVectorizer(stop_words="english", sublinear_tf=True).fit_transform(
            [_pairs(report.text) for report in reports])
    except ValueError:  # no word in any text (empty, or stop words only): nothing to compare
        return singles
    with config_context(working_memory=64):  # MB of distances at a time
        near = kneighbors_graph(vectors, n_neighbors=min(NEIGHBOURS, count - 1),
                                mode="distance", metric="cosine", include_self=False).tocoo()
    window = timedelta(days=EVENT_DAYS)
    pairs = [(a, b) for a, b, distance in zip(near.row, near.col, near.data)
             if a != b and distance <= 1 - EVENT_SIMILARITY
             and _may_be_one(reports[a], reports[b], window)]
    if not pairs:
        return singles
    rows, cols = zip(*pairs)
    graph = coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    candidates: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        candidates.setdefault(int(label), []).append(position)
    groups: list[list[int]] = []
    for members in candidates.values():
        if len(members) <= 2:
            groups.append(members)
        elif len(members) > MAX_GROUP:
            groups += [[member] for member in members]
        else:
            groups += _split(members, vectors)
    return sorted(groups, key=lambda group: group[0])


# Hangul syllables and jamo: a run holding them is Korean (Korean words, between spaces).
_HANGUL = re.compile("[\u3131-\u318e\uac00-\ud7af\uffa0-\uffdc]")


def _pairs(text: str) -> str:
    """``text`` with each run of Chinese characters and kana written as its character pairs.

    Korean is left as it is: it is written in words, and on the 45 Korean news texts of
    tests/fixtures/classifier/news_dev_cjk*.jsonl pairs brought a Korean-US and a
    Korean-German cooperation story to 0.26, over the threshold (words: at most 0.13 between
    different news, at least 0.31 between reports of one event). The run's last character,
    which ``index_text`` adds, is one letter: the tokenizer keeps words of two characters or
    more, so it is dropped, as single Latin letters are.
    """
    if not has_cjk(text):
        return text  # English text is compared exactly as before
    if not _HANGUL.search(text):
        return index_text(text)  # one numpy pass over the text, not one per run
    return CJK_RUN.sub(
        lambda run: run.group() if _HANGUL.search(run.group()) else index_text(run.group()), text)


def _may_be_one(a: Report, b: Report, window: timedelta) -> bool:
    return (a.source != b.source
            and abs(a.published - b.published) <= window
            and (not a.places or not b.places or bool(a.places & b.places)))


def _split(members: list[int], vectors: object) -> list[list[int]]:
    """``members`` (a connected group) cut where its reports are not alike on average: the
    Seoul meeting's report is like a funding call for AI safety research, that call like a
    fund for it, and so on through a busy week."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics.pairwise import cosine_similarity

    distances = (1 - cosine_similarity(vectors[members])).clip(0, 1)
    labels = AgglomerativeClustering(n_clusters=None, metric="precomputed", linkage="average",
                                     distance_threshold=1 - EVENT_SIMILARITY).fit(distances).labels_
    parts: dict[int, list[int]] = {}
    for member, label in zip(members, labels):
        parts.setdefault(int(label), []).append(member)
    return list(parts.values())
