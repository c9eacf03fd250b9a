"""Tags on items (classifier output and analyst corrections) and the label names they use."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping

from .clock import utcnow
from .errors import InvalidTag, NoSuchItem
from .items import chunks, insert_rows

FACETS = ("policy", "area", "domain", "country", "region")
METHODS = ("model", "rules", "gazetteer", "source", "analyst")
# A tag that is not an analyst's own verdict (an added label): what replacing an item's tags
# may delete. A tag copied from an original with method analyst is not the copy's own.
_NOT_OWN_VERDICT = ("(method != 'analyst' OR NOT EXISTS (SELECT 1 FROM analyst_labels a"
                    " WHERE a.item_id = tags.item_id AND a.facet = tags.facet"
                    " AND a.value = tags.value AND a.verdict = 1))")


# Items waiting for the classifier, read from the partial index of the narrow table (the
# CROSS JOIN fixes the order of the loops) rather than from every item's row.
_WAITING = ("FROM item_classification c CROSS JOIN items i ON i.id = c.item_id"
            " WHERE c.classified_at IS NULL")


def _check(facet: str, value: str, method: str = "analyst") -> None:
    if facet not in FACETS:
        raise InvalidTag(f"unknown facet {facet!r} (expected one of: {', '.join(FACETS)})")
    if method not in METHODS:
        raise InvalidTag(f"unknown method {method!r} (expected one of: {', '.join(METHODS)})")
    if facet == "policy" and value not in ("0", "1"):
        raise InvalidTag(f"policy takes 1 or 0, not {value!r}")
    if not value:
        raise InvalidTag(f"empty value for facet {facet!r}")


def _machine_writable(verdicts: set[tuple[str, str]]) -> Callable[[str, str], bool]:
    """Whether a classifier's (or an original's) tag may be written on an item with these
    analyst verdicts (facet, value): not one the analyst decided either way, no policy row
    beside the analyst's own verdict, and no area after an analyst's policy = 0 (areas are for
    policy items; only the analyst's own stay)."""
    analyst_policy = any(facet == "policy" for facet, _value in verdicts)
    no_areas = ("policy", "0") in verdicts

    def writable(facet: str, value: str) -> bool:
        return not ((facet, value) in verdicts or (facet == "policy" and analyst_policy)
                    or (facet == "area" and no_areas))
    return writable


class TagsMixin:
    # -- label names (the taxonomy, as data analysts can read) ------------------------------

    def sync_labels(self, labels: Iterable[Mapping[str, Any]], taxonomy_version: int) -> bool:
        """Replace the `labels` table with ``labels`` when the taxonomy version changed."""
        labels = list(labels)
        stored = self.scalar("SELECT max(taxonomy_version) FROM labels")
        count = self.scalar("SELECT count(*) FROM labels")
        if stored == taxonomy_version and count == len(labels):
            return False
        with self.write():
            self.conn.execute("DELETE FROM labels")
            self.conn.executemany(
                "INSERT INTO labels (facet, id, name, description, taxonomy_version)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (l["facet"], l["id"], l["name"], l.get("description"), taxonomy_version)
                    for l in labels
                ],
            )
        return True

    def label_names(self, facet: str) -> dict[str, str]:
        """``{id: name}`` for one facet, in taxonomy order."""
        return {
            row["id"]: row["name"]
            for row in self.query(
                "SELECT id, name FROM labels WHERE facet = ? ORDER BY rowid", [facet]
            )
        }

    # -- classifier output ------------------------------------------------------------------

    def unclassified_ids(self, *, everything: bool = False) -> list[int]:
        """Ids of items never classified (or of all items), originals before duplicates."""
        if everything:
            sql = "SELECT id FROM items ORDER BY duplicate_of IS NOT NULL, id"
        else:
            sql = (f"SELECT i.id {_WAITING} ORDER BY i.duplicate_of IS NOT NULL, i.id")
        return [row[0] for row in self.conn.execute(sql)]

    def count_unclassified(self) -> int:
        """How many items wait for classification: those ``unclassified_ids()`` gives, which
        `stiwatch classify` without --all tags (`stiwatch status` says so)."""
        return self.scalar(f"SELECT count(*) {_WAITING}")

    def iter_to_classify(self, where: str = "1", *, everything: bool = False,
                         columns: str = "*", batch: int = 500) -> Iterator[dict]:
        """Stream the items waiting for classification (or all items) that match an SQL
        condition on ``items``, in id order, a batch at a time. ``columns`` is the select list
        (must include ``id``); it may name ``classify_marks`` and ``classified_at`` (from
        ``item_classification``)."""
        # CROSS JOIN fixes the order of the loops: the waiting items are read from the
        # partial index of the narrow table, not found by reading every item's row. All items
        # are read in id order: once ANALYZE has run, SQLite would otherwise read the
        # condition's originals from items_language_status and sort them all, every batch.
        tables = ("items NOT INDEXED CROSS JOIN item_classification c ON c.item_id = items.id"
                  if everything
                  else "item_classification c CROSS JOIN items ON items.id = c.item_id")
        key = "items.id" if everything else "c.item_id"  # the outer loop's own key
        waiting = "" if everything else " AND c.classified_at IS NULL"
        last = 0
        while True:
            rows = self.query(
                f"SELECT {columns} FROM {tables} WHERE {key} > ?{waiting} AND ({where})"
                f" ORDER BY {key} LIMIT {int(batch)}", [last])
            if not rows:
                return
            yield from rows
            last = rows[-1]["id"]

    def save_classifications(
        self,
        results: Iterable[tuple[int, Iterable[Mapping[str, Any]]]],
        model_version: str,
        *,
        region_of: Mapping[str, str] | None = None,
        marks: Mapping[int, int] | None = None,
    ) -> list[int]:
        """Replace the machine tags of each item with new ones, in one transaction.

        ``results`` holds ``(item_id, tags)``; each tag has ``facet``, ``value``, ``score`` and
        ``method``. Analyst tags are never touched, and a tag an analyst removed is not written
        back. For the single-valued ``policy`` facet an analyst verdict wins outright, and after
        an analyst's ``policy = 0`` no area is written (areas are for policy items). An item
        given twice gets its last tags. With ``region_of`` (country code -> region id), each
        item's regions then follow its final countries (see ``_follow_countries``).

        ``marks`` (item id -> its ``classify_marks`` when the classifier read it) leaves out
        any item marked for classification since: its tags were made before an analyst's
        correction (or a new text) and would clear the mark that asks for new ones. Returns
        the ids of the items written.
        """
        now = utcnow()
        by_item = {item_id: list(tags) for item_id, tags in results}
        with self.write():
            if marks is not None:
                # read inside the write transaction: no mark can be set between this and the
                # write below
                for chunk in chunks([item_id for item_id in by_item if item_id in marks]):
                    for item_id, count in self.conn.execute(
                        "SELECT item_id, classify_marks FROM item_classification"
                        f" WHERE item_id IN ({', '.join('?' * len(chunk))})", chunk
                    ):
                        if count != marks[item_id]:
                            del by_item[item_id]
            ids = list(by_item)
            # A few statements per batch rather than four per item (a tenth of the write time).
            vetoed: dict[int, set[tuple[str, str]]] = {}
            for chunk in chunks(ids):
                for item_id, facet, value in self.conn.execute(
                    "SELECT item_id, facet, value FROM analyst_labels"
                    f" WHERE item_id IN ({', '.join('?' * len(chunk))})", chunk
                ):
                    vetoed.setdefault(item_id, set()).add((facet, value))
            rows = []
            for item_id, tags in by_item.items():
                writable = _machine_writable(vetoed.get(item_id, set()))
                for tag in tags:
                    facet, value = tag["facet"], str(tag["value"])
                    _check(facet, value, tag["method"])
                    if not writable(facet, value):
                        continue
                    rows.append(
                        (item_id, facet, value, tag.get("score"), tag["method"], model_version, now)
                    )
            # An analyst tag stays only where this item's own analyst verdict backs it: a
            # near-duplicate's copies of its original's corrections are replaced like any
            # other copy, so a correction the analyst takes back leaves the copies too.
            for chunk in chunks(ids):
                self.conn.execute(
                    f"DELETE FROM tags WHERE item_id IN ({', '.join('?' * len(chunk))})"
                    f" AND {_NOT_OWN_VERDICT}",
                    chunk,
                )
            insert_rows(self.conn, "INSERT OR IGNORE INTO tags"
                        " (item_id, facet, value, score, method, model_version, tagged_at)", rows)
            if region_of is not None:
                # The classifier derived its regions from the countries it wrote: only an
                # analyst's verdict on a country or region can leave them disagreeing.
                corrected = [item_id for item_id in ids
                             if any(facet in ("country", "region")
                                    for facet, _value in vetoed.get(item_id, ()))]
                self._follow_countries(corrected, region_of, now)
            # a row of a few bytes per item (items.classified_at rewrote the whole article)
            for chunk in chunks(ids):
                self.conn.execute(
                    "UPDATE item_classification SET classified_at = ?"
                    f" WHERE item_id IN ({', '.join('?' * len(chunk))})", [now, *chunk])
        return ids

    def analyst_policy(self, item_ids: Iterable[int]) -> dict[int, str]:
        """``{item_id: "1" or "0"}``: the policy verdict an analyst gave each of ``item_ids``
        that has one."""
        found: dict[int, str] = {}
        for chunk in chunks(list(item_ids)):
            found.update(self.conn.execute(
                "SELECT item_id, value FROM analyst_labels WHERE facet = 'policy' AND verdict = 1"
                f" AND item_id IN ({', '.join('?' * len(chunk))})", chunk).fetchall())
        return found

    def corrected_items(self, item_ids: Iterable[int]) -> set[int]:
        """Those of ``item_ids`` with a correction of their own in ``analyst_labels``."""
        found: set[int] = set()
        for chunk in chunks(list(item_ids)):
            found.update(item_id for item_id, in self.conn.execute(
                "SELECT DISTINCT item_id FROM analyst_labels"
                f" WHERE item_id IN ({', '.join('?' * len(chunk))})", chunk))
        return found

    def tags_of(self, item_id: int) -> list[dict[str, Any]]:
        return self.tags_of_items([item_id]).get(item_id, [])

    def tags_of_items(self, item_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        """Each item's tags (as tags_of gives them), for many items in few queries; items
        without tags are left out."""
        out: dict[int, list[dict[str, Any]]] = {}
        for chunk in chunks(list(item_ids)):
            rows = self.query(
                "SELECT item_id, facet, value, score, method, model_version, tagged_at FROM tags"
                f" WHERE item_id IN ({', '.join('?' * len(chunk))})"
                " ORDER BY item_id, facet, value",
                chunk,
            )
            for row in rows:
                out.setdefault(row.pop("item_id"), []).append(row)
        return out

    # -- analyst corrections ----------------------------------------------------------------

    def analyst_label(
        self,
        item_id: int,
        *,
        add: Iterable[tuple[str, str]] = (),
        remove: Iterable[tuple[str, str]] = (),
        region_of: Mapping[str, str] | None = None,
    ) -> tuple[int, int]:
        """Record an analyst's corrections: added tags win over any classifier, removed ones
        stay removed. Both are kept in `analyst_labels` for training. With ``region_of``
        (country code -> region id), the item's regions then follow its countries (see
        ``_follow_countries``). Returns (tags added, tags removed): what changed, not counting
        an analyst tag that was already there or a removed tag that was not.

        ``policy`` is single-valued: one verdict (1 or 0) is added; it is never removed, since
        an item without one would read as not yet classified (InvalidTag)."""
        add, remove = list(dict.fromkeys(add)), list(dict.fromkeys(remove))
        for facet, value in [*add, *remove]:
            _check(facet, value)
        if len({value for facet, value in add if facet == "policy"}) > 1:
            raise InvalidTag("policy takes one verdict: add policy=1 or policy=0, not both")
        if any(facet == "policy" for facet, _value in remove):
            raise InvalidTag("policy is not removed but given the other verdict: "
                             "add policy=0 (not policy-relevant) or policy=1")
        added = removed = 0
        now = utcnow()
        with self.write():
            if self.scalar("SELECT 1 FROM items WHERE id = ?", [item_id]) is None:
                raise NoSuchItem(f"no item with id {item_id}")
            for facet, value in remove:
                removed += self.conn.execute(
                    "DELETE FROM tags WHERE item_id = ? AND facet = ? AND value = ?",
                    [item_id, facet, value],
                ).rowcount
                self._verdict(item_id, facet, value, 0, now)
            for facet, value in add:
                added += self.scalar(
                    "SELECT 1 FROM tags WHERE item_id = ? AND facet = ? AND value = ?"
                    " AND method = 'analyst'", [item_id, facet, value]) is None
                if facet == "policy":
                    # Single-valued: the analyst's 1 or 0 replaces whatever was there.
                    self.conn.execute(
                        "DELETE FROM tags WHERE item_id = ? AND facet = 'policy'", [item_id]
                    )
                    self.conn.execute(
                        "DELETE FROM analyst_labels WHERE item_id = ? AND facet = 'policy'",
                        [item_id],
                    )
                # a policy score is the probability of relevance: 0.0 for the analyst's "no"
                score = 0.0 if (facet, value) == ("policy", "0") else 1.0
                self.conn.execute(
                    "INSERT OR REPLACE INTO tags"
                    " (item_id, facet, value, score, method, model_version, tagged_at)"
                    " VALUES (?, ?, ?, ?, 'analyst', NULL, ?)",
                    [item_id, facet, value, score, now],
                )
                self._verdict(item_id, facet, value, 1, now)
                if facet == "policy":
                    # Areas are for policy items: a "no" takes the classifier's away now,
                    # and the next `classify` tags the areas of a "yes" (or the item anew).
                    if value == "0":  # the analyst's own areas stay, not copied ones
                        self.conn.execute(
                            "DELETE FROM tags WHERE item_id = ? AND facet = 'area'"
                            " AND NOT EXISTS (SELECT 1 FROM analyst_labels a"
                            " WHERE a.item_id = tags.item_id AND a.facet = 'area'"
                            " AND a.value = tags.value AND a.verdict = 1)", [item_id])
                    self._mark([item_id])
            if region_of is not None:
                self._follow_countries([item_id], region_of, now)
            self._copy_to_duplicates(item_id)
        return added, removed

    def analyst_undo(
        self,
        item_id: int,
        undo: Iterable[tuple[str, str | None]],
        *,
        region_of: Mapping[str, str] | None = None,
    ) -> list[tuple[str, str, int]]:
        """Take back an analyst's corrections of an item, so the classifier decides again.

        ``undo`` holds ``(facet, value)``, or ``(facet, None)`` for every verdict on that
        facet. Each matching verdict leaves `analyst_labels` (training no longer sees it), an
        added tag leaves the item, and the item is marked for re-classification (its
        ``classified_at`` cleared), so the next `classify` tags it anew: the machine's tag a
        removal kept away may come back. Its regions follow its countries again (with
        ``region_of``, as in ``analyst_label``) and its near-duplicates take its tags at once.
        Returns ``(facet, value, verdict)`` of what was taken back, in facet and value order;
        empty when the item had no such correction (and then nothing is written)."""
        undo = list(dict.fromkeys(undo))
        for facet, value in undo:
            if facet not in FACETS:
                raise InvalidTag(f"unknown facet {facet!r} (expected one of: {', '.join(FACETS)})")
            if value is not None and not value:
                raise InvalidTag(f"empty value for facet {facet!r}")
        with self.write():
            if self.scalar("SELECT 1 FROM items WHERE id = ?", [item_id]) is None:
                raise NoSuchItem(f"no item with id {item_id}")
            taken = [(facet, value, verdict)
                     for facet, value, verdict in self.analyst_verdicts(item_id)
                     if (facet, None) in undo or (facet, value) in undo]
            if not taken:
                return []
            for facet, value, _verdict in taken:
                self.conn.execute(
                    "DELETE FROM analyst_labels WHERE item_id = ? AND facet = ? AND value = ?",
                    [item_id, facet, value])
                # only the analyst's own row: a removal left no tag, and a machine tag
                # beside it (a region the classifier also derived) is the machine's
                self.conn.execute(
                    "DELETE FROM tags WHERE item_id = ? AND facet = ? AND value = ?"
                    " AND method = 'analyst'", [item_id, facet, value])
            self._mark([item_id])
            if region_of is not None:
                self._follow_countries([item_id], region_of, utcnow())
            self._copy_to_duplicates(item_id)
        return taken

    def analyst_verdicts(self, item_id: int) -> list[tuple[str, str, int]]:
        """``(facet, value, verdict)`` of every analyst correction of the item (1: added,
        0: removed), in facet and value order."""
        return [tuple(row) for row in self.conn.execute(
            "SELECT facet, value, verdict FROM analyst_labels WHERE item_id = ?"
            " ORDER BY facet, value", [item_id])]

    def _copy_to_duplicates(self, item_id: int) -> None:
        """Give the near-duplicates of ``item_id`` its tags now, as `classify` would copy them.

        Search, exports and Datasette match a story by any of its copies: left with the tags
        they copied before a correction, they would still show the story under the tag the
        analyst removed until the next `classify`. A copy's own analyst verdicts still win.
        The copies are also left to be copied again by that next `classify`.
        """
        copies = [row[0] for row in self.conn.execute(
            "SELECT id FROM items WHERE duplicate_of = ?", [item_id])]
        if not copies:
            return
        tags = self.conn.execute(
            "SELECT facet, value, score, method, model_version, tagged_at FROM tags"
            " WHERE item_id = ?", [item_id]).fetchall()
        for copy in copies:
            writable = _machine_writable({(facet, value) for facet, value in self.conn.execute(
                "SELECT facet, value FROM analyst_labels WHERE item_id = ?", [copy])})
            # as save_classifications replaces a copy's tags: all but its own analyst verdicts
            self.conn.execute(f"DELETE FROM tags WHERE item_id = ? AND {_NOT_OWN_VERDICT}",
                              [copy])
            self.conn.executemany(
                "INSERT OR IGNORE INTO tags"
                " (item_id, facet, value, score, method, model_version, tagged_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(copy, *tag) for tag in tags if writable(tag[0], tag[1])])
        self._mark(copies)

    def _mark(self, item_ids: list[int]) -> None:
        """Mark items for classification: the next `classify` tags them anew, and one running
        now leaves them alone (the trigger counts the mark in ``classify_marks``)."""
        for chunk in chunks(item_ids):
            self.conn.execute(
                "UPDATE item_classification SET classified_at = NULL"
                f" WHERE item_id IN ({', '.join('?' * len(chunk))})", chunk)

    def _follow_countries(self, item_ids: list[int], region_of: Mapping[str, str],
                          now: str) -> None:
        """Make each item's region tags those of its final countries, analysts' included.

        The classifier derives regions from the countries it found, so a country an analyst
        added or removed would otherwise leave the regions (what `search --region` and the
        digests filter on) disagreeing with the countries. The caller passes the mapping: the
        store does not know the taxonomy. A region is added for a country that lacks it, with
        that country's method and score (so ``analyst`` for an analyst's country), unless an
        analyst removed that region; a region no country implies any more is dropped unless an
        analyst added it. ``international`` (a multilateral body acts) is about no country and
        is left alone.
        """
        for chunk in chunks(item_ids):
            marks = ", ".join("?" * len(chunk))
            tags: dict[int, list[tuple]] = {}
            for row in self.conn.execute(
                "SELECT item_id, facet, value, score, method, model_version FROM tags"
                f" WHERE item_id IN ({marks}) AND facet IN ('country', 'region')", chunk
            ):
                tags.setdefault(row[0], []).append(row[1:])
            verdicts = {
                (item_id, value): verdict
                for item_id, value, verdict in self.conn.execute(
                    "SELECT item_id, value, verdict FROM analyst_labels"
                    f" WHERE item_id IN ({marks}) AND facet = 'region'", chunk
                )
            }
            stale, missing, restated = [], [], []
            for item_id in chunk:
                rows = tags.get(item_id, [])
                implied: dict[str, tuple[float, str, str | None]] = {}
                for facet, value, score, method, version in rows:
                    region = region_of.get(value) if facet == "country" else None
                    if region and (score or 0.0) > implied.get(region, (-1.0,))[0]:
                        implied[region] = (score or 0.0, method, version)
                present = {value: (score or 0.0, method)
                           for facet, value, score, method, _v in rows if facet == "region"}
                stale += [(item_id, value) for value in present
                          if value not in implied and value != "international"
                          and verdicts.get((item_id, value)) != 1]
                missing += [(item_id, region, score, method, version, now)
                            for region, (score, method, version) in implied.items()
                            if region not in present and verdicts.get((item_id, region)) != 0]
                # A region that stays reads as the country it now comes from: an analyst's
                # KR replacing the gazetteer's JP makes east_asia the analyst's too.
                restated += [(score, method, version, now, item_id, region)
                             for region, (score, method, version) in implied.items()
                             if region in present and present[region] != (score, method)
                             and verdicts.get((item_id, region)) != 1]
            self.conn.executemany(
                "DELETE FROM tags WHERE item_id = ? AND facet = 'region' AND value = ?", stale
            )
            self.conn.executemany(
                "INSERT INTO tags (item_id, facet, value, score, method, model_version,"
                " tagged_at) VALUES (?, 'region', ?, ?, ?, ?, ?)",
                missing,
            )
            self.conn.executemany(
                "UPDATE tags SET score = ?, method = ?, model_version = ?, tagged_at = ?"
                " WHERE item_id = ? AND facet = 'region' AND value = ?", restated
            )

    def _verdict(self, item_id: int, facet: str, value: str, verdict: int, now: str) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO analyst_labels (item_id, facet, value, verdict, labelled_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [item_id, facet, value, verdict, now],
        )

    def analyst_labelled_items(self) -> list[dict[str, Any]]:
        """Items an analyst corrected, with their text and every verdict, for training."""
        rows = self.query(
            """SELECT i.id, i.title, i.summary, i.body, a.facet, a.value, a.verdict
               FROM analyst_labels a JOIN items i ON i.id = a.item_id
               ORDER BY i.id, a.facet, a.value"""
        )
        items: dict[int, dict[str, Any]] = {}
        for row in rows:
            item = items.setdefault(
                row["id"],
                {k: row[k] for k in ("id", "title", "summary", "body")} | {"labels": []},
            )
            item["labels"].append((row["facet"], row["value"], row["verdict"]))
        return list(items.values())
