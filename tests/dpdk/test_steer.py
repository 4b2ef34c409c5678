"""The multi-lcore steering (native/dpdk/fe/fe_steer.c, through libmfe.so): both
directions of every connection go to the same shard, flows spread evenly, what the
machine cannot parse may go anywhere, and the Python model's steering is the C one."""

from __future__ import annotations

import random
from collections import Counter

import tracegen

from bench.fe_world import COOKIE_KEY, VIP
from miresga_core import cookie
from miresga_core.api import Address
from miresga_core.dpdk.cfe import CFrontend, steer_client
from miresga_core.dpdk.shards import steer
from miresga_core.frontend.packet import ACK, SYN, Segment

BACKENDS = [Address(f"10.0.2.{i}", 8080) for i in (1, 2, 3, 4)]


def _cf(registry) -> CFrontend:
    return CFrontend(tracegen.fe_config(), {VIP: tracegen.decider(registry)},
                     cookie.CookieSecrets(COOKIE_KEY))


def _seg(src: Address, dst: Address, flags: int = ACK, payload: bytes = b"") -> bytes:
    return Segment(src.host, dst.host, src.port, dst.port, 1, 2, flags, 65535,
                   payload=payload).encode()


def _clients(rng: random.Random, n: int) -> list[Address]:
    return [Address(f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                    rng.randrange(1024, 65536)) for _ in range(n)]


def test_both_directions_of_a_flow_meet_in_one_shard(registry):
    cf = _cf(registry)
    rng = random.Random(1)
    for shards in (2, 3, 4, 8):
        seen = set()
        for client in _clients(rng, 2000):
            backend = rng.choice(BACKENDS)
            up = cf.steer(_seg(client, VIP, ACK, b"GET / HTTP/1.1\r\n\r\n"), shards)
            # the backend's side of the forged connection: its SYN-ACK and data
            down = cf.steer(_seg(backend, client, SYN | ACK), shards)
            data = cf.steer(_seg(backend, client, ACK, b"HTTP/1.1 200 OK\r\n\r\n"), shards)
            assert up == down == data == steer_client(client, shards), (client, backend)
            assert 0 <= up < shards
            seen.add(up)
        assert seen == set(range(shards))


def test_flows_spread_evenly(registry):
    rng = random.Random(2)
    # random clients, and one client address with consecutive source ports (a NAT or a
    # single load generator: the common worst case for a weak hash)
    populations = {"random": _clients(rng, 40_000),
                   "ports": [Address("10.1.0.7", p) for p in range(20_000, 60_000)]}
    for name, clients in populations.items():
        for shards in (2, 3, 4, 8):
            count = Counter(steer_client(c, shards) for c in clients)
            mean = len(clients) / shards
            worst = max(abs(count[i] - mean) / mean for i in range(shards))
            assert worst < 0.04, (name, shards, count)


def test_one_shard_and_unparseable_packets(registry):
    cf = _cf(registry)
    client = Address("10.0.1.9", 40000)
    assert cf.steer(_seg(client, VIP), 1) == 0
    good = _seg(client, VIP)
    assert cf.steer(good[:39], 2) == -1              # too short for IPv4 + TCP
    assert cf.steer(b"\x46" + good[1:], 2) == -1     # IP options: the machine refuses it
    assert cf.steer(good[:9] + b"\x11" + good[10:], 2) == -1  # UDP
    assert cf.steer(b"", 2) == -1


def test_python_model_steers_like_c(registry):
    """miresga_core.dpdk.shards.steer (the model the sharded differential tests run) gives
    mfe_steer's answer for every packet of generated traces, garbage included."""
    cf = _cf(registry)
    packets = [bytes.fromhex(e["in"]) for seed in (0, 1)
               for e in tracegen.generate(registry, seed, 300) if "in" in e]
    assert len(packets) > 300
    for shards in (2, 3):
        owners = [cf.steer(raw, shards) for raw in packets]
        assert owners == [steer(raw, [VIP], shards) for raw in packets]
        assert len(set(owners) - {-1}) == shards
