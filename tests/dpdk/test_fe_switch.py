"""Direct offload (native/dpdk/shell/fe_switch.c, in libmfe.so): the C front-end's own
writes of its offload records to the switch's maps.

* the planned keys and values are the schema's packing, byte for byte (the layouts come
  from the generated switch_tables.h; this holds them to schema.py);
* on a real loaded switch, the C code applies a sequence of offload / unoffload records
  and ends with exactly the map contents the Python OffloadApplier (driver.offload_add /
  offload_remove) leaves on a second switch given the same records;
* failures (a backend the switch does not know, an offload mode without a switch value, a
  malformed batch) are counted and never stop the rest of the batch or crash.
"""

from __future__ import annotations

import ctypes
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from miresga_core.api import Address, OffloadMode
from miresga_core.dataplane import names
from miresga_core.dataplane.schema import OffloadModeId, table
from miresga_core.dpdk.cfe import encode_actions
from miresga_core.frontend.state import Offload, Unoffload

VIP = Address("10.88.255.1", 80)
BACKENDS = [Address("10.88.3.1", 8080), Address("10.88.3.2", 8081), Address("10.88.3.3", 80)]
PLAN_SIZE = 8 + 12 + 8 + 12 + 4  # struct fe_offload_plan: five generated structs


class _Counts(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in (
        "offload_applied", "unoffload_applied", "offload_failed", "batches")]


class _Switch(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int) for n in ("offload", "offload_rev", "backend",
                                            "backend_addr")]


@pytest.fixture(scope="module")
def lib(libmfe: ctypes.CDLL) -> ctypes.CDLL:
    libmfe.fe_switch_plan_add.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    libmfe.fe_switch_plan_add.restype = ctypes.c_int
    libmfe.fe_switch_open.argtypes = [ctypes.POINTER(_Switch), ctypes.c_char_p,
                                      ctypes.c_char_p, ctypes.c_size_t]
    libmfe.fe_switch_open.restype = ctypes.c_int
    libmfe.fe_switch_close.argtypes = [ctypes.POINTER(_Switch)]
    libmfe.fe_switch_apply.argtypes = [ctypes.POINTER(_Switch), ctypes.c_char_p,
                                       ctypes.c_size_t, ctypes.POINTER(_Counts)]
    libmfe.fe_switch_apply.restype = ctypes.c_int
    return libmfe


def test_plan_is_the_schema_packing(lib: ctypes.CDLL) -> None:
    client, backend = Address("10.1.2.3", 54321), BACKENDS[1]
    for mode, want in ((OffloadMode.SPLICE, OffloadModeId.SPLICE),
                       (OffloadMode.PIN, OffloadModeId.PIN)):
        rec = encode_actions([Offload(client, VIP, backend, mode)])
        buf = ctypes.create_string_buffer(PLAN_SIZE)
        assert lib.fe_switch_plan_add(rec, buf) == 0
        raw = buf.raw
        assert raw[0:8] == table(names.BACKEND_ADDR).pack_key(addr=backend.host,
                                                              port=backend.port)
        assert raw[8:20] == table(names.OFFLOAD_REV).pack_key(
            client_addr=client.host, client_port=client.port, backend_addr=backend.host,
            backend_port=backend.port)
        assert raw[20:28] == table(names.OFFLOAD_REV).pack_value(vip_addr=VIP.host,
                                                                 vip_port=VIP.port)
        assert raw[28:40] == table(names.OFFLOAD).pack_key(
            client_addr=client.host, client_port=client.port, vip_addr=VIP.host,
            vip_port=VIP.port)
        # the backend index is looked up later; the plan carries 0 there
        assert raw[40:44] == table(names.OFFLOAD).pack_value(backend=0, mode=int(want))
    none = encode_actions([Offload(client, VIP, backend, OffloadMode.NONE)])
    assert lib.fe_switch_plan_add(none, ctypes.create_string_buffer(PLAN_SIZE)) == -1


