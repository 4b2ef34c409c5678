"""The C front-end machine is the reference machine: generated traces (>= 10,000 packets
with loss, retransmission, reordering, re-splice, pipelining, half-close, resets, timers,
garbage) give byte-identical packets, identical offload requests and identical counters;
the same traces run clean under AddressSanitizer + UBSan."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import tracegen
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.fe_world import COOKIE_KEY, VIP
from miresga_core import cookie
from miresga_core.dpdk import build
from miresga_core.dpdk.cfe import CFrontend
from miresga_core.frontend import trace
from miresga_core.frontend.machine import COUNTER_NAMES

ROOT = Path(__file__).resolve().parents[2]
SEEDS, STEPS = 20, 600


def cfront(registry, pool_affinity: bool = False, **kw) -> CFrontend:
    return CFrontend(tracegen.fe_config(pool_affinity=pool_affinity),
                     {VIP: tracegen.decider(registry)}, cookie.CookieSecrets(COOKIE_KEY), **kw)


def affinity(seed: int) -> bool:
    """Odd seeds run balance = "connection" (pool affinity), even ones per request."""
    return seed % 2 == 1


def test_generated_traces_are_identical(registry):
    total: dict[str, int] = {}
    packets = 0
    syn_forms: Counter[int] = Counter()  # forged SYN option lengths: 20, or 32 with TS
    for seed in range(SEEDS):
        want: dict[str, int] = {}
        events = tracegen.generate(registry, seed, STEPS, want, pool_affinity=affinity(seed))
        for k, v in want.items():
            total[k] = total.get(k, 0) + v
        cf = cfront(registry, affinity(seed))
        assert trace.replay(cf, events) == [], f"seed {seed}"
        assert cf.counters == Counter(want), f"seed {seed}"
        assert cf.oom == 0
        assert cf.nconns == 0 and cf.nlegs == 0  # the final expiry forgot everything
        packets += sum("in" in e for e in events)
        syn_forms.update(_forged_syn_option_lengths(events))
    assert packets >= 10_000
    assert syn_forms[20] >= 50 and syn_forms[32] >= 50, syn_forms
    # the corpus reaches every path the reference counts
    assert [n for n in COUNTER_NAMES if not total.get(n)] == []
    assert total["leg_switched"] >= 10 and total["retransmit_fwd"] >= 10
    assert total["leg_kept"] >= 5
    assert total["syn_retransmit"] >= 10 and total["offload"] >= 100


def _forged_syn_option_lengths(events: list[dict]) -> list[int]:
    from miresga_core.frontend import packet as P

    syns = (P.parse(bytes.fromhex(o["transmit"])) for e in events for o in e["out"]
            if "transmit" in o)
    return [len(s.options) for s in syns if s.has(P.SYN) and not s.has(P.ACK)]


def test_replay_is_not_vacuous(registry):
    events = tracegen.generate(registry, 1, 300)
    cf = cfront(registry)
    cf.set_secrets(cookie.CookieSecrets(bytes(8)))  # another cookie secret: nothing accepted
    assert trace.replay(cf, events)


def test_next_deadline_and_oldest_match(registry):
    w = tracegen.World(registry, 7)
    cf = cfront(registry)
    for _ in range(400):
        n = len(w.rec.events)
        w.step()
        for e in w.rec.events[n:]:
            if e.get("expire"):
                cf.expire(e["t"])
            else:
                cf.receive(bytes.fromhex(e["in"]), e["t"])
        assert cf.next_deadline() == w.rec.fe.next_deadline()
        assert cf.oldest_ns() == w.rec.fe.oldest_ns()


def test_bad_program_is_refused_clearly(registry):
    from miresga_core.dpdk.decider import ProgramDecider
    d = tracegen.decider(registry)
    bad = ProgramDecider(d.program, d.pools)
    bad.program = type(d.program)(code=(), pools=d.program.pools)
    with pytest.raises(ValueError, match=r"VIP 10\.0\.0\.100:80"):
        CFrontend(tracegen.fe_config(), {VIP: bad}, cookie.CookieSecrets(COOKIE_KEY))


def test_traces_run_clean_under_asan():
    build.library(asan=True)
    libasan = subprocess.run(["cc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    if not os.path.isabs(libasan):
        pytest.skip("the compiler has no libasan")
    paths = [str(ROOT), str(ROOT / "plugins/http1"), str(ROOT / "plugins/policies"),
             str(ROOT / "tests/dpdk"), str(ROOT / "tests/frontend")]
    env = dict(os.environ, LD_PRELOAD=libasan, PYTHONPATH=":".join(paths),
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    r = subprocess.run([sys.executable, str(ROOT / "tests/dpdk/replay_main.py"), "--asan",
                        "--seeds", str(SEEDS), "--steps", str(STEPS)], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "identical" in r.stdout


@pytest.mark.parametrize("name", ["keepalive-switch", "retransmissions", "session"])
def test_committed_reference_traces_replay(registry, name):
    """The frontend's committed traces (recorded with the prototype decider; every pool
    there has one backend, so the compiled policy picks the same one)."""
    import fe_world

    from bench.fe_world import decider, frontend_config

    events = trace.loads((ROOT / "tests/vectors/frontend" / f"{name}.jsonl").read_text())
    cf = CFrontend(frontend_config(), {VIP: decider(registry, fe_world.CONFIG)},
                   cookie.CookieSecrets(COOKIE_KEY))
    assert sum(len(e["out"]) for e in events) > 3
    assert trace.replay(cf, events) == []


def test_replay_tool_digest_matches_reference(registry, tmp_path):
    """The same proof without ctypes: mfe_replay (the machine linked as a plain C program)
    digests its outputs; the digest of the reference's outputs is the same."""
    from bench.fe_pps import steady_trace
    from miresga_core.dpdk import tracebin
    from miresga_core.dpdk.process import write_config

    build.library()
    conf = write_config(tmp_path / "cfg", tracegen.fe_config(),
                        {VIP: tracegen.decider(registry)}, cookie.CookieSecrets(COOKIE_KEY))
    for name, events in (("generated", tracegen.generate(registry, 3, 600)),
                         ("steady", steady_trace(registry, 60, config=tracegen.fe_config(),
                                                 decide=tracegen.decider(registry)))):
        n = tracebin.write(tmp_path / f"{name}.bin", events)
        want = tracebin.digest([[_action(r) for r in e["out"]] for e in events])
        got = tracebin.replay_tool(build.BUILD / "mfe_replay", conf, tmp_path / f"{name}.bin")
        assert got["digest"] == want and int(got["packets"]) == n, name


