"""miresga.toml -> frozen dataclasses, validated strictly.

Every section is a frozen dataclass; one generic builder walks the TOML tree against the
type hints, so unknown keys, wrong types and bad values are refused with ``file:line: key:
problem`` (lines come from ``tomlpos``). Plugins take part through option dataclasses
(``Policy.options``, a data plane's ``options``) that the same builder validates.
Cross-references (routes -> pools, protocols, policies, match fields) are checked after.
The reference of every key is docs/config.md.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import tomllib as _toml
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .api import Address, Backend, OffloadMode, ParserPlugin, parse_address
from .errors import ConfigError
from .tomlpos import KeyLines

if typing.TYPE_CHECKING:
    from .plugins import Registry

__all__ = [
    "AdminConfig", "BackendConfig", "Config", "DataplaneConfig", "FieldMatch", "HealthConfig",
    "ListenerConfig", "PoolConfig", "RouteConfig", "TimeoutsConfig", "build", "load_config",
    "parse_config",
]


def _addr(raw: Any) -> Address:
    if not isinstance(raw, str):
        raise ValueError(f"expected 'ip:port' string, got {type(raw).__name__}")
    return parse_address(raw)


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be > 0"


def _at_least(low: int) -> Callable[[int], str | None]:
    return lambda value: None if value >= low else f"must be >= {low}"


def opt(default: Any = dataclasses.MISSING, *, convert: Callable[[Any], Any] | None = None,
        check: Callable[[Any], str | None] | None = None, doc: str = "") -> Any:
    """A config field: default, converter from the raw TOML value, extra check, doc line."""
    meta = {"convert": convert, "check": check, "doc": doc}
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class HealthConfig:
    kind: str = opt("none", doc="none | tcp | http (or a plugin's kind)")
    path: str = opt("/", doc="HTTP path probed by kind = http")
    expect_status: int = opt(200, doc="HTTP status a healthy backend answers")
    interval: float = opt(2.0, check=_positive, doc="seconds between probes")
    timeout: float = opt(1.0, check=_positive, doc="seconds before a probe fails")
    rise: int = opt(2, check=_at_least(1), doc="successes that bring a backend up")
    fall: int = opt(3, check=_at_least(1), doc="failures that take a backend down")
    passive: bool = opt(True, doc="count connect failures/resets of real traffic")
    cooldown: float = opt(5.0, check=_positive,
                          doc="seconds a passively failed backend stays out without active checks")


@dataclass(frozen=True)
class BackendConfig:
    address: Address = opt(convert=_addr, doc="ip:port of the server")
    weight: int = opt(1, check=_at_least(0), doc="relative share; 0 = drained")
    name: str = opt("", doc="label used in logs and status; defaults to the address")


@dataclass(frozen=True)
class PoolConfig:
    name: str
    backends: tuple[BackendConfig, ...] = opt(doc="servers of the pool")
    policy: str = opt("round-robin", doc="policy plugin name")
    options: Any = opt(None, doc="policy options (see the policy's docs)")
    health: HealthConfig = opt(HealthConfig(), doc="health checking")

    def backend_objects(self) -> tuple[Backend, ...]:
        return tuple(Backend(address=b.address, weight=b.weight, name=b.name, index=i)
                     for i, b in enumerate(self.backends))


@dataclass(frozen=True)
class FieldMatch:
    """One condition of a route: ``field`` (e.g. ``path``, ``header:x-tenant``) compared
    with ``op`` against any of ``values``."""

    field: str
    op: Literal["exact", "prefix"]
    values: tuple[str, ...]
    case_insensitive: bool = False

    def matches(self, value: str | None) -> bool:
        if value is None:
            return False
        if self.case_insensitive:
            value = value.lower()
        if self.op == "exact":
            return value in self.values
        return any(value.startswith(v) for v in self.values)


@dataclass(frozen=True)
class RouteConfig:
    pool: str = opt(doc="pool that serves matching requests")
    name: str = opt("", doc="label for logs; defaults to route-<n>")
    match: tuple[FieldMatch, ...] = opt((), doc="conditions, all must hold; empty matches all")
    offload: OffloadMode = opt(OffloadMode.SPLICE, doc="splice | pin | none")


@dataclass(frozen=True)
class TimeoutsConfig:
    head: float = opt(10.0, check=_positive, doc="a started request head must be complete in this")
    idle: float = opt(60.0, check=_positive, doc="keep-alive client connection idle limit")
    connect: float = opt(3.0, check=_positive, doc="backend connect limit")
    response: float = opt(60.0, check=_positive, doc="backend time to first response byte")
    drain: float = opt(10.0, check=_positive, doc="graceful stop: in-flight requests limit")


@dataclass(frozen=True)
class ListenerConfig:
    name: str
    listen: Address = opt(convert=_addr, doc="VIP ip:port")
    protocol: str = opt("http1", doc="parser plugin name")
    routes: tuple[RouteConfig, ...] = opt((), doc="first match wins")
    default_pool: str = opt("", doc="pool for requests no route matches; empty: answer 404")
    max_head: int = opt(16384, check=_at_least(256), doc="largest request head, else 431")
    forwarded_for: bool = opt(True, doc="add X-Forwarded-For with the client address")
    retries: int = opt(2, check=_at_least(0),
                       doc="other backends tried when a connect fails (idempotent requests)")
    timeouts: TimeoutsConfig = opt(TimeoutsConfig(), doc="timeouts in seconds")


@dataclass(frozen=True)
class DataplaneConfig:
    kind: str = opt("kernel", doc="kernel | xdp | tofino (or a plugin's data plane)")
    options: Any = opt(None, doc="the [dataplane.<kind>] table, validated by the data plane")


@dataclass(frozen=True)
class AdminConfig:
    listen: Address | None = opt(None, convert=_addr, doc="ip:port of the admin/metrics API")


@dataclass(frozen=True)
class Config:
    listeners: tuple[ListenerConfig, ...]
    pools: Mapping[str, PoolConfig]
    dataplane: DataplaneConfig
    admin: AdminConfig
    file: str = ""

    def listener(self, name: str) -> ListenerConfig:
        for listener in self.listeners:
            if listener.name == name:
                return listener
        raise KeyError(name)


# --------------------------------------------------------------------------- builder


class _Ctx:
    def __init__(self, file: str, lines: KeyLines | None) -> None:
        self.file = file
        self.lines = lines

    def error(self, path: tuple[str | int, ...], problem: str) -> ConfigError:
        line = self.lines.line_of(path) if self.lines else None
        return ConfigError(problem, file=self.file, line=line, key=_dotted(path))


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def build(cls: type, raw: Any, ctx: _Ctx, path: tuple[str | int, ...],
          skip: tuple[str, ...] = ()) -> Any:
    """Build dataclass ``cls`` from TOML table ``raw``; refuse unknown keys and bad values."""
    if not isinstance(raw, dict):
        raise ctx.error(path, f"expected a table, got {_tname(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ctx.error((*path, unknown[0]), f"unknown key {unknown[0]!r} (known: {known})")
    values = {}
    for name, f in fields.items():
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ctx.error(path, f"missing required key {name!r}")
            continue
        values[name] = _value(hints[name], raw[name], ctx, (*path, name), f.metadata)
    return values


def _value(tp: Any, raw: Any, ctx: _Ctx, path: tuple[str | int, ...],
           meta: Mapping[str, Any] | None = None) -> Any:
    meta = meta or {}
    try:
        if meta.get("convert"):
            value = meta["convert"](raw)
        else:
            value = _convert(tp, raw, ctx, path)
    except ValueError as exc:
        raise ctx.error(path, str(exc)) from None
    check = meta.get("check")
    problem = check(value) if check else None
    if problem:
        raise ctx.error(path, problem)
    return value


def _convert(tp: Any, raw: Any, ctx: _Ctx, path: tuple[str | int, ...]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return raw
    if origin in (typing.Union, types.UnionType):
        if raw is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], raw, ctx, path)
    if origin is Literal:
        if raw not in args:
            raise ValueError(f"must be one of {', '.join(map(repr, args))}, got {raw!r}")
        return raw
    if origin is tuple:
        if not isinstance(raw, list):
            raise ValueError(f"expected an array, got {_tname(raw)}")
        return tuple(_convert(args[0], item, ctx, (*path, i)) for i, item in enumerate(raw))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(raw)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in tp)
            raise ValueError(f"must be one of {choices}, got {raw!r}") from None
    if dataclasses.is_dataclass(tp):
        cls = typing.cast(type, tp)
        return cls(**build(cls, raw, ctx, path))
    if tp is bool:
        if not isinstance(raw, bool):
            raise ValueError(f"expected true or false, got {_tname(raw)}")
        return raw
    if tp is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(f"expected an integer, got {_tname(raw)}")
        return raw
    if tp is float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise ValueError(f"expected a number, got {_tname(raw)}")
        return float(raw)
    if tp is str:
        if not isinstance(raw, str):
            raise ValueError(f"expected a string, got {_tname(raw)}")
        return raw
    raise ValueError(f"unsupported config type {tp!r}")  # a bug in a schema, not the config


def _tname(raw: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(raw), type(raw).__name__)


# --------------------------------------------------------------------------- sections -> Config

_TOP_KEYS = ("listeners", "pools", "dataplane", "admin")


def parse_config(text: str, registry: Registry, file: str = "<config>") -> Config:
    """Validate TOML ``text`` against the schema and the plugins of ``registry``."""
    try:
        raw = _toml.loads(text)
    except _toml.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+)", str(exc))
        line = int(found.group(1)) if found else None
        msg = str(exc).split(" (at line")[0]
        raise ConfigError(f"TOML syntax: {msg}", file=file, line=line) from None
    ctx = _Ctx(file, KeyLines(text))
    unknown = sorted(set(raw) - set(_TOP_KEYS))
    if unknown:
        raise ctx.error((unknown[0],), f"unknown top-level key (known: {', '.join(_TOP_KEYS)})")
    pools = _pools(raw.get("pools", {}), ctx, registry)
    listeners = _listeners(raw.get("listeners", []), ctx, registry, pools)
    dataplane = _dataplane(raw.get("dataplane", {}), ctx, registry)
    admin = AdminConfig(**build(AdminConfig, raw.get("admin", {}), ctx, ("admin",)))
    return Config(listeners=listeners, pools=pools, dataplane=dataplane, admin=admin, file=file)


def load_config(path: str | os.PathLike[str], registry: Registry) -> Config:
    """Read and validate a config file; errors name the file and line."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=name) from None
    return parse_config(text, registry, file=name)


