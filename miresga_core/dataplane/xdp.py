"""``XdpSwitch``: the control side of the XDP software switch (native/xdp/switch.bpf.c).

It loads the program (built from source on demand), optionally pins every map under a
bpffs directory so other processes (``miresga lab status``, a controller) can open them,
attaches it to interfaces, and writes table entries packed from the schema. Every write
packs all entries first, so a bad entry refuses the whole batch before any map changes.

Front-end membership changes follow schema.LB_CONTROL: ``set_frontends(buckets)`` writes
the new assignment into the inactive lb_index table and starts the change (SYNs arriving
now are remembered in the Bloom filter and their flows use the new table at once); after
the flows that started before the change are offloaded or gone, ``finish_change`` makes
the new table active and clears the filter.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import cookie
from ..bpf import BpfError, BpfObject, Map, build_object, xdp_attach, xdp_detach
from . import names
from .schema import COUNTERS as COUNTER_NAMES
from .schema import (
    LB_BUCKETS,
    SCHEMA,
    Kind,
    OffloadModeId,
    SwitchDriver,
    counter_index,
    table,
)

__all__ = ["XdpSwitch", "rebalance"]

OBJECT = "switch"


def rebalance(old: Sequence[int] | None, members: Sequence[int]) -> list[int]:
    """A bucket -> front-end assignment over ``members`` that keeps every bucket whose
    front-end is still a member (up to its fair share) and hands out the others so shares
    differ by at most one."""
    if not members:
        raise ValueError("at least one front-end is needed")
    members = sorted(set(members))
    quota = {m: LB_BUCKETS // len(members) + (i < LB_BUCKETS % len(members))
             for i, m in enumerate(members)}
    out = [-1] * LB_BUCKETS
    for i, fe in enumerate(old or ()):
        if fe in quota and quota[fe] > 0:
            out[i] = fe
            quota[fe] -= 1
    # interleave the free buckets: CRC buckets of nearby ports share high bits, so whole
    # ranges of buckets per front-end would give neighbouring clients one front-end
    spare: list[int] = []
    while any(quota.values()):
        for m in members:
            if quota[m] > 0:
                spare.append(m)
                quota[m] -= 1
    free = iter(spare)
    return [fe if fe >= 0 else next(free) for fe in out]


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

    # ------------------------------------------------------------------ switch setup

    def set_vip(self, addr: str, port: int, *, mac: str, mss: int = 1460,
                window: int = 65535, wscale: int = 7) -> None:
        """A VIP service (and ARP for its address)."""
        self.write(names.VIP, [({"vip_addr": addr, "vip_port": port},
                                {"mss": mss, "window": window, "wscale": min(wscale, 14)})])
        self.write(names.VIP_ADDR, [({"addr": addr}, {"mac": mac})])

    def set_port(self, port: int, ifindex: int) -> None:
        self.maps[names.TX_PORT].update(_index_key(port), _index_key(ifindex))

    def set_route(self, prefix: str, port: int, *, smac: str, dmac: str) -> None:
        addr, _, plen = prefix.partition("/")
        self.write(names.ROUTE, [({"prefixlen": int(plen or 32), "dst": addr},
                                  {"port": port, "smac": smac, "dmac": dmac})])

    def set_frontend(self, index: int, addr: str) -> None:
        self.write(names.FRONTEND, [({"index": index}, {"addr": addr})])

    def set_backend(self, index: int, addr: str, port: int) -> None:
        self.write(names.BACKEND, [({"index": index}, {"addr": addr, "port": port})])
        self.write(names.BACKEND_ADDR, [({"addr": addr, "port": port}, {"index": index})])

    # ------------------------------------------------------------------ offloads

    def offload_add(self, client: tuple[str, int], vip: tuple[str, int], backend_index: int,
                    backend: tuple[str, int], mode: OffloadModeId) -> None:
        # the reverse entry first: backend -> client packets may follow the first ACK
        self.write(names.OFFLOAD_REV, [(
            {"client_addr": client[0], "client_port": client[1],
             "backend_addr": backend[0], "backend_port": backend[1]},
            {"vip_addr": vip[0], "vip_port": vip[1]})])
        self.write(names.OFFLOAD, [(
            {"client_addr": client[0], "client_port": client[1], "vip_addr": vip[0],
             "vip_port": vip[1]},
            {"backend": backend_index, "mode": int(mode)})])

    def offload_remove(self, client: tuple[str, int], vip: tuple[str, int]) -> None:
        key = {"client_addr": client[0], "client_port": client[1], "vip_addr": vip[0],
               "vip_port": vip[1]}
        entry = self.read(names.OFFLOAD, key)
        self.delete(names.OFFLOAD, [key])
        if entry is None:
            return
        b = self.read(names.BACKEND, {"index": entry["backend"]})
        if b is not None:
            self.delete(names.OFFLOAD_REV, [{
                "client_addr": client[0], "client_port": client[1],
                "backend_addr": b["addr"], "backend_port": b["port"]}])

    # ------------------------------------------------------------------ front-ends

    def lb_state(self) -> tuple[int, bool]:
        v = self.read(names.LB_CONTROL, {"index": 0}) or {"active": 0, "changing": 0}
        return v["active"], bool(v["changing"])

    def buckets(self, which: int | None = None) -> list[int]:
        """The bucket -> front-end assignment of an lb_index table (default: active)."""
        name = (names.LB_INDEX_0, names.LB_INDEX_1)[self.lb_state()[0] if which is None
                                                    else which]
        m = self.maps[name]
        return [(m.lookup(_index_key(i)) or b"\0")[0] for i in range(LB_BUCKETS)]

    def set_frontends(self, buckets: Sequence[int], *, drain: bool = True) -> None:
        if len(buckets) != LB_BUCKETS:
            raise ValueError(f"{len(buckets)} buckets given, the lb_index has {LB_BUCKETS}")
        active, changing = self.lb_state()
        if changing:
            raise ValueError("a front-end change is running: finish_change() first")
        target = active ^ 1 if drain else active
        name = (names.LB_INDEX_0, names.LB_INDEX_1)[target]
        self.write(name, [({"index": i}, {"frontend": fe}) for i, fe in enumerate(buckets)])
        if drain:
            self._clear_bloom()
            self.write(names.LB_CONTROL, [({"index": 0}, {"active": active, "changing": 1})])

    def finish_change(self) -> None:
        active, changing = self.lb_state()
        if not changing:
            raise ValueError("no front-end change is running")
        self.write(names.LB_CONTROL, [({"index": 0}, {"active": active ^ 1, "changing": 0})])
        self._clear_bloom()

    def _clear_bloom(self) -> None:
        m = self.maps[names.BLOOM]
        zero = bytes(4)
        for i in range(m.max_entries):
            m.update(_index_key(i), zero)

    # ------------------------------------------------------------------ cookies, counters

    def set_cookie_secret(self, current: bytes, previous: bytes | None = None) -> None:
        entries = [({"index": 0}, dict(zip(("k0", "k1"), cookie.key_words(current),
                                           strict=True)))]
        if previous is not None:
            entries.append(({"index": 1}, dict(zip(("k0", "k1"), cookie.key_words(previous),
                                                   strict=True))))
        self.write(names.COOKIE_SECRET, entries)
        base_slot, base_ns = cookie.clock_base(time.monotonic_ns(), time.time_ns())
        self.write(names.COOKIE_CLOCK, [({"index": 0},
                                         {"base_slot": base_slot & 0xFFFFFFFF,
                                          "base_ns": base_ns})])

    def counters(self) -> dict[str, tuple[int, int]]:
        m = self.maps[names.COUNTERS]
        out = {}
        for i, (name, _doc) in enumerate(COUNTER_NAMES):
            slots = m.lookup_percpu(_index_key(i)) or []
            pk = sum(int.from_bytes(s[:8], sys.byteorder) for s in slots)
            by = sum(int.from_bytes(s[8:16], sys.byteorder) for s in slots)
            out[name] = (pk, by)
        return out

    def counter(self, name: str) -> int:
        """Packets counted under ``name`` (schema.COUNTERS)."""
        counter_index(name)
        return self.counters()[name][0]
