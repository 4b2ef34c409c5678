"""``MemorySwitch``: a switch target that keeps its tables in memory.

It implements the ``SwitchDriver`` primitives with the same packing and the same refusals
as the real targets (unknown table, key or parameter names, out-of-range values, a full
table), so controller logic can be tested and exercised without root or a switch. It
forwards no packets and its counters stay zero.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Mapping
from typing import Any

from .driver import SwitchDriver
from .schema import COUNTERS, SCHEMA, Kind, table

__all__ = ["MemorySwitch"]

_INDEXED = (Kind.INDEX, Kind.SINGLETON, Kind.REGISTER, Kind.COUNTER, Kind.DEVMAP)


class MemorySwitch(SwitchDriver):
    def __init__(self) -> None:
        self.tables: dict[str, dict[bytes, bytes]] = {t.name: {} for t in SCHEMA}

    def _key(self, name: str, key: Mapping[str, Any]) -> bytes:
        t = table(name)
        if t.kind in _INDEXED:
            if set(key) != {"index"} or not 0 <= key["index"] < t.size:
                raise ValueError(f"{name}: index key {dict(key)} out of range 0..{t.size - 1}")
            return int(key["index"]).to_bytes(4, "little")
        return t.pack_key(**key)

    def write(self, table_name: str, entries: Iterable[tuple[Mapping[str, Any],
                                                          Mapping[str, Any]]]) -> int:
        t = table(table_name)
        if t.kind is Kind.COUNTER:
            raise ValueError(f"{table_name}: counters are written by the data plane")
        packed = [(self._key(table_name, k), t.pack_value(**v)) for k, v in entries]
        store = self.tables[table_name]
        new = {k for k, _v in packed if k not in store}
        if len(store) + len(new) > t.size:
            raise OSError(errno.E2BIG, f"{table_name}: table full ({t.size} entries)")
        store.update(packed)
        return len(packed)

    def delete(self, table_name: str, keys: Iterable[Mapping[str, Any]]) -> int:
        packed = [self._key(table_name, k) for k in keys]
        store = self.tables[table_name]
        return sum(store.pop(k, None) is not None for k in packed)

    def read(self, table_name: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        raw = self.tables[table_name].get(self._key(table_name, key))
        return None if raw is None else table(table_name).unpack_value(raw)

    def _drop_all(self, table_name: str) -> int:
        store = self.tables[table_name]
        count = len(store)
        store.clear()
        return count

    def counters(self) -> dict[str, tuple[int, int]]:
        return {name: (0, 0) for name, _doc in COUNTERS}

    def close(self) -> None:
        self.tables = {t.name: {} for t in SCHEMA}
