"""``XdpSwitch``: the control side of the XDP software switch (native/xdp/switch.bpf.c).

It loads the program (built from source on demand), optionally pins every map under a
bpffs directory so other processes (``miresga lab status``, a controller) can open them,
attaches it to interfaces, and implements the ``SwitchDriver`` primitives over the maps:
entries are packed from the schema (``Table.pack_key`` / ``pack_value``), every entry of a
batch before the first map update, so a bad entry refuses the whole batch. The wrapper has
no batched map syscall, so a batch is applied one update per entry.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..bpf import BpfError, BpfObject, Map, build_object, xdp_attach, xdp_detach
from . import names
from .driver import SwitchDriver, rebalance
from .schema import COUNTERS as COUNTER_NAMES
from .schema import SCHEMA, Kind, table

__all__ = ["XdpSwitch", "rebalance"]

OBJECT = "switch"


def _index_key(i: int) -> bytes:
    return i.to_bytes(4, sys.byteorder)


class XdpSwitch(SwitchDriver):
    """The switch program and its maps. Use ``XdpSwitch.load()`` or ``from_pins()``."""

    def __init__(self, maps: Mapping[str, Map], obj: BpfObject | None = None,
                 pin_dir: Path | None = None) -> None:
        self.maps = dict(maps)
        self.obj = obj
        self.pin_dir = pin_dir
        self.attached: list[tuple[int, str]] = []

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def load(cls, *, pin_dir: str | os.PathLike[str] | None = None,
             object_path: str | os.PathLike[str] | None = None) -> XdpSwitch:
        """Build (if needed) and load the program; with ``pin_dir``, reuse maps pinned
        there by an earlier load and pin any that are not."""
        path = object_path or build_object(OBJECT)
        obj = BpfObject.open(path)
        pins = Path(pin_dir) if pin_dir is not None else None
        try:
            if pins is not None:
                for t in SCHEMA:
                    if (pins / t.name).exists():
                        obj.reuse_map(t.name, pins / t.name)
            obj.load()
            maps = {t.name: obj.map(t.name) for t in SCHEMA}
            if pins is not None:
                pins.mkdir(parents=True, exist_ok=True)
                for name, m in maps.items():
                    if not (pins / name).exists():
                        m.pin(pins / name)
        except BaseException:
            obj.close()
            raise
        return cls(maps, obj, pins)

    @classmethod
    def from_pins(cls, pin_dir: str | os.PathLike[str]) -> XdpSwitch:
        """Open the maps a running switch pinned (no program: entries and counters only)."""
        pins = Path(pin_dir)
        maps: dict[str, Map] = {}
        try:
            for t in SCHEMA:
                maps[t.name] = Map.from_pinned(pins / t.name)
        except BaseException:
            for m in maps.values():
                m.close()
            raise
        return cls(maps, None, pins)

    @property
    def program_fd(self) -> int:
        if self.obj is None:
            raise ValueError("opened from pins: no program to attach")
        return self.obj.program(names.PROGRAM).fd

    def attach(self, ifindex: int, mode: str = "native") -> None:
        """Attach to an interface of the calling thread's network namespace."""
        xdp_attach(ifindex, self.program_fd, mode, replace=True)
        self.attached.append((ifindex, mode))

    def detach_all(self) -> None:
        for ifindex, mode in reversed(self.attached):
            try:
                xdp_detach(ifindex, mode)
            except BpfError as exc:
                if exc.errno not in (errno.ENODEV, errno.EINVAL):
                    raise
        self.attached.clear()

    def close(self) -> None:
        self.detach_all()
        for m in self.maps.values():
            m.close()  # no-op for maps owned by the object
        if self.obj is not None:
            self.obj.close()
            self.obj = None

    def __enter__(self) -> XdpSwitch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ generic writes

    def _pack_key(self, name: str, key: Mapping[str, Any]) -> bytes:
        t = table(name)
        if t.kind in (Kind.HASH, Kind.LPM):
            return t.pack_key(**key)
        (index,) = key.values() if len(key) == 1 else (None,)
        if not isinstance(index, int) or not 0 <= index < t.size:
            raise ValueError(f"{name}: index key {dict(key)} out of range 0..{t.size - 1}")
        return _index_key(index)

    def _pack_value(self, name: str, params: Mapping[str, Any]) -> bytes:
        t = table(name)
        if t.kind is Kind.COUNTER:
            raise ValueError(f"{name}: counters are written by the data plane")
        return t.pack_value(**params)

    def write(self, table_name: str, entries: Iterable[tuple[Mapping[str, Any],
                                                          Mapping[str, Any]]]) -> int:
        packed = [(self._pack_key(table_name, k), self._pack_value(table_name, v))
                  for k, v in entries]
        m = self.maps[table_name]
        for k, v in packed:
            m.update(k, v)
        return len(packed)

    def delete(self, table_name: str, keys: Iterable[Mapping[str, Any]]) -> int:
        packed = [self._pack_key(table_name, k) for k in keys]
        m = self.maps[table_name]
        return sum(m.delete(k) for k in packed)

    def read(self, table_name: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        raw = self.maps[table_name].lookup(self._pack_key(table_name, key))
        return None if raw is None else table(table_name).unpack_value(raw)

    def _drop_all(self, table_name: str) -> int:
        return self.maps[table_name].clear()

    # ------------------------------------------------------------------ XDP only

    def set_port(self, port: int, ifindex: int) -> None:
        """Switch port -> interface (tx_port devmap). The ifindex is resolved in the
        calling thread's network namespace."""
        self.maps[names.TX_PORT].update(_index_key(port), _index_key(ifindex))

    def clear_bloom(self) -> None:
        m = self.maps[names.BLOOM]
        zero = bytes(4)
        for i in range(m.max_entries):
            m.update(_index_key(i), zero)

    def buckets(self, which: int | None = None) -> list[int]:
        name = (names.LB_INDEX_0, names.LB_INDEX_1)[self.lb_state()[0] if which is None
                                                    else which]
        m = self.maps[name]
        return [(m.lookup(_index_key(i)) or b"\0")[0] for i in range(m.max_entries)]

    # ------------------------------------------------------------------ counters

    def counters(self) -> dict[str, tuple[int, int]]:
        m = self.maps[names.COUNTERS]
        out = {}
        for i, (name, _doc) in enumerate(COUNTER_NAMES):
            slots = m.lookup_percpu(_index_key(i)) or []
            pk = sum(int.from_bytes(s[:8], sys.byteorder) for s in slots)
            by = sum(int.from_bytes(s[8:16], sys.byteorder) for s in slots)
            out[name] = (pk, by)
        return out