def _pools(raw: Any, ctx: _Ctx, registry: Registry) -> dict[str, PoolConfig]:
    if not isinstance(raw, dict):
        raise ctx.error(("pools",), "expected a table of pools ([pools.<name>])")
    pools = {}
    for name, table in raw.items():
        path = ("pools", name)
        values = build(PoolConfig, table, ctx, path, skip=("name",))
        if not values.get("backends"):
            raise ctx.error(path, "a pool needs at least one backend")
        policy_name = values.get("policy", "round-robin")
        policy = registry.policies.get(policy_name)
        if policy is None:
            raise ctx.error((*path, "policy"), f"unknown policy {policy_name!r} "
                            f"(installed: {', '.join(sorted(registry.policies)) or 'none'})")
        values["options"] = _plugin_options(policy.options, table.get("options", {}), ctx,
                                             (*path, "options"), f"policy {policy_name!r}")
        check_pool = getattr(policy, "check_pool", None)  # optional: options vs backends
        if check_pool is not None and values["options"] is not None:
            names = [b.name or str(b.address) for b in values["backends"]]
            problem = check_pool(names, values["options"])
            if problem:
                raise ctx.error((*path, "options"), problem)
        health = values.get("health", HealthConfig())
        if health.kind not in ("none", "tcp", "http", *registry.health_checks):
            raise ctx.error((*path, "health", "kind"), f"unknown health check {health.kind!r}")
        seen: dict[Address, int] = {}
        for i, backend in enumerate(values["backends"]):
            if backend.address in seen:
                raise ctx.error((*path, "backends", i), f"duplicate backend {backend.address} "
                                f"(also backends[{seen[backend.address]}])")
            seen[backend.address] = i
        pools[name] = PoolConfig(name=name, **values)
    return pools


