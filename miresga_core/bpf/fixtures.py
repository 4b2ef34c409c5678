"""Declarative BPF_PROG_TEST_RUN fixtures (Katran ``PacketAttributes`` style).

A :class:`PacketFixture` says, in data: which program, which input packet, which verdict,
and what must come out (an exact packet, :data:`UNCHANGED`, or a check function). Steps
that depend on each other (a SYN, then its SYN-ACK) run in order with :func:`run_fixtures`
against one loaded object, so map state carries from step to step. A failure names the
step's ``description`` and shows the expected and actual packets dissected by scapy.

    FIXTURES = [
        PacketFixture("foreign UDP passes untouched", program="xdp_prog",
                      packet=Ether()/IP()/UDP(), verdict=XDP_PASS, expected=UNCHANGED),
    ]

    def test_foreign(obj):
        run_fixtures(obj, FIXTURES)

scapy is imported lazily: only building/rendering packets needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .objects import BpfObject, TestRun

__all__ = [
    "TC_VERDICTS", "UNCHANGED", "XDP_VERDICTS", "FixtureFailure", "PacketFixture",
    "run_fixture", "run_fixtures",
]

XDP_VERDICTS = {0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}
TC_VERDICTS = {-1: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 1: "TC_ACT_RECLASSIFY", 2: "TC_ACT_SHOT",
               3: "TC_ACT_PIPE", 4: "TC_ACT_STOLEN", 7: "TC_ACT_REDIRECT"}


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()
"""``expected=UNCHANGED``: the output packet must equal the input byte for byte."""


@dataclass(frozen=True)
class PacketFixture:
    """One BPF_PROG_TEST_RUN step.

    :param description: what this step shows, in words (printed on failure).
    :param packet: input frame from the Ethernet header on (scapy packet or bytes).
    :param verdict: expected return value (``XDP_PASS``, ``TC_ACT_OK``, ...).
    :param expected: exact expected output frame, :data:`UNCHANGED`, or None (not compared).
    :param check: ``check(run, obj)`` for anything else (map contents, single fields);
        raise AssertionError to fail.
    :param setup: ``setup(obj)`` run before the packet (seed or age map entries).
    :param program: program name; defaults to the ``program=`` given to the runner.
    """

    description: str
    packet: Any
    verdict: int
    expected: Any = None
    check: Callable[[TestRun, BpfObject], None] | None = None
    setup: Callable[[BpfObject], None] | None = None
    program: str | None = None
    tags: tuple[str, ...] = field(default=())


class FixtureFailure(AssertionError):
    """A fixture's verdict or output did not match; the message shows both packets."""


def _raw(pkt: Any) -> bytes:
    return bytes(pkt)


def _show(data: bytes) -> str:
    try:
        from scapy.layers.l2 import Ether
    except ImportError:  # pragma: no cover - scapy is a dev dependency
        return data.hex()
    return str(Ether(data).show2(dump=True))


def _first_diff(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


def _verdict_name(value: int, names: dict[int, str]) -> str:
    signed = value - (1 << 32) if value >= 1 << 31 else value
    return names.get(signed, str(signed))


def run_fixture(obj: BpfObject, fx: PacketFixture, *, program: str | None = None,
                verdicts: dict[int, str] | None = None) -> TestRun:
    """Run one fixture; raise :class:`FixtureFailure` with a readable report on mismatch."""
    name = fx.program or program
    if name is None:
        raise ValueError(f"fixture {fx.description!r}: no program named")
    prog = obj.program(name)
    names = verdicts or (XDP_VERDICTS if prog.type == 6 else TC_VERDICTS)
    if fx.setup is not None:
        fx.setup(obj)
    data = _raw(fx.packet)
    run = prog.test_run(data)
    if run.retval != (fx.verdict & 0xFFFFFFFF):
        raise FixtureFailure(
            f"[{fx.description}] {name}: verdict {_verdict_name(run.retval, names)}, "
            f"want {_verdict_name(fx.verdict & 0xFFFFFFFF, names)}\n"
            f"input:\n{_show(data)}\noutput:\n{_show(run.data)}")
    if fx.expected is not None:
        want = data if fx.expected is UNCHANGED else _raw(fx.expected)
        if run.data != want:
            at = _first_diff(run.data, want)
            raise FixtureFailure(
                f"[{fx.description}] {name}: output differs at byte {at} "
                f"(len {len(run.data)}, want {len(want)})\n"
                f"expected:\n{_show(want)}\nactual:\n{_show(run.data)}")
    if fx.check is not None:
        try:
            fx.check(run, obj)
        except AssertionError as exc:
            raise FixtureFailure(f"[{fx.description}] {name}: {exc}\n"
                                 f"output:\n{_show(run.data)}") from exc
    return run


def run_fixtures(obj: BpfObject, fixtures: Sequence[PacketFixture], *,
                 program: str | None = None) -> list[TestRun]:
    """Run fixtures in order against one object (map state carries over)."""
    return [run_fixture(obj, fx, program=program) for fx in fixtures]
