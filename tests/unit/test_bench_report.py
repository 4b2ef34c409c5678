"""The benchmark's pure parts: client output parsing, medians and spread, rankings per pass
and their agreement (near-ties), the issue target checks, the markdown tables, and the
selection of what runs (bench/report.py, bench/clients.py, bench/harness.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import clients, report
from bench.harness import Options, main_targets, plan
from bench.report import Report, Sample
from bench.sections import KernelSection, Skipped, XdpSection
from miresga_core import cli

WRK_OUT = """Running 2s test @ http://10.77.1.1:9001/1k
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.33us    1.02ms  19.09ms   91.27%
    Req/Sec    10.44k     1.05k   12.40k    70.00%
  Latency Distribution
     50%  520.00us
     75%    0.89ms
     90%    1.71ms
     99%    5.46ms
  41574 requests in 2.00s, 50.12MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:  20749.52
Transfer/sec:     25.01MB
"""

H2LOAD_OUT = """starting benchmark...
finished in 2.00s, 71391.50 req/s, 75.80MB/s
requests: 142783 total, 142943 started, 142783 done, 142780 succeeded, 3 failed, \
1 errored, 0 timeout
status codes: 142780 2xx, 0 3xx, 2 4xx, 0 5xx
traffic: 151.60MB (158963254) total, 1.23MB (1287027) headers (space savings 91.91%)
                     min         max         mean         sd        +/- sd
