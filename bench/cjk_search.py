"""Searching Chinese/Japanese text: character pairs (what stiwatch does) against the options.

unicode61 does not split CJK text into words, so `研究` matches nothing inside `量子技術の研究`.
Four ways to find it, measured on the same synthetic Japanese store:

- pairs (shipped): items_fts_cjk, each CJK run indexed as its overlapping character pairs
  (db/cjk.py), queried through ``Store.search`` (ranking, snippets, tags: the whole command).
- unigrams: every CJK character a token, a word the phrase of its characters (contentless).
- trigram: FTS5's trigram tokenizer (SQLite >= 3.34) over items' text (external content);
  MATCH needs 3+ characters, so 1-2 character words fall back to LIKE (a scan in 3.40).
- scan: instr() over every CJK item's title, summary and body (finding matches, no ranking).

Prints ingest rates through ``Store.save_items`` (with the pairs, without them, with a trigram
index instead), index sizes, and p50/p95 latency per kind of word (1, 2 and 3-4 characters).

    python bench/cjk_search.py             # 100,000 items (built once into bench/.cache/)
    python bench/cjk_search.py --quick     # 5,000 items
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import random
import statistics
import tempfile
import time

import numpy as np

import _stores
from _stores import CACHE, cached, percentile
import db
from db.cjk import CJK_RUN
SOURCES = [f"jp-{n:02d}" for n in range(20)]

# Real STI-policy words first (the head of the Zipf distribution), Japanese then Chinese.
REAL_WORDS = """
研究 開発 技術 科学 政策 戦略 量子 人工知能 大学 研究者 支援 推進 予算 国際 連携 文部科学省
内閣府 経済産業省 半導体 安全保障 イノベーション 基礎研究 研究開発 産学連携 博士 人材 育成 若手
資金 競争的資金 助成 公募 採択 評価 成果 論文 特許 標準化 デジタル データ 基盤 計算機 スーパー
コンピュータ 宇宙 海洋 原子力 核融合 エネルギー 脱炭素 気候変動 生命科学 医療 創薬 ゲノム 再生
医療 感染症 ワクチン 材料 ナノテク 光 量子コンピュータ 量子暗号 通信 情報 セキュリティ 研究
インテグリティ 経済安全保障 輸出管理 留学生 共同研究 国際共同研究 拠点 センター 機構 法人 理事長
会議 審議会 総合科学技術 基本計画 第6期 目標 指標 報告書 白書 調査 分析 動向 日本 米国 中国
欧州 韓国 英国 ドイツ 協力 協定 署名 発表 決定 改定 公表 開始 強化 拡充 創設 新た 重点 分野
科技 创新 战略 国家 自然科学基金 委员会 科研 诚信 人才 高校 实验室 重大 专项 发展 规划 产业
""".split()
PARTICLES = ["の", "を", "に", "は", "が", "と", "で", "も", "へ", "から", "など", "として"]
LATIN = ["AI", "NEDO", "JST", "DX", "IoT", "5G", "GX", "OECD", "G7"]


class JapaneseMaker:
    """Sentences of Zipf-drawn words joined by particles, with 、 and 。 as Japanese has."""

    def __init__(self, seed: int = 1, vocabulary: int = 40_000) -> None:
        rng = random.Random(seed)
        chars = sorted({c for w in REAL_WORDS for c in w if CJK_RUN.fullmatch(c)})
        pool = chars + [chr(c) for c in rng.sample(range(0x4E00, 0x9FA6), 2500)]
        weights = 1.0 / np.arange(1, len(pool) + 1) ** 0.9
        char_cdf = np.cumsum(weights / weights.sum())
        words, seen = list(REAL_WORDS), set(REAL_WORDS)
        nprng = np.random.default_rng(seed)
        katakana = [chr(c) for c in range(0x30A1, 0x30F7)]
        while len(words) < vocabulary:
            if rng.random() < 0.15:
                word = "".join(rng.choice(katakana) for _ in range(rng.randint(3, 6))) + "ー"
            else:
                n = rng.choice((2, 2, 2, 3, 4))
                word = "".join(pool[i] for i in np.searchsorted(char_cdf, nprng.random(n)))
            if word not in seen:
                seen.add(word)
                words.append(word)
        self.words = np.array(words)
        ranks = np.arange(1, len(words) + 1, dtype=float)
        self.cdf = np.cumsum((w := 1.0 / ranks ** 1.07) / w.sum())
        self.rng = nprng
        self.py = random.Random(seed + 1)

    def text(self, n_words: int) -> str:
        words = self.words[np.searchsorted(self.cdf, self.rng.random(n_words))]
        out = []
        for k, word in enumerate(words):
            out.append(word)
            if self.py.random() < 0.03:
                out.append(self.py.choice(LATIN))
            roll = self.py.random()
            if roll < 0.08:
                out.append("。" if k % 3 else "、")
            elif roll < 0.75:
                out.append(self.py.choice(PARTICLES))
        return "".join(out) + "。"

    def items(self, start: int, count: int) -> list[dict]:
        """Titles ~25 characters, summaries ~90, bodies ~1,300 (Japanese news sizes)."""
        rows = []
        for n in range(start, start + count):
            body_words = int(self.rng.lognormal(6.0, 0.4))
            rows.append({
                "url": f"https://example.jp/{SOURCES[n % len(SOURCES)]}/{n}",
                "source_id": SOURCES[n % len(SOURCES)],
                "title": self.text(int(self.rng.integers(6, 12)))[:-1],
                "summary": self.text(int(self.rng.integers(20, 35))),
                "body": self.text(body_words),
                "language": "ja",
                "published_at": f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}T09:00:00Z",
                "date_source": "feed",
                "status": "complete",
            })
        return rows


def make_store(path: Path) -> db.Store:
    return _stores.make_store(path, SOURCES, "https://example.jp")


TRIGRAM = """
CREATE VIRTUAL TABLE cmp_trigram USING fts5(title, summary, body, content='items',
    content_rowid='id', tokenize='trigram');
