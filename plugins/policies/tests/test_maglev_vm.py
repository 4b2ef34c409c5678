"""The Maglev table as VM data: a rule program that hashes the key (``hash``) and reads the
table (``tlook``) picks what ``ConsistentHash.pick`` picks, in the Python VM and the C VM.

The program is assembled by hand here: wiring ``Policy.compile`` into the listener compiler
waits for that API on main (docs/policies.md says so), but the table and the hash are
already the ones a compiled form uses.
"""

from __future__ import annotations

import pytest
from miresga_policies.consistent_hash import ConsistentHash, MaglevOptions, request_key

from miresga_core import Address, Backend, RequestHead
from miresga_core.bytecode import load, native
from miresga_core.bytecode.asm import assemble

VMS = ["python"] + (["c"] if native.available() else [])


def program(table: list[int]):
    return assemble(f"""
.table ring {' '.join(map(str, table))}
.pool p "p"
.decision d0 p splice ""
        hash r4, s0
        tlook r5, r4, ring
        setf backend, r5
        route d0
""")


@pytest.mark.parametrize("vm", VMS)
@pytest.mark.parametrize(("size", "key"), [(65537, "client"), (1009, "header:x-user"),
                                           (131071, "path")])
def test_vm_picks_like_python(vm: str, size: int, key: str) -> None:
    backends = [Backend(Address("10.0.0.1", 9000 + i), weight=1 + i % 3, name=f"b{i}", index=i)
                for i in range(7)]
    live = [b for b in backends if b.index != 3]  # a down backend: the table of the others
    policy = ConsistentHash(live, MaglevOptions(key=key, table_size=size))
    runner = load(program(policy.index_table()), prefer=vm)
    assert type(runner).__name__ == ("CVM" if vm == "c" else "PyVM")
    for i in range(500):
        head = RequestHead(method="GET", target=f"/p/{i}", path=f"/p/{i}", query="", host="h",
                           headers=(("x-user", f"user-{i * 7919}"),))
        client = Address(f"192.0.2.{i % 250}", 40000 + i)
        data = request_key(key, head, client)
        outcome = runner.run(data)
        assert outcome.kind == "route"
        assert outcome.backend == policy.pick(head, client).index


CONFIG = """
[[listeners]]
name = "web"
listen = "127.0.0.1:21995"
default_pool = "carts"
[[listeners.routes]]
pool = "static"
match = { path = { prefix = "/static/" } }
[pools.carts]
policy = "consistent-hash"
options = { table_size = 4093 }
backends = [{ address = "127.0.0.1:21981", name = "c1" },
            { address = "127.0.0.1:21982", name = "c2", weight = 2 },
            { address = "127.0.0.1:21983", name = "c3" }]
[pools.static]
policy = "consistent-hash"
options = { key = "path" }
backends = [{ address = "127.0.0.1:21984" }]
"""


@pytest.mark.parametrize("vm", VMS)
def test_compiled_listener_picks_like_python(vm: str) -> None:
    """Policy.compile through the listener compiler: key = client uses r0 = key_hash(ip)."""
    from miresga_policies.keyhash import key_hash

    from miresga_core.bytecode.compiler import compile_listener
    from miresga_core.config import parse_config
    from miresga_core.plugins import get_plugin_manager, registry_from
    from miresga_core.routing import PoolState

    registry = registry_from(get_plugin_manager())
    config = parse_config(CONFIG, registry)
    program = compile_listener(config, "web", registry)
    runner = load(program, prefer=vm)
    carts = PoolState(config.pools["carts"], registry.policies["consistent-hash"])
    for i in range(300):
        client = Address(f"198.51.{i // 200}.{i % 200}", 1000 + i)
        request = f"GET /cart/{i} HTTP/1.1\r\nHost: shop\r\n\r\n".encode()
        outcome = runner.run(request, [key_hash(client.host.encode())])
        assert outcome.kind == "route"
        head = RequestHead(method="GET", target="/", path=f"/cart/{i}", query="", host="shop",
                           headers=())
        assert outcome.backend == carts.pick(head, client, frozenset(), 0.0).index
    # key = path is compiled too (one backend here)
    outcome = runner.run(b"GET /static/a.css HTTP/1.1\r\nHost: shop\r\n\r\n", [0])
    assert outcome.kind == "route" and outcome.backend == 0


