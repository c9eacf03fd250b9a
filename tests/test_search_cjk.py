"""Searching Chinese, Japanese and Korean text: words inside runs of CJK characters.

unicode61 splits words at spaces only, so these items are indexed a second time as character
pairs (db/cjk.py, items_fts_cjk); `stiwatch search` and the `search_cjk` canned query use it.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time

import pytest

import analysts_store
import db
from db.canned import CANNED_QUERIES
from db.cjk import CJK_RANGES, CJK_RUN, has_cjk, index_text, query_phrase
from db.schema import MIGRATIONS, migrate

# (key, source, days ago, title, summary, body, countries)
CJK_ITEMS = [
    ("ja-quantum", "mext-news", 2, "量子技術イノベーション戦略を改定",
     "内閣府は量子技術の研究開発を推進する新たな戦略を決定した。",
     "政府は量子コンピュータの研究開発に十年間で投資する。NEDOは生成AIの活用も支援する。", ["JP"]),
    ("ja-security", "mext-news", 30, "研究セキュリティの確保に関する指針",
     "文部科学省は大学における研究インテグリティの取組を求める。",
     "経済安全保障の観点から、外国との共同研究について情報開示を求める。", ["JP"]),
    ("ja-separated", "mext-news", 5, "科学技術・学術審議会の議事録",
     "研究・開発の区分について議論した。",
     "委員は基礎研究と応用の違いを説明した。", ["JP"]),
    ("zh-strategy", "nsf-news", 4, "科学技术部发布人工智能发展战略",
     "国家自然科学基金委员会支持量子信息研究。",
     "中国将加强基础研究和科研诚信建设。", ["CN"]),
    ("ko-budget", "ec-rtd", 6, "과학기술정보통신부, 내년 연구개발 예산 확정",
     "정부는 양자 기술 연구를 지원한다.",
     "국가 연구개발 사업의 예산이 늘어났다.", ["KR"]),
]


@pytest.fixture
def ids(db_path):
    ids = analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        rows = [{"url": f"https://{source}.example/{key}", "source_id": source, "title": title,
                 "summary": summary, "body": body, "published_at": analysts_store.ago(days),
                 "date_source": "feed", "language": key[:2]}
                for key, source, days, title, summary, body, _ in CJK_ITEMS]
        for item, (item_id, _) in zip(CJK_ITEMS, store.save_items(rows)):
            ids[item[0]] = item_id
        store.save_classifications(
            [(ids[key], [{"facet": "country", "value": c, "score": 0.9, "method": "model"}
                         for c in countries]) for key, *_, countries in CJK_ITEMS], "test-1")
    return ids


def found(db_path, ids, query, **filters):
    with db.open_store(db_path, readonly=True) as store:
        rows = store.search(query, limit=50, **filters)
    keys = {item_id: key for key, item_id in ids.items()}
    return [keys[row["id"]] for row in rows]


@pytest.mark.parametrize("query, expected", [
    ("研究", {"ja-quantum", "ja-security", "ja-separated", "zh-strategy"}),
    ("量子", {"ja-quantum", "zh-strategy"}),
    ("戦略", {"ja-quantum"}),
    ("战略", {"zh-strategy"}),  # simplified Chinese is another character: not folded
    ("研究開発", {"ja-quantum"}),
    ("量子技術イノベーション戦略を改定", {"ja-quantum"}),  # a whole run still matches
    ("研究 開発", {"ja-quantum", "ja-separated"}),  # two words: both, anywhere
    ('"研究 開発"', {"ja-quantum"}),  # a phrase: CJK text has no spaces, so 研究開発
    ("究開", {"ja-quantum"}),  # not across 研究・開発, whose runs are apart
    ("セキュリティ", {"ja-security"}),
    ("연구", {"ko-budget"}),  # Korean: 연구를 and 연구개발 hold the word
    ("연구개발", {"ko-budget"}),
    ("研", {"ja-quantum", "ja-security", "ja-separated", "zh-strategy"}),  # one character
    ("審", {"ja-separated"}),
    ("生成AI", {"ja-quantum"}),
    ("AI", {"ja-quantum", "eu-ai"}),  # written against kana: 生成AIの
    ("NEDO", {"ja-quantum"}),  # NEDOは
    ("title:研究", {"ja-security"}),
    ("量子 OR 戦略", {"ja-quantum", "zh-strategy"}),
    ("研究 -量子", {"ja-security", "ja-separated"}),
    ("研究 NOT 量子", {"ja-security", "ja-separated"}),
    ("quantum OR 量子", {"ja-quantum", "zh-strategy", "jp-quantum", "jp-semis",
                         "us-discovery"}),
    ("quantum NOT 量子", {"jp-quantum", "jp-semis", "us-discovery"}),
    ("量子。", {"ja-quantum", "zh-strategy"}),  # CJK punctuation separates, as any other
    ("「量子」", {"ja-quantum", "zh-strategy"}),
    ("研究、開発", {"ja-separated"}),  # a phrase, as research,security: 研究・開発
    ("フュージョン", set()),
])
def test_cjk_words_are_found_inside_runs_of_characters(db_path, ids, query, expected):
    assert set(found(db_path, ids, query)) == expected



def test_a_word_ending_in_one_cjk_character_after_latin_letters_is_a_prefix(db_path, ids):
    # NEDOは is the phrase NEDO は*: the body's NEDOは生成AI is indexed as NEDO は生 生成 ...
    assert query_phrase("NEDOは") == ("NEDO は", True)
    assert found(db_path, ids, "NEDOは") == ["ja-quantum"]

def test_english_search_is_unchanged_beside_cjk_items(db_path, ids):
    assert set(found(db_path, ids, "quantum")) == {"jp-quantum", "jp-semis", "us-discovery"}
    assert found(db_path, ids, '"research security" AND china') == ["us-security"]


def test_cjk_search_combines_with_the_filters(db_path, ids):
    assert set(found(db_path, ids, "研究", countries=["JP"])) == {
        "ja-quantum", "ja-security", "ja-separated"}
    assert found(db_path, ids, "研究", countries=["CN"]) == ["zh-strategy"]
    assert set(found(db_path, ids, "研究", since=analysts_store.ago(10)[:10])) == {
        "ja-quantum", "ja-separated", "zh-strategy"}
    assert found(db_path, ids, "研究", until=analysts_store.ago(20)[:10]) == ["ja-security"]
    assert found(db_path, ids, "研究", sources=["nsf-news"]) == ["zh-strategy"]
    assert set(found(db_path, ids, "quantum OR 量子", countries=["CN", "US"])) == {
        "zh-strategy", "us-discovery"}


def test_a_story_ranks_by_its_best_match_also_when_that_is_a_japanese_copy(db_path):
    """Latin items are ranked in items_fts, CJK ones in items_fts_cjk: a story whose best
    match is its Japanese copy (the word in its title) ranks by that copy, shown as its
    original, above a story that matches less well; not by its original's passing mention."""
    with db.open_store(db_path) as store:
        store.sync_sources(analysts_store.SOURCES[:2])
        saved = store.save_items([
            {"url": "https://mext.example/budget", "source_id": "mext-news",
             "title": "Budget news", "language": "en",
             "body": "The ministry published its budget. " * 5 + "A line on quantum."},
            {"url": "https://nsf.example/budget-ja", "source_id": "nsf-news",
             "title": "Quantum 量子 strategy", "language": "ja",
             "body": "文部科学省 quantum quantum strategy"},
            {"url": "https://mext.example/centre", "source_id": "mext-news",
             "title": "Quantum computing centre opens", "language": "en",
             "body": "A quantum computing centre opens with quantum funding."},
            # other items, so that bm25 weighs "quantum" as the rare word it is
            *({"url": f"https://mext.example/other-{n}", "source_id": "mext-news",
               "title": f"Other news {n}", "body": "Nothing about that here."}
              for n in range(20)),
            *({"url": f"https://nsf.example/ja-{n}", "source_id": "nsf-news",
               "title": f"記事 {n}", "body": "文部科学省の発表。"} for n in range(20)),
        ])
        original, copy, centre = (item_id for item_id, _ in saved[:3])
        with store.write():
            store.conn.execute("UPDATE items SET duplicate_of = ? WHERE id = ?", [original, copy])
        rows = store.search("quantum")
    assert [(row["id"], row["copies"]) for row in rows] == [(original, 1), (centre, 0)]