CREATE TRIGGER cmp_trigram_ai AFTER INSERT ON items BEGIN
    INSERT INTO cmp_trigram (rowid, title, summary, body)
    VALUES (new.id, new.title, new.summary, new.body);
END;
"""
NO_PAIRS = ["DROP TRIGGER items_cjk_ai", "DROP TRIGGER items_cjk_au", "DROP TRIGGER items_cjk_ad"]


def bench_ingest(n: int, batch: int = 500) -> dict:
    """items/s through Store.save_items for Japanese items, three ways, alternating."""
    maker = JapaneseMaker(seed=11)
    batches = [maker.items(start, min(batch, n - start)) for start in range(0, n, batch)]
    rates: dict[str, list[float]] = {"without pairs (before)": [], "with pairs (shipped)": [],
                                     "trigram instead of pairs": []}
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        for round_ in range(2):
            for name in rates:
                store = make_store(Path(tmp) / f"{round_}-{len(name)}.db")
                if name != "with pairs (shipped)":
                    for statement in NO_PAIRS:
                        store.conn.execute(statement)
                if name.startswith("trigram"):
                    store.conn.executescript(TRIGRAM)
                started = time.perf_counter()
                for rows in batches:
                    store.save_items(rows)
                rates[name].append(n / (time.perf_counter() - started))
                store.close()
    return {name: max(values) for name, values in rates.items()}


def build_store(n: int, log) -> Path:
    """A store of ``n`` Japanese items with every index compared, cached in bench/.cache/."""
    return cached(f"cjk-{n}.db", lambda temp: fill_store(temp, n, log))


def fill_store(temp: Path, n: int, log) -> None:
    store = make_store(temp)
    maker = JapaneseMaker(seed=5)
    started = time.perf_counter()
    for start in range(0, n, 1000):
        store.save_items(maker.items(start, min(1000, n - start)))
        if start and start % 20_000 == 0:
            log(f"  built {start:,}/{n:,} ({start / (time.perf_counter() - started):,.0f}/s)")
    with store.write():
        store.conn.execute("UPDATE items SET duplicate_of = id - 1 WHERE id % 50 = 0")
        store.conn.executemany(
            "INSERT INTO tags (item_id, facet, value, score, method, tagged_at) "
            "VALUES (?, 'country', ?, 1.0, 'gazetteer', 'x')",
            [(i, "JP" if i % 4 else "CN") for i in range(1, n + 1)])
    log("  trigram index...")
    store.conn.executescript("""
        CREATE VIRTUAL TABLE cmp_trigram USING fts5(title, summary, body, content='items',
            content_rowid='id', tokenize='trigram');
        INSERT INTO cmp_trigram (cmp_trigram) VALUES ('rebuild');
        CREATE VIRTUAL TABLE cmp_unigram USING fts5(title, summary, body, content='');
        CREATE VIRTUAL TABLE cmp_pairs_contentless USING fts5(title, summary, body, content='',
            tokenize = 'porter unicode61 remove_diacritics 2');
        INSERT INTO cmp_pairs_contentless (rowid, title, summary, body)
            SELECT rowid, title, summary, body FROM items_fts_cjk;
    """)
    log("  unigram index...")
    def spaced(text: str | None) -> str:
        return CJK_RUN.sub(lambda m: " " + " ".join(m.group()) + " ", text or "")

    last = 0
    while True:
        rows = store.conn.execute("SELECT id, title, summary, body FROM items WHERE id > ? "
                                  "ORDER BY id LIMIT 2000", [last]).fetchall()
        if not rows:
            break
        with store.write():
            store.conn.executemany(
                "INSERT INTO cmp_unigram (rowid, title, summary, body) VALUES (?, ?, ?, ?)",
                [(i, spaced(t), spaced(s), spaced(b)) for i, t, s, b in rows])
        last = rows[-1][0]
    store.conn.execute("ANALYZE")
    store.close()


def sizes(conn) -> dict[str, float]:
    """Bytes per item of each index (its FTS5 shadow tables), and of the items' text."""
    n = conn.execute("SELECT count(*) FROM items").fetchone()[0]
    out = {}
    for label, pattern, but_not in (
            ("pairs (items_fts_cjk, as shipped)", "items\\_fts\\_cjk%", ""),
            ("pairs, contentless", "cmp\\_pairs\\_contentless%", ""),
            ("unigrams, contentless", "cmp\\_unigram%", ""),
            ("trigram, external content", "cmp\\_trigram%", ""),
            ("items_fts (unicode61)", "items\\_fts\\_%", "items\\_fts\\_cjk%")):
        out[label] = conn.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name LIKE ?1 ESCAPE '\\' "
            "AND name NOT LIKE ?2 ESCAPE '\\'", [pattern, but_not]).fetchone()[0] / n
    out["text of the items"] = conn.execute(
        "SELECT sum(length(CAST(title AS BLOB)) + length(CAST(summary AS BLOB)) + "
        "length(CAST(body AS BLOB))) FROM items").fetchone()[0] / n
    return out


