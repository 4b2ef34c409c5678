"""The native worker built with AddressSanitizer + UndefinedBehaviorSanitizer
(``make -C native/kernel asan``) through a subset of the engine tests: any sanitizer
report, or a worker that died and was restarted, fails the run."""

from __future__ import annotations

import os
import shutil

import pytest
import test_kernel_engines as engines  # the sibling module (rootdir-less test dirs)

from miresga_core.harness import serving
from miresga_core.kernel.native import build_target

pytestmark = pytest.mark.slow

SUBSET = [
    engines.test_weighted_round_robin_is_exact_over_1000_requests,
    engines.test_keepalive_sizes_alternating_pools_byte_exact,
    engines.test_pipelined_requests_are_answered_in_order,
    engines.test_one_connection_per_request_large_bodies,
    engines.test_upgrade_tunnel_carries_1_mib_both_ways,
    engines.test_response_framings_from_a_raw_backend,
    engines.test_interim_responses_are_relayed_before_the_final_one,
    engines.test_backend_closing_mid_response_closes_the_client,
    engines.test_bad_response_head_is_502,
    engines.test_backend_silent_gets_504,
    engines.test_active_health_down_gives_503_and_status_shows_it,
    engines.test_bad_chunked_request_body_is_400,
    engines.test_admin_counts_requests_and_bytes,
    engines.test_client_close_is_said_in_the_response,
    engines.test_forwarded_head_has_x_forwarded_for_and_no_hop_by_hop_close,
    engines.test_garbage_and_abrupt_clients_do_not_hurt_the_workers,
    engines.test_slow_reader_gets_every_byte,
    engines.test_backend_stalling_mid_body,
]


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_sanitized_worker_runs_the_engine_tests(monkeypatch, tmp_path):
    binary = build_target("miresga-kw-asan")
    monkeypatch.setenv("MIRESGA_KW_BINARY", str(binary))
    reports = tmp_path / "sanitizer"  # reports land in <reports>.<pid>, leaks at exit too
    monkeypatch.setenv("ASAN_OPTIONS", f"detect_leaks=1:log_path={reports}")
    monkeypatch.setenv("UBSAN_OPTIONS", f"print_stacktrace=1:halt_on_error=1:log_path={reports}")
    state = {"reply": lambda n: (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", False)}
    raw = engines.RawBackend(lambda n: state["reply"](n))
    state["backend"] = raw  # type: ignore[assignment]
    config = engines.CONFIG.format(engine="native", raw=raw.port, dead=engines.free_port(),
                                   response=1)
    try:
        with serving(config, engines.NAMES) as (lb, _):
            env = (lb, state, "native")
            for test in SUBSET:
                test(env)
            engines.test_20_mb_download_and_8_mb_uploads_are_byte_exact(env, tmp_path)
            log = lb.log()
    finally:
        raw.close()
    found = {path.name: path.read_text() for path in tmp_path.glob("sanitizer*")}
    assert not found, found  # the workers exited (drained) before this: leaks are in
    assert "exited with" not in log, log[-4000:]
    assert os.path.exists(binary)
