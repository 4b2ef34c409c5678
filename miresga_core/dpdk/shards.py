"""The multi-lcore front-end as a model: N machines behind the steering of
native/dpdk/fe/fe_steer.h, which is what ``miresga-fe`` runs with N lcores (one machine,
flow table, counter set and timer list per lcore; each packet handled by the lcore that
owns its client endpoint). ``Sharded`` has the machine interface (``receive``,
``expire``, ``next_deadline``, ``oldest_ns``, ``counters``), so the same traces and tests
run on it, with reference machines or C ones behind it.

The key: a packet to a VIP comes from the client (source); any other packet the machine
takes comes from a backend leg and is addressed to the client (destination: the forged
connection's source is the client). The hash is the C one (``steer_client`` calls it).
"""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from ..api import Address
from ..cookie import CookieSecrets
from ..frontend.state import Action, Transmit
from .cfe import steer_client

__all__ = ["Sharded", "flow_of", "steer"]


def _endpoints(raw: bytes) -> tuple[Address, Address]:
    src, dst = (str(ipaddress.IPv4Address(raw[i:i + 4])) for i in (12, 16))
    sport, dport = struct.unpack_from("!HH", raw, 20)
    return Address(src, sport), Address(dst, dport)


def client_of(raw: bytes, vips: Iterable[Address]) -> Address | None:
    """The client endpoint of a received packet (mfe_steer's key), None when the machine
    would not parse it."""
    if len(raw) < 40 or raw[0] != 0x45 or raw[9] != 6:
        return None
    src, dst = _endpoints(raw)
    return src if dst in vips else dst


def steer(raw: bytes, vips: Iterable[Address], shards: int) -> int:
    """mfe_steer: the owner shard of a received packet, -1 when any shard may take it."""
    client = client_of(raw, vips)
    return -1 if client is None else steer_client(client, shards)


def flow_of(action: Action, vips: Iterable[Address]) -> Address:
    """The client endpoint an output belongs to: packets to a client come from a VIP,
    packets to a backend (forged SYN, requests, RST to an old leg) carry the client as
    source; offload requests name it."""
    if isinstance(action, Transmit):
        src, dst = _endpoints(action.packet)
        return dst if src in vips else src
    return action.client


class Sharded:
    """``machines[i]`` is shard i; a packet goes to its owner (shard 0 when any may take
    it, as the lcore that received it would), timers run on every shard in order."""

    def __init__(self, machines: Sequence[Any], vips: Iterable[Address]) -> None:
        self.machines = list(machines)
        self.vips = frozenset(vips)
        self.last_shard = 0

    def shard_of(self, raw: bytes) -> int:
        return max(0, steer(raw, self.vips, len(self.machines)))

    def receive(self, raw: bytes, now_ns: int) -> list[Action]:
        self.last_shard = self.shard_of(raw)
        return list(self.machines[self.last_shard].receive(raw, now_ns))

    def expire(self, now_ns: int) -> list[Action]:
        return [a for m in self.machines for a in m.expire(now_ns)]

    def next_deadline(self) -> int | None:
        return min((d for m in self.machines if (d := m.next_deadline()) is not None),
                   default=None)

    def oldest_ns(self) -> int | None:
        return min((t for m in self.machines if (t := m.oldest_ns()) is not None),
                   default=None)

    def set_secrets(self, secrets: CookieSecrets) -> None:
        for m in self.machines:
            m.set_secrets(secrets)

    @property
    def counters(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for m in self.machines:
            total.update(m.counters)
        return +total
