"""Every hook is documented with its exact signature, and has a test named after it."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from miresga_core import hookspecs

ROOT = Path(__file__).parents[1]


def hooks():
    return {name: fn for name, fn in vars(hookspecs).items()
            if name.startswith("miresga_") and callable(fn)}


def test_hooks_are_documented_with_exact_arguments():
    doc = (ROOT / "docs" / "hooks.md").read_text()
    headings = dict(re.findall(r"^### (miresga_\w+)\(([^)]*)\)", doc, re.M))
    for name, fn in hooks().items():
        args = ", ".join(inspect.signature(fn).parameters)
        assert name in headings, f"{name} is not documented in docs/hooks.md"
        assert headings[name] == args, f"{name}: documented ({headings[name]}), spec ({args})"
    assert set(headings) <= set(hooks()), "docs/hooks.md documents hooks that do not exist"


def test_every_hook_has_a_test():
    sources = "\n".join(p.read_text() for p in ROOT.rglob("test_*.py")
                        if ".venv" not in p.parts)
    missing = [n for n in hooks() if f"def test_hook_{n}" not in sources]
    assert not missing, f"hooks without a test_hook_<name>: {missing}"
