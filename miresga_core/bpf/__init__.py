"""Thin, generic libbpf binding (ctypes over the system ``libbpf.so.1``, libbpf >= 1.1).

Used by the back-end agent and the XDP software switch; nothing here knows about either.
Keys and values are plain ``bytes`` (pack them with :mod:`struct` or generated layouts).

Objects, programs, maps::

    from miresga_core.bpf import BpfObject, build_object
    with BpfObject.load_file(build_object("agent")) as obj:   # make + open + load
        prog = obj.program("agent_xdp")            # by C function name
        run = prog.test_run(bytes(pkt))             # BPF_PROG_TEST_RUN -> TestRun
        run.retval, run.data, run.duration_ns       # verdict, packet after, ns per run
        flows = obj.map("flows")                    # by map name
        flows.update(key, value); flows.lookup(key) -> bytes | None
        flows.delete(key) -> bool; list(flows.items()); flows.keys(limit=...)
        flows.pin("/sys/fs/bpf/x/flows")            # pin; unpin(path) removes it
        prog.fd                                     # for attach

- ``BpfObject.open(path)`` + ``obj.reuse_map(name, pinned)`` / ``obj.set_max_entries`` +
  ``obj.load()``: share maps pinned by an earlier load. A refused load raises
  :class:`BpfError` carrying the tail of the verifier log.
- ``Map.from_pinned(path)``: open a pinned map in another process (owns its fd; close it).
  ``pinned_id(path)``: kernel id of a pinned program or map.
  Per-CPU maps: ``lookup`` returns all CPUs' slots concatenated, ``lookup_percpu`` splits.
- Attach (:mod:`.attach`): ``xdp_attach(ifindex, fd, "native"|"generic")``, ``xdp_detach``,
  ``xdp_query``; ``tc_attach(ifindex, fd, TC_EGRESS) -> TcFilter``, ``tc_detach(filter)``,
  ``tc_query``. They act in the calling thread's network namespace.
- bpffs (:mod:`.bpffs`): ``ensure_bpffs()``, ``unpin(path)``, ``remove_pin_dir(path)``.
- Build (:mod:`.build`): ``build_object(name)`` runs make in ``native/xdp``; a clear
  :class:`BuildError` when clang or make is missing.
- Fixtures (:mod:`.fixtures`): ``PacketFixture`` + ``run_fixtures`` for declarative
  BPF_PROG_TEST_RUN tests.

Every failing libbpf call raises :class:`BpfError` (an OSError with ``errno`` set and the
call named). Loading, test runs and attaching need root (or CAP_BPF + CAP_NET_ADMIN).
"""

from ._libbpf import BpfError
from .attach import (
    TC_EGRESS,
    TC_INGRESS,
    TcFilter,
    tc_attach,
    tc_detach,
    tc_query,
    xdp_attach,
    xdp_detach,
    xdp_query,
)
from .bpffs import BPFFS, ensure_bpffs, is_bpffs, remove_pin_dir, unpin
from .build import BuildError, build_object
from .objects import (
    ANY,
    EXIST,
    NOEXIST,
    BpfObject,
    Map,
    Program,
    TestRun,
    pinned_id,
    possible_cpus,
)

__all__ = [
    "ANY", "BPFFS", "EXIST", "NOEXIST", "TC_EGRESS", "TC_INGRESS", "BpfError", "BpfObject",
    "BuildError", "Map", "Program", "TcFilter", "TestRun", "build_object", "ensure_bpffs",
    "is_bpffs", "pinned_id", "possible_cpus", "remove_pin_dir", "tc_attach", "tc_detach",
    "tc_query", "unpin", "xdp_attach", "xdp_detach", "xdp_query",
]