def _plugin_options(schema: type | None, raw: Any, ctx: _Ctx, path: tuple[str | int, ...],
                    owner: str) -> Any:
    if schema is None:
        if raw:
            raise ctx.error(path, f"{owner} takes no options")
        return None
    try:
        return schema(**build(schema, raw, ctx, path))
    except ValueError as exc:
        # a check across keys, in the schema's __post_init__: ValueError(problem[, key])
        key = exc.args[1:2]
        raise ctx.error((*path, *key) if key and key[0] in raw else path,
                        str(exc.args[0])) from None


def _listeners(raw: Any, ctx: _Ctx, registry: Registry,
               pools: Mapping[str, PoolConfig]) -> tuple[ListenerConfig, ...]:
    if not isinstance(raw, list):
        raise ctx.error(("listeners",), "expected an array of tables ([[listeners]])")
    if not raw:
        raise ctx.error(("listeners",), "at least one [[listeners]] is needed")
    out = []
    names: set[str] = set()
    addresses: set[Address] = set()
    for i, table in enumerate(raw):
        path: tuple[str | int, ...] = ("listeners", i)
        if not isinstance(table, dict):
            raise ctx.error(path, "expected a table")
        routes_raw = table.get("routes", [])
        values = build(ListenerConfig,
                       {k: v for k, v in table.items() if k not in ("routes", "name")}, ctx,
                       path, skip=("routes", "name"))
        name = table.get("name", f"listener-{i}")
        if not isinstance(name, str) or not name:
            raise ctx.error((*path, "name"), "expected a non-empty string")
        if name in names:
            raise ctx.error((*path, "name"), f"duplicate listener name {name!r}")
        names.add(name)
        if "listen" not in values:
            raise ctx.error(path, "missing required key 'listen'")
        if values["listen"] in addresses:
            raise ctx.error((*path, "listen"), f"address {values['listen']} used twice")
        addresses.add(values["listen"])
        protocol = values.get("protocol", "http1")
        parser = registry.parsers.get(protocol)
        if parser is None:
            raise ctx.error((*path, "protocol"), f"unknown protocol {protocol!r} "
                            f"(installed: {', '.join(sorted(registry.parsers)) or 'none'})")
        default = values.get("default_pool", "")
        if default and default not in pools:
            raise ctx.error((*path, "default_pool"), f"no pool named {default!r}")
        values["routes"] = _routes(routes_raw, ctx, (*path, "routes"), parser, pools)
        values["name"] = name
        out.append(ListenerConfig(**values))
    return tuple(out)


