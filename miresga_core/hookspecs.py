"""Hook specifications: the contracts between the core and its plugins.

Only signatures and docstrings live here. A plugin implements a hook by defining a function
of the same name decorated with ``miresga_core.hookimpl``; it may take fewer arguments than
the spec. ``docs/hooks.md`` documents every hook and a meta-test keeps the two in sync.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .api import ParserPlugin, Policy
    from .config import Config

hookspec = pluggy.HookspecMarker("miresga")

# --------------------------------------------------------------------------- registration


@hookspec
def miresga_add_parsers() -> list[type[ParserPlugin]]:
    """Contribute parser plugins (protocols a listener can speak).

    :return: a list of ``ParserPlugin`` subclasses; their ``name`` is what
        ``listeners.protocol`` refers to. Names must be unique across plugins.
    """


@hookspec
def miresga_add_policies() -> list[type[Policy]]:
    """Contribute load-balancing policies.

    :return: a list of ``Policy`` subclasses; their ``name`` is what ``pools.<x>.policy``
        refers to. Names must be unique across plugins.
    """


@hookspec
def miresga_add_health_checks() -> list[type[Any]]:
    """Contribute active health check kinds.

    :return: a list of classes with a ``kind`` name and an async ``probe(backend)``; their
        ``kind`` is what ``pools.<x>.health.kind`` refers to.
    """


@hookspec
def miresga_add_dataplanes() -> list[type[Any]]:
    """Contribute data planes (``kernel``, ``xdp``, ``tofino``, ...).

    :return: a list of classes with a ``name`` and ``run(config, manager) -> int``; their
        ``name`` is what ``dataplane.kind`` refers to.
    """


# --------------------------------------------------------------------------- lifecycle


@hookspec
def miresga_configure(config: Config) -> None:
    """Called once a configuration has been loaded and validated, before serving.

    :param config: the validated, frozen configuration. Raise ``ConfigError`` to refuse it.
    """


@hookspec
def miresga_unconfigure(config: Config) -> None:
    """Called when the load balancer stops, after the last connection was closed.

    :param config: the configuration that was served.
    """