FIELD_CONFIG = """
[[listeners]]
name = "web"
listen = "127.0.0.1:21995"
default_pool = "by-path"
[[listeners.routes]]
pool = "by-user"
match = { path = { prefix = "/u/" } }
[[listeners.routes]]
pool = "tenants"
match = { path = { prefix = "/t/" } }
[pools.by-path]
policy = "consistent-hash"
options = { key = "path", table_size = 1021 }
backends = [{ address = "127.0.0.1:21981", name = "p1" }, { address = "127.0.0.1:21982" },
            { address = "127.0.0.1:21983", name = "p3", weight = 3 }]
[pools.by-user]
policy = "consistent-hash"
options = { key = "header:x-user", table_size = 2053 }
backends = [{ address = "127.0.0.1:21984", name = "u1" }, { address = "127.0.0.1:21985" }]
[pools.tenants]
policy = "header-match"
backends = [{ address = "127.0.0.1:21986", name = "t1" },
            { address = "127.0.0.1:21987", name = "t2" },
            { address = "127.0.0.1:21988", name = "t3" }]
[pools.tenants.options]
header = "x-tenant"
exact = { acme = "t1", "beta-x" = "t3" }
prefix = { "beta-" = "t2", "b" = "t3" }
fallback = "none"
"""


@pytest.mark.parametrize("vm", VMS)
def test_compiled_request_field_policies(vm: str) -> None:
    """Maglev on path and on a header, and header-match, compiled == Python, both VMs."""
    from miresga_http1 import Http1Parser
    from miresga_policies.keyhash import key_hash

    from miresga_core.bytecode.compiler import compile_listener
    from miresga_core.config import parse_config
    from miresga_core.plugins import get_plugin_manager, registry_from
    from miresga_core.routing import PoolState, Router

    registry = registry_from(get_plugin_manager())
    config = parse_config(FIELD_CONFIG, registry)
    runner = load(compile_listener(config, "web", registry), prefer=vm)
    pools = {n: PoolState(p, registry.policies[p.policy]) for n, p in config.pools.items()}
    router = Router(config.listeners[0], pools)
    parser = Http1Parser()
    requests = []
    for i in range(120):
        requests.append(f"GET /p/{i}/?q={i * i} HTTP/1.1\r\nHost: h\r\n\r\n")
        requests.append(f"GET /u/x HTTP/1.1\r\nHost: h\r\nX-User:  us\xe9r-{i} \r\n\r\n")
        requests.append("GET /u/anon HTTP/1.1\r\nHost: h\r\n\r\n")  # no header: client hash
    for tenant in ("acme", "beta-x", "beta-y", "bz", "b", "ACME", "other", None):
        extra = f"X-Tenant: {tenant}\r\n" if tenant is not None else ""
        requests.append(f"GET /t/ HTTP/1.1\r\nHost: h\r\n{extra}\r\n")
    client = Address("203.0.113.9", 5555)
    for text in requests:
        data = text.encode("latin-1")
        head = parser.parse_head(data)
        assert isinstance(head, RequestHead), head
        outcome = runner.run(data, [key_hash(client.host.encode())])
        assert outcome.kind == "route", (text, outcome)
        expected = router.route(head, client)
        got = expected.backend.index if expected.backend is not None else -1
        assert outcome.backend == got, (text, outcome, expected)


@pytest.mark.parametrize("vm", VMS)
def test_compiled_header_match_round_robin_fallback(vm: str) -> None:
    from miresga_policies.round_robin import smooth_weighted_schedule

    from miresga_core.bytecode.compiler import compile_listener
    from miresga_core.config import parse_config
    from miresga_core.plugins import get_plugin_manager, registry_from

    registry = registry_from(get_plugin_manager())
    text = FIELD_CONFIG.replace('fallback = "none"', 'fallback = "round-robin"')
    runner = load(compile_listener(parse_config(text, registry), "web", registry), prefer=vm)
    schedule = smooth_weighted_schedule([1, 1, 1])
    for seq in range(7):
        out = runner.run(b"GET /t/ HTTP/1.1\r\nHost: h\r\nX-Tenant: zzz\r\n\r\n", [0, seq])
        assert out.backend == schedule[seq % len(schedule)]
        out = runner.run(b"GET /t/ HTTP/1.1\r\nHost: h\r\nX-Tenant: acme\r\n\r\n", [0, seq])
        assert out.backend == 0