def _routes(raw: Any, ctx: _Ctx, path: tuple[str | int, ...], parser: type[ParserPlugin],
            pools: Mapping[str, PoolConfig]) -> tuple[RouteConfig, ...]:
    if not isinstance(raw, list):
        raise ctx.error(path, "expected an array of tables ([[listeners.routes]])")
    fields = {f.name: f for f in parser.fields()}
    routes = []
    for i, table in enumerate(raw):
        rpath = (*path, i)
        if not isinstance(table, dict):
            raise ctx.error(rpath, "expected a table")
        values = build(RouteConfig, {k: v for k, v in table.items() if k != "match"}, ctx, rpath,
                       skip=("match",))
        if "pool" not in values:
            raise ctx.error(rpath, "missing required key 'pool'")
        if values["pool"] not in pools:
            raise ctx.error((*rpath, "pool"), f"no pool named {values['pool']!r} "
                            f"(pools: {', '.join(sorted(pools)) or 'none'})")
        values["match"] = _match(table.get("match", {}), ctx, (*rpath, "match"), fields)
        if not values.get("name"):
            values["name"] = f"route-{i}"
        routes.append(RouteConfig(**values))
    return tuple(routes)


def _match(raw: Any, ctx: _Ctx, path: tuple[str | int, ...],
           fields: Mapping[str, Any]) -> tuple[FieldMatch, ...]:
    if not isinstance(raw, dict):
        raise ctx.error(path, "expected a table of field = matcher")
    out = []
    for key, value in raw.items():
        if key == "headers" and "header" in fields:
            if not isinstance(value, dict):
                raise ctx.error((*path, key), "expected a table of header-name = matcher")
            for hname, hvalue in value.items():
                out.append(_matcher(f"header:{hname.lower()}", hvalue, ctx, (*path, key, hname),
                                    case_insensitive=False))
            continue
        spec = fields.get(key)
        if spec is None or spec.pattern:
            known = sorted(["headers" if f.pattern else f.name for f in fields.values()])
            raise ctx.error((*path, key), f"unknown match field {key!r} for this protocol "
                            f"(known: {', '.join(known)})")
        out.append(_matcher(key, value, ctx, (*path, key), spec.case_insensitive))
    return tuple(out)


