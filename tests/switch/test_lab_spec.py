"""LabSpec: the address plan and refusals (no root needed)."""

from __future__ import annotations

import pytest

from miresga_core.lab import LabSpec


def test_address_plan_and_ports():
    spec = LabSpec(prefix="mrs-", clients=2, frontends=2, backends=1)
    hosts = spec.hosts()
    assert [(h.ns, h.port_name, h.port, h.addr) for h in hosts] == [
        ("mrs-c0", "c0", 0, "10.77.1.1"), ("mrs-c1", "c1", 1, "10.77.1.2"),
        ("mrs-f0", "f0", 2, "10.77.2.1"), ("mrs-f1", "f1", 3, "10.77.2.2"),
        ("mrs-b0", "b0", 4, "10.77.3.1")]
    assert [h.port for h in spec.hosts("backend")] == [4]
    assert len({h.mac for h in hosts}) == len(hosts)
    assert spec.owns("mrs-sw") and spec.owns("mrs-c12") and not spec.owns("mrs-x1")
    assert not spec.owns("ml-c0")


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="prefix"):
        LabSpec(prefix="Bad Prefix")
    with pytest.raises(ValueError, match="outside"):
        LabSpec(vips=(("192.0.2.1", 80),))
    with pytest.raises(ValueError, match="clients"):
        LabSpec(clients=-1)
    with pytest.raises(ValueError, match="xdp_mode"):
        LabSpec(xdp_mode="offload")