def test_cjk_ranking_puts_title_matches_first_and_highlights_the_word(stiwatch, ids):
    result = stiwatch("search", "研究", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows[0]["id"] == ids["ja-security"]  # 研究 in its title
    assert rows[0]["score"] >= rows[1]["score"] >= rows[-1]["score"]
    assert all("**研究**" in row["snippet"] for row in rows)
    assert all("研究 究" not in row["snippet"] for row in rows)  # the text, not the pairs
    assert rows[0]["countries"] == ["JP"] and rows[0]["source_id"] == "mext-news"
    table = stiwatch("search", "戦略")
    assert table.exit_code == 0 and "量子技術イノベーション戦略を改定" in table.output
    assert "No items match" not in table.output


def test_changed_and_deleted_items_leave_and_reenter_the_cjk_index(db_path, ids):
    with db.open_store(db_path) as store:
        store.save_items([{"url": "https://mext-news.example/ja-security",
                           "source_id": "mext-news", "title": "原子力の安全指針",
                           "summary": "改定", "body": "規制委員会が決定した。"}])
    assert set(found(db_path, ids, "研究")) == {"ja-quantum", "ja-separated", "zh-strategy"}
    assert found(db_path, ids, "原子力") == ["ja-security"]
    # Another tool (sqlite3, an analyst's UPDATE) changes the text: the triggers queue the
    # item, and the next writable open indexes it.
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE items SET title = '核融合の研究' WHERE id = ?", [ids["ja-security"]])
        conn.execute("DELETE FROM items WHERE id = ?", [ids["ja-separated"]])
        conn.execute("UPDATE items SET title = 'Fusion', summary = NULL, body = NULL "
                     "WHERE id = ?", [ids["ko-budget"]])
    conn.close()
    assert found(db_path, ids, "原子力") == []  # out of the index at once, by the trigger
    with db.open_store(db_path) as store:
        assert store.scalar("SELECT count(*) FROM items_cjk_pending") == 0
        assert store.scalar("SELECT count(*) FROM items_fts_cjk WHERE rowid IN (?, ?)",
                            [ids["ja-separated"], ids["ko-budget"]]) == 0
    assert set(found(db_path, ids, "核融合")) == {"ja-security"}
    assert found(db_path, ids, "연구") == []


def test_an_older_store_indexes_its_cjk_items_when_opened(db_path):
    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn, target=9)
    conn.execute("INSERT INTO sources (id, name, kind, url, added_at, updated_at) VALUES"
                 " ('src', 'S', 'feed', 'https://e.org/f', '2026-01-01Z', '2026-01-01Z')")
    conn.executemany("INSERT INTO items (url, source_id, title, body, fetched_at) VALUES"
                     " (?, 'src', ?, ?, '2026-01-01Z')",
                     [("https://e.org/a", "量子技術の研究", "本文"),
                      ("https://e.org/b", "Quantum research", "English only")])
    conn.close()
    with db.open_store(db_path) as store:
        assert store.migrated == [m.version for m in MIGRATIONS[9:]]
        assert [r["id"] for r in store.search("研究")] == [1]
        assert [r["id"] for r in store.search("research")] == [2]
        assert store.scalar("SELECT count(*) FROM items_fts_cjk") == 1