def timed(function, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def bench_search(path: Path, log) -> dict:
    store = db.open_store(path, readonly=True)
    conn = store.conn
    n = conn.execute("SELECT count(*) FROM items").fetchone()[0]
    rng = random.Random(3)
    words = JapaneseMaker(seed=5).words.tolist()
    two = [w for w in words[:20_000] if len(w) == 2 and CJK_RUN.fullmatch(w)]
    longer = [w for w in words[:20_000] if len(w) in (3, 4) and CJK_RUN.fullmatch(w)]
    kinds = {
        "2 characters": two[:10] + rng.sample(two[10:2000], 15) + rng.sample(two[2000:], 5),
        "3-4 characters": longer[:10] + rng.sample(longer[10:2000], 15),
        "1 character": [w[0] for w in rng.sample(REAL_WORDS[:60], 8)],
    }
    results: dict[str, dict] = {}
    for kind, queries in kinds.items():
        times: dict[str, list[float]] = {"pairs: Store.search": [],
                                         "pairs: Store.search --country CN": [],
                                         "pairs: match only": [], "unigrams: match only": [],
                                         "trigram: match only": [], "scan: instr": []}
        matches = []
        for word in queries:
            pairs_match = db.search.cjk_query(word)
            unigram = '"' + " ".join(word) + '"'
            store.search(word, limit=20)  # warm
            times["pairs: Store.search"].append(timed(lambda: store.search(word, limit=20), 3))
            times["pairs: Store.search --country CN"].append(
                timed(lambda: store.search(word, limit=20, countries=["CN"]), 3))
            ranked = ("SELECT rowid FROM {t} WHERE {t} MATCH ? AND rank MATCH "
                      "'bm25(10.0, 4.0, 1.0)' ORDER BY rank LIMIT 20")
            times["pairs: match only"].append(timed(lambda: conn.execute(
                ranked.format(t="items_fts_cjk"), [pairs_match]).fetchall(), 3))
            times["unigrams: match only"].append(timed(lambda: conn.execute(
                ranked.format(t="cmp_unigram"), [unigram]).fetchall(), 3))
            if len(word) >= 3:
                times["trigram: match only"].append(timed(lambda: conn.execute(
                    ranked.format(t="cmp_trigram"), [f'"{word}"']).fetchall(), 3))
            elif len(times["trigram: match only"]) < 3:  # LIKE under 3 characters: a scan
                times["trigram: match only"].append(timed(lambda: conn.execute(
                    "SELECT rowid FROM cmp_trigram WHERE cmp_trigram LIKE ? LIMIT 20",
                    [f"%{word}%"]).fetchall()))
            if len(times["scan: instr"]) < 3:
                times["scan: instr"].append(timed(lambda: conn.execute(
                    "SELECT count(*) FROM items WHERE instr(title, ?1) OR instr(summary, ?1) "
                    "OR instr(body, ?1)", [word]).fetchall()))
            matches.append(store.count_matches(word))
        results[kind] = {
            "queries": len(queries),
            "median_matches": int(statistics.median(matches)),
            "max_matches": max(matches),
            **{name: (percentile(v, 50), percentile(v, 95)) for name, v in times.items() if v},
        }
        log(f"{kind}: {len(queries)} words matching {min(matches):,}-{max(matches):,} items "
            f"(median {statistics.median(matches):,.0f}) of {n:,}")
        for name, v in times.items():
            if v:
                log(f"  {name:36s} p50 {percentile(v, 50):8.1f} ms  p95 {percentile(v, 95):8.1f} ms"
                    f"  ({len(v)} queries)")
        # As the English target counts them (issue 6): words matching at most half the store.
        searched = times["pairs: Store.search"]
        kept = [t for t, m in zip(searched, matches) if m <= n // 2]
        if kept and len(kept) < len(searched):
            results[kind]["search_matching_at_most_half"] = (percentile(kept, 50),
                                                             percentile(kept, 95), len(kept))
            log(f"  {'pairs: Store.search, <= half match':36s} p50 {percentile(kept, 50):8.1f} ms"
                f"  p95 {percentile(kept, 95):8.1f} ms  ({len(kept)} queries)")
        slowest = sorted(zip(searched, queries, matches), reverse=True)[:3]
        log("  slowest Store.search: " + ", ".join(
            f"{word} ({m:,} matches) {t:.0f} ms" for t, word, m in slowest))
    # Recall of the pairs against the substring truth (instr), on a few words of each kind.
    misses = 0
    for word in kinds["2 characters"][:5] + kinds["3-4 characters"][:5]:
        truth = {r[0] for r in conn.execute(
            "SELECT id FROM items WHERE instr(title, ?1) OR instr(summary, ?1) OR instr(body, ?1)",
            [word])}
        got = {r[0] for r in conn.execute("SELECT rowid FROM items_fts_cjk WHERE items_fts_cjk "
                                          "MATCH ?", [db.search.cjk_query(word)])}
        misses += len(truth ^ got)
    results["pairs_vs_substring_differences"] = misses
    log(f"pairs against substring truth on 10 words: {misses} items differ")
    results["sizes"] = sizes(conn)
    store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N (smoke test)")
    parser.add_argument("--n", type=int, help="Japanese items in the search store")
    parser.add_argument("--ingest-n", type=int, help="items per ingest run")
    parser.add_argument("--skip-ingest", action="store_true", help="only the search measures")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    n = args.n or (5_000 if args.quick else 100_000)
    ingest_n = args.ingest_n or (2_000 if args.quick else 20_000)
    _stores.prepare_cache()

    def log(message: str) -> None:
        print(message, flush=True)

    log(f"cjk_search: ingest N={ingest_n:,} (best of 2, alternating), search N={n:,}")
    ingest = {} if args.skip_ingest else bench_ingest(ingest_n)
    for name, rate in ingest.items():
        base = ingest["without pairs (before)"]
        log(f"ingest, Japanese items, {name}: {rate:,.0f} items/s (ratio {rate / base:.2f})")
    search = bench_search(build_store(n, log), log)
    for name, value in search["sizes"].items():
        log(f"size: {name}: {value:,.0f} bytes/item")
    if args.json:
        Path(args.json).write_text(json.dumps({"ingest": ingest, "search": search}, indent=2))


if __name__ == "__main__":
    main()
