"""Rendering every digest of a busy week: 5,000 policy items, 1,000 subscribers, varied filters.

Target (issue 5): all digests rendered (selection, HTML, plain text, MIME message with the chart,
serialised to bytes; no SMTP) in under 60 s on one core. Prints the time and, as a baseline from
the same run, the cost of the shared part (reading the week and 12 weeks of trends, drawing the
chart of every area) that every subscriber reuses; the readers' own charts (one per set of
areas, countries or regions followed, shared by the readers who follow it), timed apart; then
the sizes of the HTML parts (Gmail clips one over about 102 KB), decoded and as quoted-printable
on the wire (measured outside the timed part).

    python bench/digest_render.py            # 5,000 items, 1,000 subscribers
    python bench/digest_render.py --quick    # 500 items, 50 subscribers (smoke test)
    python bench/digest_render.py --section-cap 15   # bigger digests: some cut to the size budget
    python bench/digest_render.py --no-queries   # no reader follows words (as before queries)

A quarter of the readers follow words too (``QUERIES``, five shared queries, as
`subscribers add --query`): each distinct query is looked up in the store once, by the first
digest that needs it, inside the timed part; the time of those lookups is printed apart.
"""

from __future__ import annotations

import argparse
from datetime import timedelta, timezone
from pathlib import Path
import random
import statistics
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import db  # noqa: E402
from classifier.taxonomy import load_taxonomy  # noqa: E402
from digest.send import compose, message_bytes, message_for, prepare_week  # noqa: E402
from digest.weeks import parse_week  # noqa: E402
from stiwatch.config import load_settings  # noqa: E402

WORDS = ("ministry funding programme research security quantum strategy budget talent open "
         "science agency cooperation semiconductor hydrogen fusion launch call grants university "
         "innovation startups data infrastructure supercomputer climate health vaccine space").split()
COUNTRIES = ["JP", "US", "CN", "KR", "DE", "FR", "GB", "EU", "IN", "AU", "BR", "ZA", "SG", "CA"]
REGION = {"JP": "east_asia", "US": "north_america", "CN": "east_asia", "KR": "east_asia",
          "DE": "europe", "FR": "europe", "GB": "europe", "EU": "europe", "IN": "south_asia",
          "AU": "oceania", "BR": "latin_america", "ZA": "sub_saharan_africa",
          "SG": "southeast_asia", "CA": "north_america"}


