from __future__ import annotations

import textwrap

from miresga_core.api import BodyFraming, RequestHead
from miresga_core.config import parse_config
from miresga_core.routing import Router, pool_states

CONFIG = textwrap.dedent("""\
    [[listeners]]
    name = "l"
    listen = "127.0.0.1:1"
    [[listeners.routes]]
    pool = "api"
    match = { path = { prefix = "/api/" }, method = "GET" }
    [[listeners.routes]]
    pool = "blue"
    match = { host = "blue.example", headers = { x-tenant = { prefix = "b" } } }
    [pools.api]
    backends = [{ address = "10.0.0.1:80" }, { address = "10.0.0.2:80" }]
    [pools.blue]
    backends = [{ address = "10.0.1.1:80" }]
""")


def head(method="GET", path="/", host="x", headers=()):
    return RequestHead(method=method, target=path, path=path, query="", host=host,
                       headers=tuple(headers), framing=BodyFraming.NONE)


def make_router(registry):
    config = parse_config(CONFIG, registry)
    pools = pool_states(config, registry)
    return Router(config.listeners[0], pools), pools


def test_first_match_wins_and_no_default_gives_empty_pool(registry):
    router, _ = make_router(registry)
    assert router.route(head(path="/api/x"), None).pool == "api"
    assert router.route(head(method="POST", path="/api/x"), None).pool == ""
    blue = head(host="blue.example", headers=[("x-tenant", "beta")])
    assert router.route(blue, None).pool == "blue"
    assert router.route(head(host="blue.example", headers=[("x-tenant", "a")]), None).pool == ""


def test_health_changes_remove_and_restore_backends(registry):
    router, pools = make_router(registry)
    api = pools["api"]
    picks = {router.route(head(path="/api/"), None).backend.index for _ in range(4)}
    assert picks == {0, 1}
    api.set_up(0, False)
    assert {router.route(head(path="/api/"), None).backend.index for _ in range(4)} == {1}
    api.set_up(1, False)
    assert router.route(head(path="/api/"), None).backend is None
    api.set_up(0, True)
    assert router.route(head(path="/api/"), None).backend.index == 0


def test_passive_failure_expires_after_cooldown(registry):
    router, pools = make_router(registry)
    pools["api"].mark_failed(0, now=100.0, cooldown=5.0)
    assert {router.route(head(path="/api/"), None, now=101.0).backend.index
            for _ in range(4)} == {1}
    assert {router.route(head(path="/api/"), None, now=106.0).backend.index
            for _ in range(4)} == {0, 1}


def test_exclude_skips_tried_backends(registry):
    router, _ = make_router(registry)
    for _ in range(3):
        assert router.route(head(path="/api/"), None, exclude=frozenset({0})).backend.index == 1
    assert router.route(head(path="/api/"), None, exclude=frozenset({0, 1})).backend is None
