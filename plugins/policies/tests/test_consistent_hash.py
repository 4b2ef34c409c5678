"""Maglev consistent hashing: table balance, minimal disruption, keys, options validation."""

from __future__ import annotations

import numpy as np
import pytest
from maglev_numbers import key_hashes, keys, measure, pool
from miresga_policies.consistent_hash import (
    ConsistentHash,
    MaglevOptions,
    is_prime,
    maglev_table,
    request_key,
)
from miresga_policies.keyhash import key_hash

from miresga_core import Address, Backend, ConfigError, RequestHead
from miresga_core.config import parse_config
from miresga_core.plugins import get_plugin_manager, registry_from


def head(path: str = "/", headers: tuple[tuple[str, str], ...] = ()) -> RequestHead:
    return RequestHead(method="GET", target=path, path=path, query="", host="h",
                       headers=headers)


def test_numpy_hash_matches_python_hash() -> None:
    data = keys(2000)
    vec = key_hashes(data)
    for i in range(0, 2000, 97):
        assert int(vec[i]) == key_hash(bytes(data[i]))


def test_maglev_numbers_n10() -> None:
    m = measure(n_backends=10, n_keys=1_000_000, size=65537)
    # removing one of 10 backends remaps about 1/N of the keys: its own ~10% plus a little
    assert 0.09 < m["remapped_fraction"] < 0.115, m
    assert m["remapped_other_fraction"] < 0.01, m
    # the most loaded backend is within 1% of the mean over 1e6 keys
    assert m["max_over_mean"] < 1.01, m
    assert m["slots_max"] - m["slots_min"] <= 1, m


def test_table_is_full_and_balanced_for_small_prime() -> None:
    table = maglev_table(["a", "b", "c"], [1, 1, 1], 101)
    assert -1 not in table and len(table) == 101
    assert sorted(np.bincount(table).tolist()) == [33, 34, 34]


def test_weights_are_proportional() -> None:
    table = maglev_table(["a", "b"], [3, 1], 65537)
    share = table.count(0) / len(table)
    assert abs(share - 0.75) < 0.001


def test_permutation_depends_on_names_not_positions() -> None:
    backends = pool(5)
    a = ConsistentHash(backends).index_table()
    b = ConsistentHash(list(reversed(backends))).index_table()
    assert a == b


def test_keys_client_header_cookie_path() -> None:
    client = Address("192.0.2.7", 5555)
    req = head("/p/q", (("x-user", "alice"), ("cookie", "a=1; sid=XYZ"), ("cookie", "b=2")))
    assert request_key("client", req, client) == b"192.0.2.7"
    assert request_key("path", req, client) == b"/p/q"
    assert request_key("header:x-user", req, client) == b"alice"
    assert request_key("cookie:sid", req, client) == b"XYZ"
    assert request_key("cookie:b", req, client) == b"2"
    assert request_key("cookie:nope", req, client) == b"192.0.2.7"  # missing: client address


def test_same_key_same_backend_other_port() -> None:
    policy = ConsistentHash(pool(7), MaglevOptions(key="client"))
    picks = {policy.pick(head(), Address("198.51.100.9", p)).index for p in range(1000, 1100)}
    assert len(picks) == 1


def test_header_key_spreads_and_sticks() -> None:
    policy = ConsistentHash(pool(4), MaglevOptions(key="header:x-user", table_size=1009))
    chosen = {}
    for i in range(400):
        req = head(headers=(("x-user", f"u{i}"),))
        chosen[i] = policy.pick(req, None).index
        assert policy.pick(req, Address("10.9.9.9", 1)).index == chosen[i]
    assert set(chosen.values()) == {0, 1, 2, 3}


def test_exclude_walks_to_another_backend() -> None:
    policy = ConsistentHash(pool(3), MaglevOptions(table_size=101))
    first = policy.pick(head(), Address("10.1.1.1", 1))
    second = policy.pick(head(), Address("10.1.1.1", 1), frozenset({first.index}))
    assert second is not None and second.index != first.index
    assert policy.pick(head(), None, frozenset({0, 1, 2})) is None


def test_empty_pool() -> None:
    assert ConsistentHash([]).pick(head(), None) is None
    assert ConsistentHash([Backend(Address("10.0.0.1", 1), weight=0)]).pick(head(), None) is None


def test_primes() -> None:
    assert [n for n in range(30) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]
    assert is_prime(65537) and not is_prime(65536)


def _config(options: str) -> str:
    return f"""
[[listeners]]
name = "l"
listen = "127.0.0.1:21999"
default_pool = "p"
[pools.p]
policy = "consistent-hash"
options = {options}
backends = [{{ address = "127.0.0.1:21998" }}]
"""


@pytest.fixture(scope="module")
def registry():
    return registry_from(get_plugin_manager())


def test_config_accepts_options(registry) -> None:
    cfg = parse_config(_config('{ key = "cookie:sid", table_size = 131071 }'), registry)
    assert cfg.pools["p"].options == MaglevOptions(key="cookie:sid", table_size=131071)


@pytest.mark.parametrize(("options", "problem"), [
    ('{ table_size = 65536 }', "must be a prime"),
    ('{ table_size = 5 }', "between 7"),
    ('{ key = "query" }', "key must be"),
    ('{ key = "header:" }', "key must be"),
    ('{ keys = "path" }', "unknown key 'keys'"),
])
def test_config_refuses_bad_options(registry, options: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        parse_config(_config(options), registry)
    assert info.value.line == 8