def build(path: Path, items: int, history: int, rng: random.Random) -> db.Store:
    store = db.open_store(path)
    taxonomy = load_taxonomy()
    areas, domains = list(taxonomy.ids("area")), list(taxonomy.ids("domain"))
    sources = [f"src{n:02d}" for n in range(40)]
    store.sync_sources([{"id": s, "name": f"Source {s}", "kind": "feed",
                         "url": f"https://{s}.example/feed"} for s in sources])
    week = parse_week("2026-W47", "Asia/Tokyo")
    plan = [(week, items)] + [(w, history) for w in week.previous(11)]
    rows, n = [], 0
    # Different news is worded differently: half of each text's words are made up, from a few
    # thousand, so stories are not all taken for reports of one event (digest.events). A second
    # generator, so the rest of the store is as before.
    made_up = random.Random(1)
    vocabulary = ["".join(made_up.choice("bdfgklmnprstvz") + made_up.choice("aeiou")
                          for _ in range(made_up.randint(2, 5))) for _ in range(3000)]

    def words(count: int) -> str:
        return " ".join(word if made_up.random() < 0.5 else made_up.choice(vocabulary)
                        for word in (rng.choice(WORDS) for _ in range(count)))

    for w, count in plan:
        for _ in range(count):
            n += 1
            moment = w.start + timedelta(seconds=rng.randrange(7 * 86400))
            title = words(8).capitalize()
            rows.append({"url": f"https://{rng.choice(sources)}.example/a/{n}",
                         "source_id": rng.choice(sources), "title": title,
                         "summary": f"{title}. " + words(30),
                         "published_at": moment.astimezone(timezone.utc).isoformat()})
    ids = [item_id for item_id, _ in store.save_items(rows)]
    results = []
    for item_id in ids:
        country = rng.choice(COUNTRIES)
        tags = [{"facet": "policy", "value": "1", "score": rng.uniform(0.5, 1), "method": "model"},
                {"facet": "country", "value": country, "score": 1.0, "method": "gazetteer"},
                {"facet": "region", "value": REGION[country], "score": 1.0, "method": "gazetteer"}]
        tags += [{"facet": "area", "value": a, "score": rng.uniform(0.5, 1), "method": "model"}
                 for a in rng.sample(areas, rng.randint(1, 2))]
        tags += [{"facet": "domain", "value": d, "score": 0.8, "method": "rules"}
                 for d in rng.sample(domains, rng.randint(0, 2))]
        results.append((item_id, tags))
    store.save_classifications(results, "bench")
    # Some syndicated copies, folded into their originals.
    week_ids = ids[:items]
    with store.write():
        for copy_id, original in zip(ids[items:items + items // 20], rng.sample(week_ids, items // 20)):
            store.conn.execute("UPDATE items SET duplicate_of = ? WHERE id = ?", [original, copy_id])
    return store


# Shared by many readers, as analysts follow a programme or a law: a phrase, a word, an OR, a
# prefix, an exclusion. Every fourth reader follows one, on top of their other filters.
QUERIES = ['"research security"', "quantum", "hydrogen OR fusion", "semicond*",
           "vaccine -climate"]


def subscribers(count: int, rng: random.Random, queries: bool = True) -> list[dict]:
    taxonomy = load_taxonomy()
    areas, domains = list(taxonomy.ids("area")), list(taxonomy.ids("domain"))
    regions = sorted(set(REGION.values()))
    subs = []
    for n in range(count):
        sub = {"email": f"user{n}@agency.example", "name": f"User {n}"}
        kind = n % 5
        if kind == 1:
            sub["areas"] = rng.sample(areas, rng.randint(1, 3))
        elif kind == 2:
            sub["domains"] = rng.sample(domains, rng.randint(1, 2))
        elif kind == 3:
            sub["countries"] = rng.sample(COUNTRIES, rng.randint(1, 3))
            sub["regions"] = rng.sample(regions, rng.randint(0, 1))
        elif kind == 4:
            sub["areas"] = rng.sample(areas, 2)
            sub["regions"] = rng.sample(regions, 2)
        if queries and n % 4 == 0:
            sub["query"] = QUERIES[(n // 4) % len(QUERIES)]
        subs.append(sub)
    return subs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--section-cap", type=int, default=None, metavar="N",
                        help="digest_section_cap (default: the setting's default, 8)")
    parser.add_argument("--no-queries", action="store_true",
                        help="no reader follows words (the readers of before queries)")
    args = parser.parse_args()
    items, history, count = (500, 100, 50) if args.quick else (5000, 1000, 1000)
    rng = random.Random(47)
    settings = load_settings(environ={} if args.section_cap is None else
                             {"STIWATCH_DIGEST_SECTION_CAP": str(args.section_cap)})
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        store = build(Path(tmp) / "bench.db", items, history, rng)
        print(f"store: {items} items in the week + {history}/week for 11 weeks, built in "
              f"{time.perf_counter() - started:.1f} s")
        week = parse_week("2026-W47", "Asia/Tokyo")
        started = time.perf_counter()
        bundle = prepare_week(store, week)
        # The chart every reader's message shares, drawn (matplotlib imported) when the first
        # message needs it: timed on its own here, and counted in the shared part.
        drawing = time.perf_counter()
        png = len(bundle.png)
        drawn = time.perf_counter() - drawing
        shared = time.perf_counter() - started
        # The same readers' filters with or without queries (a generator of their own).
        subs = subscribers(count, rng, queries=not args.no_queries)
        # Each reader's chart draws the areas they follow, once for all readers who follow the
        # same ones: drawn here, timed apart from the rest of their digests.
        drawing, drawing_cpu = time.perf_counter(), time.process_time()
        for sub in subs:
            bundle.chart(sub)
        charts, charts_cpu = time.perf_counter() - drawing, time.process_time() - drawing_cpu
        chart_sizes = sorted(len(png) for png in bundle.charts.values())
        started, cpu = time.perf_counter(), time.process_time()
        total_bytes = shown = cut = pngs = messages = 0
        sizes: list[tuple[int, int]] = []
        measuring = 0.0
        for sub in subs:
            digest = compose(bundle, sub, settings)
            if digest.empty:
                continue
            before = digest.shown
            messages += 1
            message = message_for(bundle, digest, settings)
            shown += digest.shown
            cut += digest.shown < before  # stories left out to fit digest_max_html_bytes
            total_bytes += len(message_bytes(message))
            pngs += len(bundle.chart(sub))
            measured, measured_cpu = time.perf_counter(), time.process_time()
            sizes.append(html_sizes(message))
            measuring += time.perf_counter() - measured
            cpu += time.process_time() - measured_cpu  # left out of the CPU time too
        per_sub = time.perf_counter() - started - measuring
        per_sub_cpu = time.process_time() - cpu
        searched = len(bundle.data.found)
        # the lookups alone, again, on the same items: what the digests' time holds of them
        searching = time.perf_counter()
        ids = [report for story in bundle.data.stories for report in story.ids]
        for query in bundle.data.found:
            store.stories_matching(query, ids)
        searching = time.perf_counter() - searching
    total = shared + charts + per_sub
    print(f"shared (week, 12-week trends, chart): {shared:.2f} s  [baseline]")
    print(f"{count} digests ({shown} items shown, {total_bytes / 1e6:.1f} MB of messages; "
          f"{cut} cut to the size budget): "
          f"{per_sub:.2f} s = {1000 * per_sub / count:.1f} ms per digest, "
          f"{per_sub / shared:.1f}x the shared part; CPU time {1000 * per_sub_cpu / count:.1f} ms "
          "per digest (less swayed by other jobs on the host)")
    readers = sum(bool(sub.get("query")) for sub in subs)
    distinct = len({sub["query"] for sub in subs if sub.get("query")})
    print(f"queries: {readers} readers follow {distinct} distinct queries, looked up once each "
          f"with the words of those of several (about {searching:.2f} s of the digests' time, "
          f"{searched} lookups of {len(ids) if searched else 0:,} stories with their copies)")
    print(f"chart of every area: drawn in {drawn:.2f} s (matplotlib's import included), "
          f"{png:,} B of PNG ({(png + 2) // 3 * 4 * 77 // 76:,} B as base64)")
    print(f"readers' charts: {len(chart_sizes)} for {count} readers (one per set of areas, "
          f"countries or regions followed), drawn in {charts:.2f} s ({charts_cpu:.2f} s CPU, "
          f"{1000 * charts_cpu / max(len(chart_sizes) - 1, 1):.0f} ms each); PNG "
          f"{chart_sizes[0]:,}-{chart_sizes[-1]:,} B, {pngs / max(messages, 1):,.0f} B a message "
          f"on average")
    print(f"total {total:.2f} s; target 60 s on one core: {'PASS' if total < 60 else 'FAIL'} "
          f"({total / 60:.0%} of the budget)")
    budget = settings.get("digest_max_html_bytes")
    for n, name in enumerate(("decoded", "quoted-printable")):
        values = sorted(size[n] for size in sizes)
        print(f"HTML part, {name}: median {statistics.median(values):,.0f} B, "
              f"90th percentile {values[int(0.9 * (len(values) - 1))]:,} B, max {values[-1]:,} B; "
              f"over 102 KB: {sum(v > GMAIL_CLIPS for v in values)} of {len(values)}"
              + (f", over the {budget:,} B budget: {sum(v > budget for v in values)}"
                 if budget and n == 0 else ""))


GMAIL_CLIPS = 102 * 1024


def html_sizes(message) -> tuple[int, int]:
    """(decoded, on the wire) bytes of a message's HTML part, each line ending a CR LF."""
    for part in message.walk():
        if part.get_content_type() == "text/html":
            decoded = part.get_payload(decode=True)
            wire = part.get_payload().encode("ascii")
            return tuple(len(b) + b.count(b"\n") - b.count(b"\r\n") for b in (decoded, wire))
    return (0, 0)


if __name__ == "__main__":
    main()