def test_items_written_by_other_tools_are_indexed_at_the_next_open(db_path, ids):
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("INSERT INTO items (url, source_id, title, fetched_at) VALUES "
                     "('https://e.org/x', 'mext-news', '核融合の研究', '2026-01-01Z'), "
                     "('https://e.org/y', 'mext-news', 'Fusion research', '2026-01-01Z')")
    conn.close()
    assert found(db_path, ids, "核融合") == []  # not before a writable open
    with db.open_store(db_path) as store:
        assert store.scalar("SELECT count(*) FROM items_cjk_pending") == 0
        assert [r["title"] for r in store.search("核融合")] == ["核融合の研究"]
        assert "Fusion research" in [r["title"] for r in store.search("fusion")]


def test_has_cjk():
    assert all(a >= 0x3005 for a, _ in CJK_RANGES)  # has_cjk's max() shortcut needs it
    assert has_cjk("量子") and has_cjk("연구") and has_cjk("カタカナ") and has_cjk("𠮷野家")
    assert not has_cjk("The ministry’s plan — “quantum” café ﬁnance 😀")
    assert not has_cjk("「」、。・") and not has_cjk(None) and not has_cjk("")



def test_has_cjk_at_the_first_cjk_letter():
    # 々 (U+3005) is the lowest CJK letter: text whose highest character it is still has CJK
    assert has_cjk("々") and has_cjk("Noma 々")


