"""Named read-only queries for analysts: Datasette's canned queries (`stiwatch serve`).

Written to stay fast on a million items: the date range drives the weekly queries (CROSS JOIN
keeps `items` and its published_at index as the outer loop), and per-source lookups use indexes.

``date(x, 'weekday 0', '-6 days')`` is the Monday of x's ISO week. The canned queries' weeks
and days are local ('localtime' and 'utc' modifiers): `stiwatch serve` makes the `timezone`
setting its local time, so they are the weeks of the digest and of `stiwatch trends`.
"""

from __future__ import annotations

# The Monday of x's ISO week in local time, and the UTC instant (in the stored form) at which
# the local day ``day`` starts, to compare with published_at.
LOCAL_WEEK_START = "date({}, 'localtime', 'weekday 0', '-6 days')"
LOCAL_DAY_START = "strftime('%Y-%m-%dT%H:%M:%SZ', {}, 'utc')"

# items_fts_cjk indexes each run of CJK letters as its character pairs (db/cjk.py): the word
# typed is turned into the phrase of its pairs here, in SQL, so that the query runs in any
# SQLite tool. One word or phrase of CJK characters (spaces are dropped); one character is a
# prefix of the pairs. `stiwatch search` takes any query, mixed with Latin words.
_CJK_WORD = """
WITH RECURSIVE
  word(w) AS (SELECT replace(replace(trim(:q), ' ', ''), '　', '')),
  pairs(k, m) AS (
    SELECT 1, substr(w, 1, 2) FROM word WHERE length(w) > 1
    UNION ALL
    SELECT k + 1, m || ' ' || substr(w, k + 1, 2) FROM pairs, word WHERE k + 1 < length(w)
  ),
  phrase(m) AS (
    SELECT CASE WHEN length(w) = 1 THEN '"' || replace(w, '"', '""') || '"*'
                ELSE '"' || replace((SELECT m FROM pairs ORDER BY k DESC LIMIT 1), '"', '""')
                     || '"' END
    FROM word
  )"""

