"""Miresga core: config, plugin system, routing, data planes.

Plugins import from here only; everything else is internal.
"""

import pluggy

from .api import (
    Address,
    Backend,
    BodyFraming,
    FieldSpec,
    NeedMore,
    OffloadMode,
    ParserPlugin,
    Policy,
    Reject,
    RequestHead,
    parse_address,
)
from .errors import ConfigError, MiresgaError, PluginError

hookimpl = pluggy.HookimplMarker("miresga")

__all__ = [
    "Address", "Backend", "BodyFraming", "ConfigError", "FieldSpec", "MiresgaError", "NeedMore",
    "OffloadMode", "ParserPlugin", "PluginError", "Policy", "Reject", "RequestHead", "hookimpl",
    "parse_address",
]
