"""Exceptions of the core. Each carries a message meant for the operator, not a traceback."""

from __future__ import annotations

__all__ = ["ConfigError", "MiresgaError", "PluginError"]


class MiresgaError(Exception):
    """Base of every error the CLI reports as a one-line message and a non-zero exit."""


class PluginError(MiresgaError):
    """A plugin could not be loaded or does not fit the hook specifications."""


class ConfigError(MiresgaError):
    """A configuration problem, located as ``file:line: key.path: problem``."""

    def __init__(self, problem: str, *, file: str = "", line: int | None = None,
                 key: str = "") -> None:
        self.problem = problem
        self.file = file
        self.line = line
        self.key = key
        super().__init__(self.render())

    def render(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.key + ': ' if self.key else ''}{self.problem}"
