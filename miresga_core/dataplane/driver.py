"""``SwitchDriver``: what the controller programs against, for every switch target.

A target (``XdpSwitch`` in xdp.py, the Tofino driver later) implements four primitives:
``write`` / ``delete`` / ``read`` entries of a schema table (keys and parameters as dicts
named by the schema), and ``counters``, plus ``close``. Everything above that (VIPs,
routes, offloads in both directions, front-end membership changes, cookie secrets) is
written once here in terms of those primitives and the schema, so the controller code and
its semantics are identical on every target.

Values: addresses are dotted IPv4 strings, ports host integers, MACs "aa:bb:cc:dd:ee:ff".
A batch write packs every entry first, so a bad entry refuses the batch before any change.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .. import cookie
from . import names
from .schema import LB_BUCKETS, Kind, OffloadModeId, table

__all__ = ["SwitchDriver", "rebalance"]


def rebalance(old: Sequence[int] | None, members: Iterable[int]) -> list[int]:
    """A bucket -> front-end assignment over ``members`` that keeps every bucket whose
    front-end is still a member (up to its fair share) and hands out the others so shares
    differ by at most one."""
    members = sorted(set(members))
    if not members:
        raise ValueError("at least one front-end is needed")
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


def _lb_table(which: int) -> str:
    return (names.LB_INDEX_0, names.LB_INDEX_1)[which]


class SwitchDriver(ABC):
    """A switch target. Subclasses implement the primitives; the rest is shared."""

    # ------------------------------------------------------------------ primitives

    @abstractmethod
    def write(self, table_name: str, entries: Iterable[tuple[Mapping[str, Any],
                                                          Mapping[str, Any]]]) -> int:
        """Insert or replace entries (key fields, action parameters); returns the count.
        Index tables (kind index/singleton/register) take ``{"index": n}`` as the key."""

    @abstractmethod
    def delete(self, table_name: str, keys: Iterable[Mapping[str, Any]]) -> int:
        """Delete entries by key; missing keys are ignored; returns how many existed."""

    @abstractmethod
    def read(self, table_name: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """The parameters stored under ``key``, or None."""

    @abstractmethod
    def _drop_all(self, table_name: str) -> int:
        """Delete every entry of ``table_name`` (a hash or LPM table); how many there were."""

    @abstractmethod
    def counters(self) -> dict[str, tuple[int, int]]:
        """Counter name (schema.COUNTERS) -> (packets, bytes), summed over CPUs / pipes."""

    @abstractmethod
    def close(self) -> None:
        """Release the data plane handle (a target decides whether it keeps running)."""

    # ------------------------------------------------------------------ setup

    def set_vip(self, addr: str, port: int, *, mac: str, mss: int = 1460,
                window: int = 65535, wscale: int = 7) -> None:
        """A VIP service, and ARP answers for its address with ``mac``."""
        self.write(names.VIP, [({"vip_addr": addr, "vip_port": port},
                                {"mss": mss, "window": window, "wscale": min(wscale, 14)})])
        self.write(names.VIP_ADDR, [({"addr": addr}, {"mac": mac})])

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
        """Offload client->VIP to a backend: ``offload`` and ``offload_rev`` together. The
        reverse entry goes first: a response may follow the first forwarded ACK at once."""
        self.write(names.OFFLOAD_REV, [(
            {"client_addr": client[0], "client_port": client[1],
             "backend_addr": backend[0], "backend_port": backend[1]},
            {"vip_addr": vip[0], "vip_port": vip[1]})])
        self.write(names.OFFLOAD, [(
            {"client_addr": client[0], "client_port": client[1], "vip_addr": vip[0],
             "vip_port": vip[1]},
            {"backend": backend_index, "mode": int(mode)})])

    def offload_remove(self, client: tuple[str, int], vip: tuple[str, int]) -> None:
        """Remove an offload (both directions); a missing entry is not an error."""
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

    def clear(self, table_name: str) -> int:
        """Delete every entry of a hash or LPM table; returns how many there were."""
        if table(table_name).kind not in (Kind.HASH, Kind.LPM):
            raise ValueError(f"{table_name}: only hash and LPM tables can be cleared")
        return self._drop_all(table_name)

    def offload_clear(self) -> int:
        """Drop every offload (both directions); returns how many forward entries went.

        Only the front-ends that wrote them know when an offload ends, so a controller
        that starts new front-ends (or stops them) clears what the old ones left: an
        orphaned entry would steer a reused client port's packets to a backend
        connection that no longer exists."""
        self.clear(names.OFFLOAD_REV)
        return self.clear(names.OFFLOAD)

    # ------------------------------------------------------------------ front-ends

    def lb_state(self) -> tuple[int, bool]:
        """(active lb_index table, change in progress)."""
        v = self.read(names.LB_CONTROL, {"index": 0}) or {"active": 0, "changing": 0}
        return v["active"], bool(v["changing"])

    def buckets(self, which: int | None = None) -> list[int]:
        """The bucket -> front-end assignment of an lb_index table (default: active)."""
        name = _lb_table(self.lb_state()[0] if which is None else which)
        return [(self.read(name, {"index": i}) or {"frontend": 0})["frontend"]
                for i in range(LB_BUCKETS)]

    def set_frontends(self, buckets: Sequence[int], *, drain: bool = True) -> None:
        """Install a bucket -> front-end assignment (docs/switch.md, membership changes).

        With ``drain`` the change is staged: the inactive table gets it, the Bloom filter is
        cleared and ``changing`` set, and ``finish_change`` completes it. Without, the
        active table is overwritten at once (first setup, or nothing to protect)."""
        if len(buckets) != LB_BUCKETS:
            raise ValueError(f"{len(buckets)} buckets given, the lb_index has {LB_BUCKETS}")
        active, changing = self.lb_state()
        if changing:
            raise ValueError("a front-end change is running: finish_change() first")
        target = active ^ 1 if drain else active
        self.write(_lb_table(target), [({"index": i}, {"frontend": fe})
                                       for i, fe in enumerate(buckets)])
        if drain:
            self.clear_bloom()
            self.write(names.LB_CONTROL, [({"index": 0}, {"active": active, "changing": 1})])

    def finish_change(self) -> None:
        """Make the staged table active and stop the change (one write), then clear the
        filter."""
        active, changing = self.lb_state()
        if not changing:
            raise ValueError("no front-end change is running")
        self.write(names.LB_CONTROL, [({"index": 0}, {"active": active ^ 1, "changing": 0})])
        self.clear_bloom()

    def clear_bloom(self) -> None:
        """Zero the Bloom filter (targets with a register-clear operation override this)."""
        self.write(names.BLOOM, [({"index": i}, {"bits": 0})
                                 for i in range(table(names.BLOOM).size)])

    # ------------------------------------------------------------------ cookies

    def set_cookie_secret(self, current: bytes, previous: bytes | None = None) -> None:
        """Write the 8-byte keys (index 0 signs; index 1 is the previous key, kept for
        reference) and align the switch's cookie clock to wall-clock slots."""
        entries = [({"index": 0}, dict(zip(("k0", "k1"), cookie.key_words(current),
                                           strict=True)))]
        if previous is not None:
            entries.append(({"index": 1}, dict(zip(("k0", "k1"), cookie.key_words(previous),
                                                   strict=True))))
        self.write(names.COOKIE_SECRET, entries)
        base_slot, base_ns = cookie.clock_base(self.switch_clock_ns(), time.time_ns())
        self.write(names.COOKIE_CLOCK, [({"index": 0}, {"base_slot": base_slot & 0xFFFFFFFF,
                                                        "base_ns": base_ns})])

    def switch_clock_ns(self) -> int:
        """The switch's own nanosecond clock now (XDP: CLOCK_MONOTONIC of the host; a
        Tofino driver reads the device's global timestamp)."""
        return time.monotonic_ns()

    def counter(self, name: str) -> int:
        """Packets counted under ``name``."""
        counts = self.counters()
        if name not in counts:
            raise KeyError(f"no counter {name!r}")
        return counts[name][0]