CANNED_QUERIES: dict[str, dict[str, str]] = {
    "search_cjk": {
        "title": "Search Chinese, Japanese or Korean text",
        "description": "Items whose title, summary or body contains a word of Chinese, Japanese "
        "or Korean (e.g. 研究, 量子技術, 연구): the best 100 stories, best match first (bm25), "
        "each story once, as "
        "`stiwatch search` shows them: near-duplicates are searched too, and a story is shown "
        "as its original when the original matches, else as its best-matching copy "
        "(duplicate_of names the original; copies counts the story's near-duplicates). "
        "country (e.g. JP) and since (YYYY-MM-DD, a day in the `timezone` setting, Asia/Tokyo "
        "by default, as in `stiwatch search`) may be left empty. The search box of the items "
        "table finds such words too, every match, without the text around them. One word "
        "or phrase per search; `stiwatch search` also takes several, mixed with English "
        "words, with AND, OR and NOT.",
        # Every item is matched and filtered on its own, then each story (an original and its
        # copies) keeps one row, ranked by its best match: as Store.search does. `since` is
        # read in the local time of the process running the query, which `stiwatch serve`
        # sets to the `timezone` setting (SQLite's 'utc' modifier converts from local time).
        "sql": _CJK_WORD + """,
  matches AS (
    SELECT i.id, coalesce(i.duplicate_of, i.id) AS story,
           bm25(items_fts_cjk, 10.0, 4.0, 1.0) AS rank
    FROM items_fts_cjk f
    CROSS JOIN items i ON i.id = f.rowid
    WHERE items_fts_cjk MATCH coalesce((SELECT m FROM phrase), '""')
      AND (:country = '' OR i.id IN (
             SELECT item_id FROM tags
             WHERE facet = 'country' AND value = upper(trim(:country, ' ' || char(9, 10, 13)))))
      AND (:since = '' OR i.published_at >=
           coalesce(strftime('%Y-%m-%dT%H:%M:%SZ', trim(:since), 'utc'), '9999'))
  ),
  shown AS (
    SELECT id, story, story_rank FROM (
      SELECT id, story, min(rank) OVER (PARTITION BY story) AS story_rank,
             row_number() OVER (PARTITION BY story ORDER BY id = story DESC, rank, id) AS n
      FROM matches)
    WHERE n = 1
    ORDER BY story_rank, id
    LIMIT 100
  )
SELECT id, published_at, title, substr(text, max(1, instr(text, w) - 40), 120) AS context,
       url, source_id, duplicate_of, copies, score
FROM (
    SELECT i.id, i.published_at, i.title, i.url, i.source_id, i.duplicate_of, word.w,
           CASE WHEN instr(i.body, word.w) > 0 THEN i.body
                WHEN instr(i.summary, word.w) > 0 THEN i.summary
                ELSE coalesce(i.title, '') END AS text,
           (SELECT count(*) FROM items c WHERE c.duplicate_of = s.story) AS copies,
           round(-s.story_rank, 3) AS score, s.story_rank
    FROM shown s
    CROSS JOIN items i ON i.id = s.id
    CROSS JOIN word
)
ORDER BY story_rank, id
""",
    },
    "policy_this_week_by_area": {
        "title": "This week's policy items by area",
        "description": "STI-policy items published since Monday of the week under way (weeks "
        "in the `timezone` setting, Asia/Tokyo by default, as the digest's), one row per (area, "
        "item), near-duplicates folded. Items without an area are listed under (no area). The "
        "digest covers the week before, the last complete one: `stiwatch digest preview`.",
        "sql": f"""
SELECT coalesce(a.value, '(no area)') AS area,
       coalesce(l.name, '') AS area_name,
       i.published_at,
       i.title,
       i.url,
       i.source_id,
       i.id
FROM items i
CROSS JOIN tags p ON p.item_id = i.id AND p.facet = 'policy' AND p.value = '1'
LEFT JOIN tags a ON a.item_id = i.id AND a.facet = 'area'
LEFT JOIN labels l ON l.facet = 'area' AND l.id = a.value
WHERE i.duplicate_of IS NULL
  AND i.published_at >= {LOCAL_DAY_START.format(LOCAL_WEEK_START.format("'now'"))}
ORDER BY area, i.published_at DESC
""",
    },
    "source_health": {
        "title": "Source health",
        "description": "Every source with its crawl health: failing ones first, with their last "
        "error and since when they fail; item counts and the publication date of the item "
        "stored last.",
        "sql": """
SELECT s.id,
       s.name,
       s.kind,
       s.enabled,
       CASE WHEN s.enabled = 0 THEN 'disabled'
            WHEN s.consecutive_failures > 0 THEN 'failing'
            WHEN s.last_ok_at IS NULL THEN 'never crawled'
            ELSE 'ok' END AS health,
       s.consecutive_failures,
       s.failing_since,
       s.last_ok_at,
       s.last_error,
       (SELECT count(*) FROM items i WHERE i.source_id = s.id) AS items,
       (SELECT i.published_at FROM items i WHERE i.id =
            (SELECT max(j.id) FROM items j WHERE j.source_id = s.id)) AS last_stored_item
FROM sources s
ORDER BY s.enabled DESC, s.consecutive_failures DESC, s.id
""",
    },
    "weekly_trend_by_area": {
        "title": "Weekly trend by area",
        "description": "Policy items per ISO week (week starting Monday in the `timezone` "
        "setting, Asia/Tokyo by default, as in `stiwatch trends`) and policy area over the last "
        "12 weeks, near-duplicates folded.",
        "sql": f"""
SELECT {LOCAL_WEEK_START.format("i.published_at")} AS week_start,
       a.value AS area,
       coalesce(l.name, '') AS area_name,
       count(*) AS items
FROM items i
CROSS JOIN tags p ON p.item_id = i.id AND p.facet = 'policy' AND p.value = '1'
JOIN tags a ON a.item_id = i.id AND a.facet = 'area'
LEFT JOIN labels l ON l.facet = 'area' AND l.id = a.value
WHERE i.duplicate_of IS NULL
  AND i.published_at >= {LOCAL_DAY_START.format(
      f"date({LOCAL_WEEK_START.format(repr('now'))}, '-77 days')")}
GROUP BY week_start, area
ORDER BY week_start DESC, items DESC, area
""",
    },
    "items_of_country": {
        "title": "Items about one country",
        "description": "Items tagged with a country (ISO 3166-1 alpha-2 code such as JP, or EU), "
        "newest first, with their tags; near-duplicates folded. The page shows the newest "
        "1,000 and says so when there are more: every one of them, as pages or one CSV "
        "download, is in the items_tagged_json view filtered by the country "
        "(`items_tagged_json?countries__arraycontains=JP`).",
        "sql": """
SELECT t.id,
       t.published_at,
       t.title,
       t.url,
       t.source_name,
       t.policy,
       t.areas,
       t.domains,
       t.countries
FROM items_tagged t
WHERE t.duplicate_of IS NULL
  AND t.id IN (SELECT item_id FROM tags WHERE facet = 'country'
               AND value = upper(trim(:country, ' ' || char(9, 10, 13))))
ORDER BY t.published_at DESC
""",
    },
}