time for request:      120us     36.63ms      2.21ms      1.50s    80.12%
time for connect:      190us      1.27ms       702us       343us    62.50%
"""


def test_parse_wrk():
    r = clients.parse_wrk(WRK_OUT)
    assert r.rps == pytest.approx(20749.52)
    assert r.lat_ms == {"p50": pytest.approx(0.52), "p99": pytest.approx(5.46)}
    assert r.errors == 3 + 2 + 4


def test_parse_h2load():
    r = clients.parse_h2load(H2LOAD_OUT)
    assert r.rps == pytest.approx(71391.5)
    assert r.lat_ms["mean"] == pytest.approx(2.21) and r.lat_ms["max"] == pytest.approx(36.63)
    assert r.lat_ms["min"] == pytest.approx(0.12) and r.lat_ms["sd"] == pytest.approx(1500)
    assert r.errors == 3 + 2  # failed (errored and timeouts included) + 4xx/5xx


def test_parse_h2load_nothing_succeeded_is_an_error():
    out = H2LOAD_OUT.replace("142780 succeeded, 3 failed", "0 succeeded, 0 failed").replace(
        "2 4xx", "0 4xx")
    assert clients.parse_h2load(out).errors >= 1


@pytest.mark.parametrize("parse", [clients.parse_wrk, clients.parse_h2load])
def test_parse_failure_says_so(parse):
    with pytest.raises(clients.ClientError, match="gave no result"):
        parse("unable to connect to 10.77.1.1:9001 Connection refused\n")


def test_client_argv():
    assert clients.wrk_argv("http://h:1/1k", 2, "close")[1:3] == ["-H", "Connection: close"]
    assert "-D2" in clients.h2load_argv("http://h:1/1k", 2)
    assert "-m10" in clients.h2load_argv("http://h:1/1k", 2)


def _s(target, rps, rep=1, obj="1k", mode="keep-alive", section="kernel", protocol="http1",
       cpu=None):
    return Sample(section, protocol, target, obj, mode, rep, rps, {"p50": 1.0, "p99": 2.0},
                  cpu, 0)


def test_summary_median_and_spread():
    sums = report.summarize([_s("haproxy", v, rep=i) for i, v in enumerate((90, 100, 130))])
    (s,) = sums
    assert (s.n, s.rps, s.rps_min, s.rps_max) == (3, 100, 90, 130)


def test_summary_cpu_figures_are_medians_of_known_values():
    samples = [Sample("kernel", "http1", "nginx", "1k", "keep-alive", i, 100.0, {}, cpu, 0,
                      helpers, machine)
               for i, (cpu, helpers, machine) in enumerate(
                   ((30.0, 40.0, 90.0), (10.0, None, 70.0), (20.0, 60.0, 80.0)))]
    (s,) = report.summarize(samples)
    assert (s.cpu_us_per_req, s.helpers_us_per_req, s.machine_us_per_req) == (20.0, 50.0, 80.0)
    table = "\n".join(report.section_table([s], "kernel", "http1", ["nginx"]))
    assert "| 20.0 | - | 50.0 | 80.0 | 0 |" in table


def test_rank_groups_near_ties():
    assert report.rank_groups({"a": 100, "b": 96, "c": 80}) == [["a", "b"], ["c"]]
    # a group is measured from its first: 100, 96, 92 -> c starts a new group
    assert report.rank_groups({"a": 100, "b": 96, "c": 92}) == [["a", "b"], ["c"]]
    assert report.ranking_text([["a", "b"], ["c"]]) == "a = b > c"


def test_flips_ignore_near_ties():
    p1 = {"a": 100, "b": 97, "c": 50}
    p2 = {"a": 97, "b": 100, "c": 60}   # a/b swapped but within 5%: a tie, not a flip
    assert report.flips([p1, p2]) == []
    p3 = {"a": 80, "b": 100, "c": 60}   # b clearly ahead, but a tie in p1: no flip either
    assert report.flips([p1, p3]) == []
    p4 = {"a": 100, "b": 90, "c": 60}   # a clearly ahead, against b clearly ahead: a flip
    assert report.flips([p4, p1, p3]) == [("a", "b")]


def test_cell_rankings_and_summary_line():
    samples = [_s("haproxy", 100, 1), _s("nginx", 50, 1), _s("haproxy", 101, 2),
               _s("nginx", 52, 2),
               _s("haproxy", 100, 1, obj="1m"), _s("nginx", 80, 1, obj="1m"),
               _s("haproxy", 70, 2, obj="1m"), _s("nginx", 90, 2, obj="1m")]
    ranks = {r.cell.obj: r for r in report.cell_rankings(samples)}
    assert ranks["1k"].agree and ranks["1k"].per_pass == ["haproxy > nginx"] * 2
    assert not ranks["1m"].agree and ranks["1m"].flipped == [("haproxy", "nginx")]
    text = "\n".join(report.ranking_lines(list(ranks.values())))
    assert "Rankings identical in 1 of 2 cells" in text
    assert "no: haproxy/nginx" in text


def test_target_checks():
    rows = [_s("haproxy", 1000), _s("nginx", 1200), _s("miresga-relay", 1100),
            _s("haproxy", 100, obj="1m", cpu=3000.0), _s("nginx", 90, obj="1m", cpu=1500.0),
            _s("miresga-relay", 120, obj="1m", cpu=2000.0),
            _s("miresga-sockmap", 80, obj="1m", cpu=500.0),
            _s("direct", 500, obj="64k", section="xdp"), _s("xdp-c", 460, obj="64k",
                                                            section="xdp"),
            _s("haproxy", 300, section="xdp"), _s("nginx", 200, section="xdp"),
            _s("xdp-c", 290, section="xdp")]
    checks = report.target_checks(report.summarize(rows), ["miresga-relay", "miresga-sockmap"])
    got = {(c.issue, c.what.split(" (")[0], c.cell): c for c in checks}
    relay_1k = got[("#8", "miresga-relay vs best peer", "1k keep-alive")]
    assert relay_1k.ratio == pytest.approx(1100 / 1200) and relay_1k.goal == 0.9
    assert relay_1k.met
    relay_1m = got[("#8", "miresga-relay vs best peer", "1m keep-alive")]
    assert relay_1m.ratio == pytest.approx(1.2) and relay_1m.goal == 1.0 and relay_1m.met
    sockmap_1m = got[("#8", "miresga-sockmap vs best peer", "1m keep-alive")]
    assert not sockmap_1m.met
    cpu = next(c for c in checks if "CPU" in c.what)
    assert cpu.ratio == pytest.approx(0.25)
    assert got[("#10", "xdp-c vs direct", "64k keep-alive")].met  # 0.92 >= 0.9
    xdp_1k = got[("#10", "xdp-c vs best peer", "1k keep-alive")]
    assert xdp_1k.ratio == pytest.approx(290 / 300) and not xdp_1k.met
    text = "\n".join(report.check_lines(checks))
    assert "no (3% short)" in text


def test_markdown_tables_are_well_formed():
    rep = Report(samples=[_s("direct", 3000), _s("haproxy", 1000), _s("nginx", 1200),
                          _s("haproxy", 900, protocol="http2"),
                          _s("miresga-h2", 450, protocol="http2")],
                 pps=[report.PpsSample(1, 5400, 8000.0, 4e6, True)])
    text = report.markdown(rep, ["# t", ""], main_targets(), ["miresga-relay"], ["rps.png"])
    table_lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    blocks: list[list[str]] = []
    for ln in text.splitlines():
        if ln.startswith("|"):
            if not blocks or not blocks[-1]:
                blocks.append([])
            blocks[-1].append(ln)
        elif blocks and blocks[-1]:
            blocks.append([])
    for block in filter(None, blocks):
        assert len({ln.count("|") for ln in block}) == 1, block
    assert table_lines
    assert "| direct | 1k | keep-alive | 3000 | 3000-3000 | 3.00x | 2.50x |" in text
    assert "| miresga-h2 | 1k | keep-alive | 450 |" in text and "0.50x" in text
    assert "| 5400 | 1 | 8,000 | 4,000,000 | 500.00x | yes |" in text
    assert "![rps.png](rps.png)" in text


def _sections():
    return {"kernel": KernelSection(Path("/nonexistent")),
            "xdp": XdpSection(Path("/nonexistent"))}


def test_plan_selects_and_checks():
    steps = plan(Options(), _sections())
    assert {(s.section, s.protocol) for s in steps} == {("kernel", "http1"), ("kernel", "http2"),
                                                        ("xdp", "http1")}
    h2 = [s for s in steps if s.protocol == "http2"]
    assert all(s.cells == [(o, "keep-alive") for o in ("1k", "64k", "1m")] for s in h2)
    only = plan(Options(only=["xdp-c", "direct"], objects=["1m"], sections=["xdp"]),
                _sections())
    assert [(s.target, s.cells) for s in only] == [("direct", [("1m", "keep-alive"),
                                                               ("1m", "close")]),
                                                   ("xdp-c", [("1m", "keep-alive"),
                                                              ("1m", "close")])]
    with pytest.raises(ValueError, match="unknown target bogus"):
        plan(Options(only=["bogus"]), _sections())
    with pytest.raises(ValueError, match="unknown object 2k"):
        plan(Options(objects=["2k"]), _sections())


def test_cli_refuses_bad_selection_before_building(capsys):
    assert cli.main(["bench", "--protocols", "http3"]) == 2
    assert "unknown protocol http3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["bench", "--repeat", "0"])


def test_xdp_c_without_dpdk_is_skipped_with_the_reason(monkeypatch, tmp_path):
    """No DPDK development files: the C front-end's rows are skipped, saying why, before
    anything is started (pkg-config is pointed at an empty directory)."""
    monkeypatch.setenv("PKG_CONFIG_LIBDIR", str(tmp_path))
    monkeypatch.setenv("PKG_CONFIG_PATH", str(tmp_path))
    with pytest.raises(Skipped, match="DPDK development files are missing"):
        XdpSection(tmp_path).start("xdp-c", "http1")
    rep = Report(skips=[report.Skip("xdp http1 xdp-c", "skipped: no DPDK")])
    assert "- xdp http1 xdp-c: skipped: no DPDK" in report.markdown(rep, [], [], [], [])


def test_missing_client_is_a_skip_with_the_package(monkeypatch):
    from bench import harness

    monkeypatch.setattr(harness.shutil, "which", lambda name: None if name == "h2load" else "/x")
    with pytest.raises(Skipped, match=r"h2load .*nghttp2-client"):
        harness._check_tools(harness.Step("kernel", "http2", "haproxy", [("1k", "keep-alive")]))
    harness._check_tools(harness.Step("kernel", "http1", "haproxy", [("1k", "keep-alive")]))