def test_every_cjk_range_is_indexed_up_to_its_first_and_last_character():
    """The numpy lookup index_text uses and the regular expression that finds CJK words in a
    query (CJK_RUN) agree at both ends of every range: a word made of a range's first or last
    character is written as pairs, the characters just outside are left as they are."""
    inside = [chr(code) for first, last in CJK_RANGES for code in (first, last)]
    outside = [chr(code) for first, last in CJK_RANGES for code in (first - 1, last + 1)
               if not any(a <= code <= b for a, b in CJK_RANGES)]
    for char in inside:
        assert CJK_RUN.fullmatch(char * 2), hex(ord(char))
        assert index_text(char * 2).split() == [char * 2, char], hex(ord(char))
    for char in outside:
        assert not CJK_RUN.search(char), hex(ord(char))
        assert index_text("x" + char * 2) == "x" + char * 2, hex(ord(char))

@pytest.mark.parametrize("text, indexed", [
    ("研究開発", "研究 究開 開発 発"),
    ("研", "研"),
    ("生成AIの研究", "生成 成 AI の研 研究 究"),
    ("研究・開発", "研究 究 ・ 開発 発"),
    ("NEDOは", "NEDO は"),
    ("연구를 지원", "연구 구를 를   지원 원"),
    ("English only", "English only"),
    ("𠮷野家の牛丼", "𠮷野 野家 家の の牛 牛丼 丼"),
    ("café — “量子”", "café — “ 量子 子 ”"),
])
def test_index_text(text, indexed):
    assert " ".join(index_text(text).split()) == " ".join(indexed.split())


def test_index_text_agrees_with_a_plain_python_reading():
    def reference(text):
        def pairs(match):
            run = match.group()
            if len(run) == 1:
                return f" {run} "
            return " " + " ".join(run[k:k + 2] for k in range(len(run) - 1)) + f" {run[-1]} "
        return CJK_RUN.sub(pairs, text)

    pool = list("研究開発量子技術のをにはカタカナー々〆연구를지원𠮷AIb7 、。・「」-.,é’")
    rng = random.Random(1)
    for _ in range(500):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(1, 40)))
        assert index_text(text).split() == reference(text).split(), text


@pytest.mark.parametrize("text, phrase", [
    ("研究", ("研究", False)),
    ("研究開発", ("研究 究開 開発", False)),
    ("研", ("研", True)),
    ("生成AI", ("生成 成 AI", False)),
    ("AIの研究", ("AI の研 研究", False)),
    ("研究 開発", ("研究 究開 開発", False)),
])
def test_query_phrase(text, phrase):
    assert query_phrase(text) == phrase


