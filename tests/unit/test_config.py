"""Config validation: every refusal names file, line and key."""

from __future__ import annotations

import textwrap

import pytest

from miresga_core.api import Address, OffloadMode
from miresga_core.config import describe_fields, parse_config
from miresga_core.errors import ConfigError

GOOD = textwrap.dedent("""\
    [[listeners]]
    name = "web"
    listen = "127.0.0.1:8080"
    default_pool = "web"

    [[listeners.routes]]
    pool = "api"
    offload = "pin"
    match = { path = { prefix = ["/api/", "/v2/"] }, host = "Example.COM", method = ["GET"] }

    [[listeners.routes]]
    pool = "web"
    [listeners.routes.match]
    headers = { "X-Tenant" = "blue" }

    [pools.web]
    backends = [{ address = "127.0.0.1:9001", weight = 3 }, { address = "[::1]:9002" }]

    [pools.api]
    policy = "round-robin"
    backends = [{ address = "10.0.0.1:80", name = "api-1" }]
    health = { kind = "http", path = "/healthz", fall = 2 }
""")


def parse(text: str, registry):
    return parse_config(text, registry, file="t.toml")


def refused(text: str, registry) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text, registry)
    return info.value


def test_good_config_builds_frozen_dataclasses(registry):
    config = parse(GOOD, registry)
    web = config.listener("web")
    assert web.listen == Address("127.0.0.1", 8080)
    api_route, tenant_route = web.routes
    assert api_route.offload is OffloadMode.PIN
    fields = {m.field: m for m in api_route.match}
    assert fields["path"].op == "prefix" and fields["path"].values == ("/api/", "/v2/")
    assert fields["host"].values == ("example.com",)  # host is case-insensitive
    assert tenant_route.match[0].field == "header:x-tenant"
    assert config.pools["web"].backends[1].address == Address("::1", 9002)
    assert config.pools["api"].health.fall == 2
    assert config.dataplane.kind == "kernel"


@pytest.mark.parametrize("edit, line, key, problem", [
    (("default_pool = \"web\"", "defualt_pool = \"web\""), 4, "listeners[0].defualt_pool",
     "unknown key 'defualt_pool'"),
    (("offload = \"pin\"", "offload = \"pinned\""), 8, "listeners[0].routes[0].offload",
     "must be one of"),
    (("pool = \"api\"", "pool = \"apx\""), 7, "listeners[0].routes[0].pool",
     "no pool named 'apx'"),
    (("\"X-Tenant\" = \"blue\"", "\"X-Tenant\" = 3"), 14,
     "listeners[0].routes[1].match.headers.X-Tenant", "expected a string"),
    (("host = \"Example.COM\"", "hots = \"Example.COM\""), 9, "listeners[0].routes[0].match.hots",
     "unknown match field 'hots'"),
    (("weight = 3", "weight = \"3\""), 17, "pools.web.backends[0].weight", "expected an integer"),
    (("\"[::1]:9002\"", "\"localhost:9002\""), 17, "pools.web.backends[1].address",
     "is not an IP address"),
    (("\"10.0.0.1:80\"", "\"10.0.0.1:80000\""), 21, "pools.api.backends[0].address",
     "out of range"),
    (("fall = 2", "fall = 0"), 22, "pools.api.health.fall", "must be >= 1"),
    (("policy = \"round-robin\"", "policy = \"random\""), 20, "pools.api.policy",
     "unknown policy 'random'"),
])
def test_refusals_name_line_key_and_problem(registry, edit, line, key, problem):
    text = GOOD.replace(*edit)
    assert text != GOOD
    err = refused(text, registry)
    assert err.file == "t.toml"
    assert err.line == line, err
    assert err.key == key, err
    assert problem in err.problem, err
    assert str(err).startswith(f"t.toml:{line}: {key}: ")


def test_toml_syntax_error_has_line(registry):
    err = refused(GOOD.replace('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1:8080'), registry)
    assert err.line == 3 and "TOML syntax" in err.problem


def test_unknown_protocol_and_dataplane(registry):
    err = refused(GOOD.replace('name = "web"\n', 'name = "web"\nprotocol = "smtp"\n', 1),
                  registry)
    assert err.key == "listeners[0].protocol" and "unknown protocol 'smtp'" in err.problem
    err = refused(GOOD + '\n[dataplane]\nkind = "fpga"\n', registry)
    assert err.key == "dataplane.kind" and err.line == 25


def test_dataplane_options_validated_by_the_dataplane(registry):
    config = parse(GOOD + "\n[dataplane.kernel]\nworkers = 3\n", registry)
    assert config.dataplane.options.workers == 3
    err = refused(GOOD + "\n[dataplane.kernel]\nworkres = 3\n", registry)
    assert err.key == "dataplane.kernel.workres" and err.line == 25


def test_xdp_frontend_workers(registry):
    xdp = '\n[dataplane]\nkind = "xdp"\n[dataplane.xdp]\n'
    config = parse(GOOD + xdp + 'frontend = "dpdk"\nfrontend_workers = 2\n', registry)
    assert config.dataplane.options.frontend_workers == 2
    # the Python front-end runs one worker: refused at the key, with why
    err = refused(GOOD + xdp + "frontend_workers = 2\n", registry)
    assert err.key == "dataplane.xdp.frontend_workers" and err.line == 27
    assert 'needs frontend = "dpdk"' in err.problem
    err = refused(GOOD + xdp + 'frontend = "dpdk"\nfrontend_workers = 0\n', registry)
    assert err.key == "dataplane.xdp.frontend_workers" and "1..32" in err.problem


def test_structural_refusals(registry):
    no_listener = '[pools.a]\nbackends = [{ address = "10.0.0.1:1" }]\n'
    assert "at least one [[listeners]]" in refused(no_listener, registry).problem
    dup = GOOD.replace('backends = [{ address = "10.0.0.1:80", name = "api-1" }]',
                       'backends = [{ address = "10.0.0.1:80" }, { address = "10.0.0.1:80" }]')
    err = refused(dup, registry)
    assert "duplicate backend" in err.problem and err.key == "pools.api.backends[1]"
    empty = GOOD.replace('backends = [{ address = "10.0.0.1:80", name = "api-1" }]',
                         'backends = []')
    assert "at least one backend" in refused(empty, registry).problem
    err = refused("surprise = 1\n" + GOOD, registry)
    assert err.line == 1 and "unknown top-level key" in err.problem


def test_every_config_key_is_documented():
    """docs/config.md names every key of every section (the reference must stay complete)."""
    from pathlib import Path

    from miresga_core import config as c
    from miresga_core.kernel.plugin import KernelOptions
    from miresga_core.xdpdp.controller import XdpOptions

    doc = (Path(__file__).parents[2] / "docs" / "config.md").read_text()
    sections = [c.HealthConfig, c.BackendConfig, c.PoolConfig, c.RouteConfig, c.TimeoutsConfig,
                c.ListenerConfig, c.DataplaneConfig, c.AdminConfig, KernelOptions,
                XdpOptions]
    missing = [f"{cls.__name__}.{key}" for cls in sections for key, _, _ in describe_fields(cls)
               if f"`{key}`" not in doc]
    assert not missing, f"undocumented keys: {missing}"
