"""Search over a library's derived index: generations checked against SQLite, then FAISS.

Before it answers, :class:`IndexedSearch` makes sure its matchers cover exactly the committed
rows below their high-water mark: a saved generation whose row count or mark disagrees with
SQLite (a deleted row, an edited directory name, a zeroed or missing FAISS file) is refused with
a :class:`~speechret.library.layout.LibraryError` that says to run ``index.py command=repair``,
rather than answering with wrong hits. A reader whose rows were removed by another process
reloads (waiting for the writer lock if a writer is re-deriving the index). Hits name items as
:meth:`SpeechLibrary.item` does; a row removed since the index was read is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from speechret.hashing import hash_method_class, hash_method_names
from speechret.library.generations import item_count
from speechret.library.layout import LibraryError, _library_errors
from speechret.search import index as ix

__all__ = ["IndexedSearch"]


class IndexedSearch:
    """The index and search half of :class:`~speechret.library.store.SpeechLibrary` (a mixin:
    it uses the library's connection, lock, hash method, generations and sealer)."""

    def _rows_below(self, hw: int) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM items WHERE row < ?", (hw,)).fetchone()[0]

    def _load_generation(self) -> None:
        """The newest saved generation, checked against SQLite (count and high-water mark)."""
        cur = self.generations.current()
        if cur is None:
            self._matchers, self._hwm, self._count = self.generations.new(), 0, 0
            return
        hw, directory = cur
        rel = directory.relative_to(self.path)
        try:
            matchers, state = self.generations.load(directory), self.generations.state(directory)
        except Exception as exc:  # noqa: BLE001 - any unreadable FAISS / state file
            raise LibraryError(f"index {rel} of library {self.path} is unreadable ({type(exc).__name__}: {exc}): "
                               f"run index.py command=repair library={self.path}") from exc
        held, in_db = item_count(matchers), self._rows_below(hw)
        if state.get("high_water") != hw or state.get("count") != held or held != in_db:
            raise LibraryError(f"index {rel} of library {self.path} has {held} rows (state says "
                               f"{state.get('count')} below mark {state.get('high_water')}), the database "
                               f"{in_db} below mark {hw}: run index.py command=repair library={self.path}")
        self._matchers, self._hwm, self._count = matchers, hw, held

    def _ensure_index(self) -> None:
        if self._matchers is not None and self._rows_below(self._hwm) == self._count:
            return
        try:
            self._load_generation()
        except LibraryError:
            with self.lock():  # a writer may be re-deriving it right now: wait for it, then retry
                self._load_generation()

    def _save_generation(self, matchers: dict[str, Any], high_water: int, count: int) -> None:
        final = self.generations.save(matchers, high_water, count)
        self._set_meta("index_high_water", str(high_water))
        self._set_meta("index_dir", final.name)

    def _db_high_water(self) -> int:
        return self._next_row()

    def _db_version(self) -> tuple[int, int]:
        """What changes when the database does: ``PRAGMA data_version`` (changes when another
        connection, in this process or another, commits; SQLite's documented use is exactly this
        cache check) and this connection's own ``total_changes``."""
        return self._conn.execute("PRAGMA data_version").fetchone()[0], self._conn.total_changes

    def sync_index(self) -> int:
        """Add rows committed since the index's high-water mark (to the in-memory matchers, and
        saved as a new generation when the writer lock is free). Returns the rows added.

        The checks against SQLite (a row count below the mark, the high-water mark) cost a scan of
        the items table; they run only when :meth:`_db_version` says the database changed since the
        last check, so a search of an unchanged library pays one ``PRAGMA`` instead (issue 16:
        the count was 5 of a search's 7 ms at 100k items)."""
        seen = self._db_version()
        if self._matchers is not None and seen == self._checked_version:
            return 0
        self._ensure_index()
        target = self._db_high_water()
        added = 0
        if target > self._hwm:
            rows, _, codes = self._codes(max_row=target, min_row=self._hwm)
            self.generations.add(self._matchers, rows, codes)
            self._hwm, self._count = target, self._count + len(rows)
            added = len(rows)
            with self.lock.try_hold() as locked:
                cur = self.generations.current()
                if locked and (cur is None or cur[0] < target) and self._rows_below(target) == self._count:
                    self._save_generation(self._matchers, target, self._count)
        # other connections' commits as read *before* the checks (a later one changes it again);
        # this connection's own writes (the generation's meta rows) as they are now
        self._checked_version = (seen[0], self._conn.total_changes)
        return added

    def rebuild(self) -> int:
        """Recreate the index(es) from the codes in SQLite, from scratch (under the writer lock)."""
        with self.lock():
            target = self._db_high_water()
            m = self.generations.new()
            rows, _, codes = self._codes(max_row=target)
            self.generations.add(m, rows, codes)
            self._save_generation(m, target, len(rows))
            self._matchers, self._hwm, self._count = m, target, len(rows)
        return len(rows)

    def matchers(self) -> dict[str, Any]:
        """The in-memory matchers, checked against and synced with SQLite."""
        self.sync_index()
        return self._matchers

    # ------------------------------------------------------------------ search
    def _names(self, rows: Sequence[int]) -> dict[int, str]:
        """Row → the id a caller sees (its own id with the key, else the opaque id)."""
        rows = sorted({int(r) for r in rows if r >= 0})
        out: dict[int, str] = {}
        for i in range(0, len(rows), 900):
            chunk = rows[i:i + 900]
            q = f"SELECT row, item_id, meta FROM items WHERE row IN ({','.join('?' * len(chunk))})"
            for r, oid, sealed in self._conn.execute(q, chunk):
                out[r] = self._public(oid, self.sealer.open(oid, sealed)) if self.sealer is not None else oid
        return out

    def _rows_to_dicts(self, results: list[tuple[np.ndarray, np.ndarray]]) -> list[list[dict]]:
        names = self._names([int(r) for ids, _ in results for r in ids])
        out = []
        for ids, bers in results:  # a row removed since the index was read is dropped, never a KeyError
            hits = [(int(r), float(b)) for r, b in zip(ids, bers) if r >= 0 and int(r) in names]
            out.append([{"item_id": names[r], "row": r, "ber": b, "rank": k + 1, "span": None}
                        for k, (r, b) in enumerate(hits)])
        return out

    def _matcher_for(self, mode: str) -> Any:
        """The matcher answering search ``mode``; a mode the hash method lacks raises."""
        if mode not in self.hashing.search_modes:
            able = [n for n in hash_method_names() if mode in hash_method_class(n).mode_matcher]
            raise LibraryError(f"search mode {mode!r} needs a {' / '.join(able) or 'different'} library; this one "
                               f"holds {self.method} codes (its modes: {', '.join(self.hashing.search_modes)})")
        return self.matchers()[self.hashing.mode_matcher[mode]]

    def _query(self, codes: Any, prekeyed: bool, bits: bool = False) -> np.ndarray:
        with _library_errors():
            c = self._keyed_codes(self.hashing.bits(codes), prekeyed)
            return c if bits else self.hashing.pack(c)

    def search_topk(self, codes: Any, k: int, exact_ties: bool = True, prekeyed: bool = False) -> list[list[dict]]:
        """The k nearest stored codes per query (BER over the whole code; fixed-length methods)."""
        matcher = self._matcher_for("topk")
        exact = exact_ties and ix.index_kind(matcher.index) != "hnsw"
        ids, bers = matcher.topk(self._query(codes, prekeyed), k, exact_ties=exact)
        return self._rows_to_dicts(list(zip(ids, bers)))

    def search_threshold(self, codes: Any, ber: float, prekeyed: bool = False) -> list[list[dict]]:
        """All stored codes with ``BER < ber`` per query (fixed-length methods)."""
        return self._rows_to_dicts(self._matcher_for("threshold").search(self._query(codes, prekeyed), ber))

    def search_two_stage(self, codes: Any, k: int | None = None, ber: float | None = None,
                         prekeyed: bool = False) -> list[list[dict]]:
        """Paper B two-stage: same category as the query, then top-``k`` or ``BER(h2) < ber``."""
        if (k is None) == (ber is None):
            raise ValueError("give exactly one of k (top-k) or ber (threshold)")
        ts = self._matcher_for("two_stage")
        bits = self._query(codes, prekeyed, bits=True)
        if k is not None:
            exact = all(ix.index_kind(index) != "hnsw" for index in ts.indexes.values())
            ids, bers = ts.topk(bits, k, exact_ties=exact)
            return self._rows_to_dicts(list(zip(ids, bers)))
        return self._rows_to_dicts(ts.search(bits, ber))

    def search_keyword(self, groups: Any, gamma: float, mode: str = "keyword",
                       direction: str | None = None, prekeyed: bool = False) -> list[dict]:
        """Paper C: one query's ``(S, 27)`` groups (or uint32 words) slid over every stored
        sequence; hits with ``span = (start, end)`` in groups, sorted by (BER, item, start)."""
        matcher = self._matcher_for(mode)
        query = self._keyed_codes([np.asarray(groups)], prekeyed)[0]
        hits = matcher.search(np.asarray(query), gamma, mode=mode, direction=direction)
        names = self._names([h.item for h in hits])
        hits = [h for h in hits if h.item in names]
        return [{"item_id": names[h.item], "row": h.item, "ber": h.ber, "rank": k + 1, "span": (h.start, h.end)}
                for k, h in enumerate(hits)]