@pytest.fixture
def switches() -> Iterator[tuple[object, object, Path]]:
    """Two loaded switches with the same backends: (pinned one for C, one for Python)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (BPF maps)")
    from miresga_core.bpf.bpffs import BPFFS, ensure_bpffs, remove_pin_dir
    from miresga_core.dataplane.xdp import XdpSwitch

    ensure_bpffs()
    pins = BPFFS / f"mrdo-fe-switch-{os.getpid()}"
    c_sw = XdpSwitch.load(pin_dir=pins)
    try:
        py_sw = XdpSwitch.load()
        try:
            for sw in (c_sw, py_sw):
                for i, b in enumerate(BACKENDS):
                    sw.set_backend(10 + i, b.host, b.port)
            yield c_sw, py_sw, pins
        finally:
            py_sw.close()
    finally:
        c_sw.close()
        remove_pin_dir(pins)


def _open(lib: ctypes.CDLL, pins: Path) -> _Switch:
    sw, err = _Switch(), ctypes.create_string_buffer(256)
    assert lib.fe_switch_open(ctypes.byref(sw), str(pins).encode(), err, 256) == 0, err.value
    return sw


def _contents(sw: object) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    maps = sw.maps  # type: ignore[attr-defined]
    return (dict(maps[names.OFFLOAD].items(None)), dict(maps[names.OFFLOAD_REV].items(None)))


def test_c_writes_what_the_python_driver_writes(lib: ctypes.CDLL, switches) -> None:
    from miresga_core.frontend.shell import OffloadApplier

    c_sw, py_sw, pins = switches
    rng = random.Random(7)
    clients = [Address(f"10.88.1.{rng.randrange(1, 250)}", rng.randrange(1024, 65535))
               for _ in range(40)]
    # batches in the front-end's shape: per-request re-splices (unoffload, offload to the
    # next backend), closes, offloads of flows never offloaded, removes of absent ones
    batches = []
    for _ in range(30):
        batch: list[Offload | Unoffload] = []
        for _ in range(rng.randrange(1, 6)):
            c = rng.choice(clients)
            if rng.random() < 0.6:
                batch.append(Offload(c, VIP, rng.choice(BACKENDS),
                                     rng.choice((OffloadMode.SPLICE, OffloadMode.PIN))))
            else:
                batch.append(Unoffload(c, VIP))
        batches.append(batch)
    sw = _open(lib, pins)
    try:
        counts, applier = _Counts(), OffloadApplier(py_sw)
        for batch in batches:
            assert lib.fe_switch_apply(ctypes.byref(sw), encode_actions(batch),
                                       len(encode_actions(batch)), ctypes.byref(counts)) == 0
            applier.apply(batch)
            assert _contents(c_sw) == _contents(py_sw)
        assert counts.offload_applied == applier.counters["offload_applied"] > 0
        assert counts.unoffload_applied == applier.counters["unoffload_applied"] > 0
        assert counts.batches == applier.counters["batches"] == len(batches)
        assert counts.offload_failed == 0
        assert len(_contents(c_sw)[0]) > 0  # the comparison saw entries, not two empties
    finally:
        lib.fe_switch_close(ctypes.byref(sw))
        assert sw.offload == sw.offload_rev == sw.backend == sw.backend_addr == -1


def test_failures_are_counted_and_the_batch_goes_on(lib: ctypes.CDLL, switches) -> None:
    c_sw, _py_sw, pins = switches
    client = Address("10.88.1.9", 40000)
    unknown = Address("10.88.9.9", 80)
    batch = encode_actions([Offload(client, VIP, unknown, OffloadMode.SPLICE),
                            Offload(client, VIP, BACKENDS[0], OffloadMode.NONE),
                            Offload(client, VIP, BACKENDS[2], OffloadMode.PIN)])
    sw = _open(lib, pins)
    try:
        counts = _Counts()
        assert lib.fe_switch_apply(ctypes.byref(sw), batch, len(batch),
                                   ctypes.byref(counts)) == 2
        assert (counts.offload_applied, counts.offload_failed, counts.batches) == (1, 2, 1)
        entry = c_sw.read(names.OFFLOAD, {"client_addr": client.host,  # type: ignore[attr-defined]
                                          "client_port": client.port, "vip_addr": VIP.host,
                                          "vip_port": VIP.port})
        assert entry == {"backend": 12, "mode": int(OffloadModeId.PIN)}
        # a malformed batch: an unknown record kind, or a record cut short
        for bad in (b"\x07" + batch, batch[:-3]):
            before = counts.offload_failed
            assert lib.fe_switch_apply(ctypes.byref(sw), bad, len(bad),
                                       ctypes.byref(counts)) == -1
            assert counts.offload_failed > before
    finally:
        lib.fe_switch_close(ctypes.byref(sw))


def test_missing_pins_are_a_clear_error(lib: ctypes.CDLL, tmp_path: Path) -> None:
    sw, err = _Switch(), ctypes.create_string_buffer(256)
    assert lib.fe_switch_open(ctypes.byref(sw), str(tmp_path / "nope").encode(), err, 256) == -1
    assert b"nope/offload" in err.value and b"No such file" in err.value
    assert sw.offload == sw.offload_rev == sw.backend == sw.backend_addr == -1
