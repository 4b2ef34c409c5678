"""The C VM built with ASan + UBSan runs the corpus, random and truncated inputs, and
malformed programs (random bytes, truncations, bit flips of valid ones) without a finding.
A finding aborts mvm_run (-fno-sanitize-recover), which run_mvm reports as a failure.
The Python verifier must accept or refuse each mutated program exactly as C does."""

from __future__ import annotations

import random
from pathlib import Path

from miresga_core.bytecode.program import ProgramError
from miresga_core.bytecode.vectors import parse_vector, run_mvm
from miresga_core.bytecode.verifier import verify_bytes

VECTORS = Path(__file__).resolve().parents[2] / "vectors"


def _inputs(rng: random.Random, seeds: list[bytes]) -> list[bytes]:
    out = []
    for seed in seeds:
        out += [seed[:n] for n in range(0, len(seed) + 1, max(1, len(seed) // 16))]
        for _ in range(8):
            b = bytearray(seed)
            for _ in range(rng.randint(1, 4)):
                if b:
                    b[rng.randrange(len(b))] = rng.randrange(256)
            out.append(bytes(b))
    out += [bytes(rng.randrange(256) for _ in range(rng.randint(0, 300))) for _ in range(40)]
    return out


def test_corpus_and_fuzzed_inputs(mvm_run_asan: Path, tmp_path: Path) -> None:
    rng = random.Random(1234)
    for path in sorted((VECTORS / "vm").glob("*.mvt")):
        vec = parse_vector(path)
        cases = [(d, (rng.randint(-2**63, 2**63 - 1),) * rng.randint(0, 4))
                 for d in _inputs(rng, [c.data for c in vec.cases])]
        status, lines = run_mvm(mvm_run_asan, vec.program_bytes(), cases, tmp_path)
        assert status == "ok" and len(lines) == len(cases), path


def test_malformed_programs_are_refused_cleanly(mvm_run_asan: Path, tmp_path: Path) -> None:
    rng = random.Random(99)
    progs = [parse_vector(p).program_bytes() for p in sorted((VECTORS / "vm").glob("*.mvt"))]
    progs += [parse_vector(p).program_bytes()
              for p in sorted((VECTORS / "vm" / "errors").glob("*.mvt"))]
    tried = 0
    for prog in progs:
        variants = [prog[:n] for n in range(0, len(prog), max(1, len(prog) // 10))]
        for _ in range(6):
            b = bytearray(prog)
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            variants.append(bytes(b))
        for v in variants:
            status, _ = run_mvm(mvm_run_asan, v, [(b"GET / HTTP/1.1\r\n\r\n", ())], tmp_path)
            try:
                verify_bytes(v)
                expect = "ok"
            except ProgramError as exc:  # both verifiers give the same reason
                expect = f"refused: {exc}"
            assert status == expect
            tried += 1
    assert tried > 100


HTTP_SEEDS = [
    b"GET /api/x?y=1 HTTP/1.1\r\nHost: a.example:80\r\nX-User: bob\r\nConnection: keep-alive, "
    b"Upgrade\r\nUpgrade: websocket\r\nExpect: 100-continue\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: b\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET http://[::1]:8/x HTTP/1.0\nConnection: \xa0keep-alive\n\n",
]


def test_http1_program_under_sanitizers(mvm_run_asan: Path, tmp_path: Path) -> None:
    """The compiled http1 parser (the largest real program) on truncated, mutated and
    random requests; the sanitized C VM must agree with the Python VM on every one."""
    from miresga_http1 import Http1Parser

    from miresga_core.bytecode.vm import PyVM, format_outcome
    from miresga_core.testing import compile_parser

    program = compile_parser(Http1Parser(max_head=512),
                             [("api", [("path", "prefix", ["/api/"], False)]),
                              ("user", [("header:x-user", "exact", ["bob"], False)]),
                              ("host", [("host", "exact", ["a.example"], True)])])
    rng = random.Random(7)
    inputs = _inputs(rng, HTTP_SEEDS)
    inputs += [s[:n] for s in HTTP_SEEDS for n in range(len(s))]
    inputs += [b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: " + b"v" * 600 + b"\r\n\r\n"]
    cases = [(d, ()) for d in inputs]
    status, lines = run_mvm(mvm_run_asan, program.to_bytes(), cases, tmp_path)
    py = PyVM(program)
    assert status == "ok"
    assert lines == [format_outcome(py.run(d)) for d in inputs]
