"""Make this plugin (and the http2 plugin it builds on, from the same checkout) importable
from a source checkout that did not install them."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parents[1]
for _src in (_HERE, _HERE.parent / "http2"):
    if _src.is_dir() and str(_src) not in sys.path:
        sys.path.insert(0, str(_src))
