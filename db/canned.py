"""Named read-only queries for analysts: Datasette's canned queries (`stiwatch serve`).

Written to stay fast on a million items: the date range drives the weekly queries (CROSS JOIN
keeps `items` and its published_at index as the outer loop), and per-source lookups use indexes.

Weeks are ISO weeks in UTC: ``date(x, 'weekday 0', '-6 days')`` is the Monday of x's week.
"""

from __future__ import annotations

WEEK_START = "date({}, 'weekday 0', '-6 days')"

CANNED_QUERIES: dict[str, dict[str, str]] = {
    "policy_this_week_by_area": {
        "title": "This week's policy items by area",
        "description": "STI-policy items published since Monday of the current week (UTC), one "
        "row per (area, item), near-duplicates folded. Items without an area are listed under "
        "(no area).",
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
  AND i.published_at >= {WEEK_START.format("'now'")}
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
        "description": "Policy items per ISO week (UTC, week starting Monday) and policy area "
        "over the last 12 weeks, near-duplicates folded.",
        "sql": f"""
SELECT {WEEK_START.format("i.published_at")} AS week_start,
       a.value AS area,
       coalesce(l.name, '') AS area_name,
       count(*) AS items
FROM items i
CROSS JOIN tags p ON p.item_id = i.id AND p.facet = 'policy' AND p.value = '1'
JOIN tags a ON a.item_id = i.id AND a.facet = 'area'
LEFT JOIN labels l ON l.facet = 'area' AND l.id = a.value
WHERE i.duplicate_of IS NULL
  AND i.published_at >= date({WEEK_START.format("'now'")}, '-77 days')
GROUP BY week_start, area
ORDER BY week_start DESC, items DESC, area
""",
    },
    "items_of_country": {
        "title": "Items about one country",
        "description": "Items tagged with a country (ISO 3166-1 alpha-2 code such as JP, or EU), "
        "newest first, with their tags; near-duplicates folded.",
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
  AND t.id IN (SELECT item_id FROM tags WHERE facet = 'country' AND value = upper(:country))
ORDER BY t.published_at DESC
LIMIT 1000
""",
    },
}