@pytest.mark.parametrize("q, country, expected", [
    ("研究", "", {"ja-quantum", "ja-security", "ja-separated", "zh-strategy"}),
    ("研究開発", "", {"ja-quantum"}),
    ("研究", "cn", {"zh-strategy"}),
    ("연구", "", {"ko-budget"}),
    ("研", "", {"ja-quantum", "ja-security", "ja-separated", "zh-strategy"}),
    ("", "", set()),
])
def test_the_canned_query_for_datasette(db_path, ids, q, country, expected):
    sql = CANNED_QUERIES["search_cjk"]["sql"]
    with db.open_store(db_path, readonly=True) as store:
        rows = store.query(sql, {"q": q, "country": country, "since": ""})
    keys = {item_id: key for key, item_id in ids.items()}
    assert {keys[row["id"]] for row in rows} == expected
    assert all(q in row["title"] + row["context"] for row in rows)


# A Japanese story under three URLs (the original and two near-duplicates with words of their
# own) and another item: (key, published_at, duplicate of, title, body).
CJK_STORY = [
    ("original", "2026-11-10T03:00:00Z", None, "量子予算が増加", "文部科学省は量子の予算を増やした。"),
    ("copy-a", "2026-11-12T03:00:00Z", "original", "量子予算が大幅に増加",
     "文部科学省は量子の予算を増やした。専門家は追い風と呼ぶ。"),
    ("copy-b", "2026-11-09T03:00:00Z", "original", "国会：量子予算が増加",
     "文部科学省は量子の予算を増やした。"),
    ("fusion", "2026-11-11T03:00:00Z", None, "核融合研究の予算", "核融合研究に独自の予算。"),
]


def canned_cjk(db_path, q: str, country: str = "", since: str = "") -> list[dict]:
    with db.open_store(db_path, readonly=True) as store:
        return store.query(CANNED_QUERIES["search_cjk"]["sql"],
                           {"q": q, "country": country, "since": since})


@pytest.fixture
def story_ids(db_path) -> dict[str, int]:
    with db.open_store(db_path) as store:
        store.sync_sources(analysts_store.SOURCES)
        ids: dict[str, int] = {}
        for key, published, original, title, body in CJK_STORY:
            [(ids[key], _)] = store.save_items([{
                "url": f"https://mext.example/{key}", "source_id": "mext-news", "title": title,
                "body": body, "published_at": published, "date_source": "feed",
                "language": "ja", "duplicate_of": ids[original] if original else None}])
    return ids


def test_the_canned_query_shows_each_story_once_as_stiwatch_search_does(db_path, story_ids):
    keys = {item_id: key for key, item_id in story_ids.items()}

    def shown(q: str, **filters: str) -> list[tuple[str, str | None, int]]:
        rows = canned_cjk(db_path, q, **filters)
        with db.open_store(db_path, readonly=True) as store:
            cli = store.search(q, **{k: [v] if k == "countries" else v
                                     for k, v in filters.items() if v}, limit=100)
        assert [row["id"] for row in rows] == [row["id"] for row in cli], q
        return [(keys[row["id"]], row["duplicate_of"] and keys[row["duplicate_of"]],
                 row["copies"]) for row in rows]

    # The original matches: the story once, as its original.
    assert sorted(shown("量子")) == [("original", None, 2)]
    assert sorted(shown("予算")) == [("fusion", None, 0), ("original", None, 2)]
    # A word only a copy has: the story is found, shown as that copy.
    assert shown("追い風") == [("copy-a", "original", 2)]
    assert shown("国会") == [("copy-b", "original", 2)]
    # A filter the original fails but a copy meets: the copy stands for the story.
    assert shown("量子", since="2026-11-11") == [("copy-a", "original", 2)]