def _action(record: dict[str, str]):
    from miresga_core.api import Address, OffloadMode
    from miresga_core.frontend.state import Offload, Transmit, Unoffload

    def addr(text: str) -> Address:
        host, port = text.rsplit(":", 1)
        return Address(host, int(port))

    if "transmit" in record:
        return Transmit(bytes.fromhex(record["transmit"]))
    if "offload" in record:
        client, vip = record["offload"].split(">")
        return Offload(addr(client), addr(vip), addr(record["backend"]),
                       OffloadMode(record["mode"]))
    client, vip = record["unoffload"].split(">")
    return Unoffload(addr(client), addr(vip))


def test_replay_tool_clean_under_asan_with_leak_check(registry, tmp_path):
    """mfe_replay built with ASan + UBSan + LeakSanitizer (no Python in the process, so
    leaks are checked too) on generated and steady-state traces."""
    from bench.fe_pps import steady_trace
    from miresga_core.dpdk import tracebin
    from miresga_core.dpdk.process import write_config

    build.library(asan=True)
    conf = write_config(tmp_path / "cfg", tracegen.fe_config(),
                        {VIP: tracegen.decider(registry)}, cookie.CookieSecrets(COOKIE_KEY))
    events = [e for seed in range(4) for e in tracegen.generate(registry, 100 + seed, 600)]
    events.sort(key=lambda e: e["t"])
    steady = steady_trace(registry, 100, config=tracegen.fe_config(),
                          decide=tracegen.decider(registry))
    for name, evs in (("generated", events), ("steady", steady)):
        tracebin.write(tmp_path / f"{name}.bin", evs)
        r = subprocess.run([str(build.BUILD / "mfe_replay_asan"), str(conf),
                            str(tmp_path / f"{name}.bin"), "2"], capture_output=True,
                           text=True, timeout=300,
                           env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1",
                                    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"))
        assert r.returncode == 0 and "digest" in r.stdout, r.stderr[-4000:]


_REG: list = []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=120), max_size=5))
def test_random_bytes_same_as_reference(packets):
    """Bytes from nowhere: no crash, and the same (non-)answer as the reference."""
    from miresga_core.frontend import Frontend
    from miresga_core.plugins import get_plugin_manager, registry_from
    if not _REG:
        _REG.append(registry_from(get_plugin_manager()))
    reg = _REG[0]
    ref = Frontend(tracegen.fe_config(), tracegen.decider(reg), cookie.CookieSecrets(COOKIE_KEY))
    cf = cfront(reg)
    for raw in packets:
        assert cf.receive(raw, tracegen.T0) == ref.receive(raw, tracegen.T0)
    assert cf.expire(tracegen.T0 + 10**13) == ref.expire(tracegen.T0 + 10**13)
    assert cf.counters == ref.counters
