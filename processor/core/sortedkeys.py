"""A sorted set of distinct keys with logarithmic search, for the per-customer indexes of the
journey book (a customer may hold tens of thousands of contacts in the recontact window).

A plain sorted list costs O(n) per insert or removal (memmove, and list.remove compares every
element); this keeps the keys in sublists of at most 2 x LOAD, found by bisecting the list of
their maxima (the layout of sortedcontainers.SortedList, which the core may not import: stdlib
only). A search is O(log n) comparisons; an insert or removal also moves at most 2 x LOAD keys and
n / LOAD sublist maxima, pointer copies that stay far below the comparisons up to millions of keys.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right, insort

LOAD = 256


class SortedKeys:
    __slots__ = ("_lists", "_maxes", "_len")

    def __init__(self) -> None:
        self._lists: list[list[tuple]] = []
        self._maxes: list[tuple] = []
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def add(self, key: tuple) -> None:
        """Insert key (not held yet)."""
        maxes, lists = self._maxes, self._lists
        self._len += 1
        if not maxes:
            lists.append([key])
            maxes.append(key)
            return
        pos = bisect_right(maxes, key)
        if pos == len(maxes):
            pos -= 1
            lists[pos].append(key)
            maxes[pos] = key
        else:
            insort(lists[pos], key)
        sub = lists[pos]
        if len(sub) > 2 * LOAD:
            half = sub[LOAD:]
            del sub[LOAD:]
            maxes[pos] = sub[-1]
            lists.insert(pos + 1, half)
            maxes.insert(pos + 1, half[-1])

    def discard(self, key: tuple) -> bool:
        """Remove key; False when it was not held."""
        maxes = self._maxes
        pos = bisect_left(maxes, key)
        if pos == len(maxes):
            return False
        sub = self._lists[pos]
        i = bisect_left(sub, key)
        if sub[i] != key:
            return False
        del sub[i]
        self._len -= 1
        if not sub:
            del self._lists[pos]
            del maxes[pos]
        elif i == len(sub):
            maxes[pos] = sub[-1]
        return True

    def first(self) -> tuple | None:
        return self._lists[0][0] if self._lists else None

    def before(self, key: tuple) -> tuple | None:
        """The largest key < key."""
        maxes = self._maxes
        pos = bisect_left(maxes, key)
        if pos == len(maxes):
            return maxes[-1] if maxes else None
        sub = self._lists[pos]
        i = bisect_left(sub, key)
        if i:
            return sub[i - 1]
        return self._lists[pos - 1][-1] if pos else None

    def after(self, key: tuple) -> tuple | None:
        """The smallest key > key."""
        maxes = self._maxes
        pos = bisect_right(maxes, key)
        if pos == len(maxes):
            return None
        sub = self._lists[pos]
        return sub[bisect_right(sub, key)]

    def at_or_after(self, key: tuple) -> tuple | None:
        """The smallest key >= key."""
        maxes = self._maxes
        pos = bisect_left(maxes, key)
        if pos == len(maxes):
            return None
        sub = self._lists[pos]
        return sub[bisect_left(sub, key)]

    def between(self, lo: tuple, hi: tuple) -> list[tuple]:
        """The keys k with lo < k < hi, in order."""
        out: list[tuple] = []
        maxes, lists = self._maxes, self._lists
        pos = bisect_right(maxes, lo)
        if pos == len(maxes):
            return out
        i = bisect_right(lists[pos], lo)
        while pos < len(lists):
            sub = lists[pos]
            while i < len(sub):
                k = sub[i]
                if k >= hi:
                    return out
                out.append(k)
                i += 1
            pos += 1
            i = 0
        return out