def test_the_canned_query_reads_since_as_a_local_day(db_path, story_ids):
    """`since` is a day in the local time of the process running the query (`stiwatch serve`
    sets it to the `timezone` setting), as `stiwatch search --since` reads it."""
    # 2026-11-10T03:00:00Z is 12:00 on 10 Nov in Tokyo, 22:00 on 9 Nov in New York.
    before = os.environ.get("TZ")
    try:
        for zone, since, found_original in (("UTC", "2026-11-10", True),
                                            ("Asia/Tokyo", "2026-11-10", True),
                                            ("Asia/Tokyo", "2026-11-11", False),
                                            ("America/New_York", "2026-11-10", False),
                                            ("America/New_York", "2026-11-09", True)):
            os.environ["TZ"] = zone
            time.tzset()
            rows = canned_cjk(db_path, "量子", since=since)
            assert (rows[0]["id"] == story_ids["original"]) is found_original, (zone, since)
    finally:
        os.environ.pop("TZ", None) if before is None else os.environ.update(TZ=before)
        time.tzset()
    assert canned_cjk(db_path, "量子", since="not a date") == []


@pytest.mark.parametrize("q", ['"', '量"子', '"量子"', "'", "*", "量子*", "NOT", "(", "^量"])
def test_the_canned_query_takes_any_text_without_an_fts5_error(db_path, story_ids, q):
    canned_cjk(db_path, q)  # Datasette would show "unterminated string" and no rows


def test_a_queue_another_process_indexes_meanwhile_is_no_error(db_path, ids):
    """Two processes index the queue another tool filled (or the upgrade that queues every
    item): the one that waited for the lock finds it empty."""
    import threading

    with db.open_store(db_path) as store:
        conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        conn.execute("INSERT INTO items (url, source_id, title, fetched_at) VALUES "
                     "('https://e.org/x', 'mext-news', '核融合の研究', '2026-01-01T00:00:00Z')")
        # The other process takes the lock and indexes the queue, committing a moment later.
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM items_cjk_pending")
        timer = threading.Timer(0.5, conn.execute, ["COMMIT"])
        timer.start()
        try:
            store.index_cjk()  # sees the queue, waits for the lock, finds it empty
        finally:
            timer.join()
            conn.close()
        assert store.scalar("SELECT count(*) FROM items_cjk_pending") == 0


def test_a_table_of_cjk_titles_keeps_its_columns_aligned_on_a_terminal(stiwatch, ids):
    """A terminal shows each Chinese, Japanese or Korean character two columns wide: widths
    counted in characters put the next column (COPIES) half a title to the right of its
    header, and a title cut at 90 characters took 180 columns."""
    import unicodedata

    from stiwatch.output import table

    def columns(text: str) -> int:
        return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)

    result = stiwatch("search", "研究 OR quantum", "--limit", "50")
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[0]
    assert "量子技術イノベーション戦略を改定" in result.output
    rows = [{"title": "量子技術イノベーション戦略を改定", "copies": "+1"},
            {"title": "Japan launches national quantum strategy", "copies": "+2"},
            {"title": "과학기술정보통신부, 내년 연구개발 예산 확정", "copies": "+3"}]
    lines = table(rows, ["title", "copies"]).splitlines()
    starts = {columns(line[:line.index(cell)])
              for line, cell in zip(lines, ["COPIES", "+1", "+2", "+3"])}
    assert len(starts) == 1, lines  # every COPIES cell under its header
    assert columns(header[:header.index("COPIES")]) >= 2 + columns(
        "量子技術イノベーション戦略を改定")
    long = table([{"title": "量" * 100}], ["title"], max_width=90).splitlines()[1]
    assert columns(long) <= 90


def test_sort_newest_merges_cjk_and_other_items_by_date(stiwatch, ids):
    result = stiwatch("search", "研究", "--sort", "newest", "--format", "json")
    rows = json.loads(result.output)
    assert [r["id"] for r in rows] == [ids[k] for k in (
        "ja-quantum", "zh-strategy", "ja-separated", "ja-security")]
    assert "**研究**" in rows[0]["snippet"]  # its own text, not the index's character pairs
    rows = json.loads(stiwatch("search", "quantum OR 量子", "--sort", "newest", "--country",
                               "CN", "--country", "US", "--json").output)
    assert [r["id"] for r in rows] == [ids["zh-strategy"], ids["us-discovery"]]
    assert all(r["score"] is not None for r in rows)
