"""pytest plugin: run the packet-level front-end's lab end-to-end suite
(tests/frontend/test_lab_e2e.py) with the C/DPDK front-end, in this helper's own
namespace prefix. Loaded with ``-p e2e_dpdk_plugin`` by test_lab_e2e_dpdk.py, before the
suite's modules are imported, so their ``PREFIX`` and lab config pick the changes up.
``MIRESGA_E2E_WORKERS`` (default 1): the front-end's lcores (``frontend_workers``)."""

from __future__ import annotations

import os

import xdplab

xdplab.PREFIX = "mrd-"
_config_text = xdplab.config_text
WORKERS = int(os.environ.get("MIRESGA_E2E_WORKERS", "1"))


def _dpdk_config_text(*args, **kw):  # type: ignore[no-untyped-def]
    text = _config_text(*args, **kw).replace('lab_prefix = "mrf-"', 'lab_prefix = "mrd-"')
    return text + f'frontend = "dpdk"\nfrontend_workers = {WORKERS}\n'


xdplab.config_text = _dpdk_config_text
