"""The plugin manager: built-ins and third-party plugins, found through one entry point group.

``get_plugin_manager()`` builds a fresh manager each call (nothing is loaded at import time),
registers the core's own default plugins, loads every ``miresga`` entry point, and checks
strictly: an implementation of an unknown hook, or with arguments its spec lacks, is an
error at start-up, not a surprise later.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

from . import hookspecs
from .api import ParserPlugin, Policy
from .errors import PluginError

__all__ = ["DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "PluginInfo", "Registry",
           "get_plugin_manager", "registry_from"]

ENTRY_POINT_GROUP = "miresga"

# Core modules that are plugins themselves (the data planes, health check kinds): they go
# through the same registration path as third-party code.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "miresga_core.kernel.plugin",
    "miresga_core.xdpdp.plugin",
)


def get_plugin_manager(load_entry_points: bool = True,
                       extra: Iterable[object] = ()) -> pluggy.PluginManager:
    """Build a plugin manager with the default plugins and (optionally) entry points.

    :param extra: plugin objects to register too (tests use this).
    :raises PluginError: a plugin failed to import or does not fit the hook specs.
    """
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(_import(name, name), name=name)
    if load_entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # any import error of a third party module
                dist = ep.dist.name if ep.dist else "?"
                raise PluginError(
                    f"plugin {ep.name!r} (distribution {dist}, {ep.value}) failed to load: "
                    f"{type(exc).__name__}: {exc}") from exc
            _register(pm, plugin, ep.name)
    for obj in extra:
        _register(pm, obj, None)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {exc.plugin!r} does not fit the hook specs: {exc}") from exc
    return pm


def _import(module: str, label: str) -> Any:
    try:
        return importlib.import_module(module)
    except Exception as exc:
        raise PluginError(f"plugin {label!r} failed to import {module}: {exc}") from exc


def _register(pm: pluggy.PluginManager, plugin: object, name: str | None) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {name or plugin!r} does not fit the hook specs: {exc}") from exc
    except ValueError as exc:  # duplicate registration
        raise PluginError(f"plugin {name or plugin!r}: {exc}") from exc


@dataclass(frozen=True)
class PluginInfo:
    """What ``miresga plugins`` shows of one registered plugin."""

    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]


def plugin_infos(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Name, distribution, version and implemented hooks of every registered plugin."""
    dists = {ep.name: ep.dist for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        dist = dists.get(name)
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or ()))
        out.append(PluginInfo(name=name, distribution=dist.name if dist else "miresga (core)",
                              version=dist.version if dist else _core_version(), hooks=hooks))
    return out


def _core_version() -> str:
    try:
        return importlib.metadata.version("miresga")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


class Registry:
    """Name -> class maps for everything plugins contributed, duplicates refused."""

    def __init__(self) -> None:
        self.parsers: dict[str, type[ParserPlugin]] = {}
        self.policies: dict[str, type[Policy]] = {}
        self.health_checks: dict[str, type[Any]] = {}
        self.dataplanes: dict[str, type[Any]] = {}

    def add(self, kind: str, table: dict[str, Any], classes: Iterable[Any], attr: str) -> None:
        for cls in classes:
            key = getattr(cls, attr, None)
            if not isinstance(key, str) or not key:
                raise PluginError(f"{kind} {cls!r} has no {attr!r} name")
            if key in table and table[key] is not cls:
                raise PluginError(f"two {kind}s are named {key!r}: {table[key]!r} and {cls!r}")
            table[key] = cls


def registry_from(pm: pluggy.PluginManager) -> Registry:
    """Collect the contributions of every registered plugin."""
    reg = Registry()
    hook = pm.hook
    for group in hook.miresga_add_parsers():
        reg.add("parser", reg.parsers, group, "name")
    for group in hook.miresga_add_policies():
        reg.add("policy", reg.policies, group, "name")
    for group in hook.miresga_add_health_checks():
        reg.add("health check", reg.health_checks, group, "kind")
    for group in hook.miresga_add_dataplanes():
        reg.add("data plane", reg.dataplanes, group, "name")
    return reg