def _matcher(name: str, raw: Any, ctx: _Ctx, path: tuple[str | int, ...],
             case_insensitive: bool) -> FieldMatch:
    def norm(values: list[Any], where: tuple[str | int, ...]) -> tuple[str, ...]:
        for i, v in enumerate(values):
            if not isinstance(v, str):
                raise ctx.error((*where, i) if len(values) > 1 else where,
                                f"expected a string, got {_tname(v)}")
        return tuple(v.lower() if case_insensitive else v for v in values)

    if isinstance(raw, str):
        return FieldMatch(name, "exact", norm([raw], path), case_insensitive)
    if isinstance(raw, list):
        if not raw:
            raise ctx.error(path, "empty list matches nothing")
        return FieldMatch(name, "exact", norm(raw, path), case_insensitive)
    if isinstance(raw, dict):
        if len(raw) != 1 or next(iter(raw)) not in ("exact", "prefix"):
            raise ctx.error(path, "expected { exact = ... } or { prefix = ... }")
        op, value = next(iter(raw.items()))
        values = value if isinstance(value, list) else [value]
        return FieldMatch(name, op, norm(values, (*path, op)), case_insensitive)
    raise ctx.error(path, f"expected a string, an array or a table, got {_tname(raw)}")


def _dataplane(raw: Any, ctx: _Ctx, registry: Registry) -> DataplaneConfig:
    if not isinstance(raw, dict):
        raise ctx.error(("dataplane",), "expected a table")
    kind = raw.get("kind", "kernel")
    if kind not in registry.dataplanes:
        raise ctx.error(("dataplane", "kind"), f"unknown data plane {kind!r} "
                        f"(installed: {', '.join(sorted(registry.dataplanes))})")
    extra = sorted(set(raw) - {"kind", kind})
    if extra:
        raise ctx.error(("dataplane", extra[0]),
                        f"unknown key {extra[0]!r} (known: kind, {kind})")
    schema = getattr(registry.dataplanes[kind], "options", None)
    options = _plugin_options(schema, raw.get(kind, {}), ctx, ("dataplane", kind),
                              f"data plane {kind!r}")
    return DataplaneConfig(kind=kind, options=options)


def describe_fields(cls: type) -> list[tuple[str, str, str]]:
    """(key, default, doc) of a config section: used by docs tests and ``miresga check``."""
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = "(table)"
        else:
            default = "(required)"
        out.append((f.name, default, f.metadata.get("doc", "")))
    return out
