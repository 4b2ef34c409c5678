"""Header-match: exact and longest-prefix maps to backend names, fallback, config checks."""

from __future__ import annotations

import pytest
from miresga_policies.header_match import HeaderMatch, HeaderMatchOptions

from miresga_core import Address, Backend, ConfigError, RequestHead
from miresga_core.config import parse_config
from miresga_core.plugins import get_plugin_manager, registry_from
from miresga_core.routing import PoolState


def pool() -> list[Backend]:
    return [Backend(Address("10.0.0.1", 8000 + i), name=n, index=i)
            for i, n in enumerate(["t1", "t2", "t3", "spare"])]


def head(tenant: str | None) -> RequestHead:
    headers = (("x-tenant", tenant),) if tenant is not None else ()
    return RequestHead(method="GET", target="/", path="/", query="", host="h", headers=headers)


OPTS = HeaderMatchOptions(header="x-tenant", exact={"acme": "t1", "beta-x": "t3"},
                          prefix={"beta-": "t2", "be": "t3"}, fallback="none")


def test_exact_beats_prefix_and_longest_prefix_wins() -> None:
    policy = HeaderMatch(pool(), OPTS)
    assert policy.pick(head("acme"), None).name == "t1"
    assert policy.pick(head("beta-x"), None).name == "t3"  # exact wins over prefix beta-
    assert policy.pick(head("beta-y"), None).name == "t2"  # longest prefix
    assert policy.pick(head("bex"), None).name == "t3"
    assert policy.pick(head("ACME"), None) is None  # values are case-sensitive
    assert policy.pick(head(None), None) is None


def test_fallback_round_robin_over_live_backends() -> None:
    opts = HeaderMatchOptions(header="x-tenant", exact={"acme": "t1"})
    policy = HeaderMatch(pool(), opts)
    picks = [policy.pick(head("other"), None).name for _ in range(8)]
    assert sorted(set(picks)) == ["spare", "t1", "t2", "t3"]


def test_down_or_excluded_backend_takes_fallback() -> None:
    opts = HeaderMatchOptions(header="x-tenant", exact={"acme": "t1"}, fallback="consistent-hash")
    live = [b for b in pool() if b.name != "t1"]
    policy = HeaderMatch(live, opts)
    assert policy.pick(head("acme"), Address("10.2.2.2", 1)).name != "t1"
    full = HeaderMatch(pool(), opts)
    assert full.pick(head("acme"), None, frozenset({0})).name != "t1"


def _config(options: str) -> str:
    return f"""
[[listeners]]
name = "l"
listen = "127.0.0.1:21999"
default_pool = "p"
[pools.p]
policy = "header-match"
options = {options}
backends = [{{ address = "127.0.0.1:21998", name = "t1" }}, {{ address = "127.0.0.1:21997" }}]
"""


@pytest.fixture(scope="module")
def registry():
    return registry_from(get_plugin_manager())


def test_config_and_pool_state(registry) -> None:
    cfg = parse_config(_config('{ header = "X-Tenant", exact = { a = "t1" }, '
                               'prefix = { "b" = "127.0.0.1:21997" } }'), registry)
    state = PoolState(cfg.pools["p"], registry.policies["header-match"])
    assert state.pick(head("a"), None, frozenset(), 0.0).name == "t1"
    assert state.pick(head("bb"), None, frozenset(), 0.0).index == 1
    state.set_up(0, False)
    assert state.pick(head("a"), None, frozenset(), 0.0).index == 1  # fallback while down
    state.set_up(0, True)
    assert state.pick(head("a"), None, frozenset(), 0.0).name == "t1"


@pytest.mark.parametrize(("options", "problem"), [
    ('{ header = "x", exact = { a = "nope" } }', "names backend 'nope'"),
    ('{ exact = { a = "t1" } }', "missing required key 'header'"),
    ('{ header = "x y" }', "header name"),
    ('{ header = "x", prefix = { a = 3 } }', "expected a backend name"),
    ('{ header = "x", fallback = "random" }', "must be one of"),
])
def test_config_refuses(registry, options: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_config(_config(options), registry)
