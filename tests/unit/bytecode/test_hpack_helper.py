"""The HPACK helpers (ids 16..19) and the scratch area: hpack (the prototype's decoder) ==
Python VM == C VM (extension, and mvm_run under ASan+UBSan) on golden header blocks (with
and without Huffman, dynamic table use and eviction, size updates, blocks joined in the
scratch area), generated header lists, truncated and random blocks; both verifiers refuse
malformed helper use with the same message; the generated C tables are current."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import hpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miresga_core.bytecode import gen_hpack
from miresga_core.bytecode.hpack_vm import huffman_decode
from miresga_core.bytecode.native import CVM, available
from miresga_core.bytecode.opcodes import OP_BY_NAME
from miresga_core.bytecode.program import Decision, Insn, Program, ProgramError, encode
from miresga_core.bytecode.vectors import run_mvm
from miresga_core.bytecode.verifier import verify
from miresga_core.bytecode.vm import PyVM

sys.path.insert(0, str(Path(__file__).parent))
from hpack_programs import digest_program, expect_program, expected_outcome

LIMIT = 16384
needs_c = pytest.mark.skipif(not available(), reason="C VM extension not built")


def oracle(block: bytes, limit: int = LIMIT) -> list[tuple[bytes, bytes]] | int:
    """What hpack decodes (the prototype's decoder), as the helper's r0 codes on failure."""
    d = hpack.Decoder()
    d.max_header_list_size = limit
    try:
        return [(bytes(k), bytes(v)) for k, v in d.decode(block, raw=True)]
    except hpack.OversizedHeaderListError:
        return -2
    except (hpack.HPACKError, IndexError, ValueError):
        return -1


def check(block: bytes, pieces: int = 1, limit: int = LIMIT, expect: int | None = None
          ) -> None:
    """expect: the helper's code where the VMs' bounds (not hpack's) decide."""
    want = oracle(block, limit) if expect is None else expect
    fields = [] if isinstance(want, int) else want
    prog = expect_program(fields, limit, pieces)
    line = expected_outcome(want)
    assert str(PyVM(prog).run(block)) == line, (block, want)
    if available():
        assert str(CVM(prog).run(block)) == line, (block, want)


def encoded(headers: list[tuple[bytes, bytes]], huffman: bool, enc: hpack.Encoder | None = None
            ) -> bytes:
    return (enc or hpack.Encoder()).encode(headers, huffman=huffman)


REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/api/v1/items?id=7"),
           (b":authority", b"example.com:8080"), (b"user-agent", b"curl/8.5.0"),
           (b"accept", b"*/*"), (b"x-tenant", b"blue"), (b"x-tenant", b"blue")]


@pytest.mark.parametrize("huffman", [False, True])
@pytest.mark.parametrize("pieces", [1, 2, 5])
def test_golden_request(huffman: bool, pieces: int) -> None:
    check(encoded(REQUEST, huffman), pieces)


def test_dynamic_table_across_requests_of_one_encoder() -> None:
    # the second block of one encoder refers to entries of the first: a fresh decoder (the
    # VM's, and the oracle's) must refuse those references exactly as hpack does
    enc = hpack.Encoder()
    first, second = encoded(REQUEST, True, enc), encoded(REQUEST, True, enc)
    check(first)
    check(second)
    assert oracle(second) == -1


def test_eviction_and_size_updates() -> None:
    enc = hpack.Encoder()
    enc.header_table_size = 256  # emits a size update at the start of the next block
    big = [(b"x-%d" % i, bytes([97 + i]) * 60) for i in range(8)] * 2
    check(encoded(big, True, enc))
    check(encoded(big, False, enc))
    raw = bytes([0x3F, 0xE1, 0x1F])  # size update to 4096 (the maximum allowed)
    check(raw + encoded(REQUEST, False))
    check(bytes([0x3F, 0xE2, 0x1F]) + encoded(REQUEST, False))  # 4097: refused
    check(encoded(REQUEST[:1], False) + bytes([0x20]))  # update after a field: refused
    check(bytes([0x20]) + encoded(big, False))  # table size 0: nothing is kept


def test_huffman_matches_rfc_encoder() -> None:
    rng = random.Random(7)
    for _ in range(200):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        code = hpack.huffman.HuffmanEncoder(hpack.huffman_constants.REQUEST_CODES,
                                            hpack.huffman_constants.REQUEST_CODES_LENGTH
                                            ).encode(raw)
        assert huffman_decode(code) == raw


def test_errors_and_limits() -> None:
    check(encoded(REQUEST, True), limit=100)  # 431 from the list size
    check(bytes([0x80]))  # index 0
    check(bytes([0xFF, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]))  # varint too long
    check(bytes([0x40, 0x85]) + b"\xff\xff\xff\xff\xff" + bytes([0x00]))  # EOS in Huffman
    check(bytes([0x40, 0x01, 0x61, 0x81, 0x00]))  # Huffman padding of 8 zero bits
    check(bytes([0x40, 0x01]))  # truncated after the name length
    many = [(b"a", b"")] * 1100
    assert isinstance(oracle(encoded(many, False), 1 << 20), list)
    # hpack with a 1 MiB list limit accepts; the VMs keep MAX_HFIELDS fields: 431
    check(encoded(many, False), limit=1 << 20, expect=-3)
    assert oracle(encoded(many, False)) == -2  # with the real 16 KiB limit both say 431


def test_truncations_and_flips() -> None:
    rng = random.Random(11)
    blocks = [encoded(REQUEST, h) for h in (False, True)]
    enc = hpack.Encoder()
    blocks.append(encoded(REQUEST * 3, True, enc))
    for block in blocks:
        for n in range(len(block) + 1):
            check(block[:n])
        for _ in range(150):
            b = bytearray(block)
            for _ in range(rng.randint(1, 3)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            check(bytes(b))


header = st.tuples(st.binary(min_size=0, max_size=12).map(lambda b: b.lower()),
                   st.binary(max_size=40))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(header, max_size=14), st.booleans(), st.integers(1, 4),
       st.sampled_from([0, 64, 4096]))
def test_generated_header_lists(headers, huffman, pieces, table) -> None:
    enc = hpack.Encoder()
    if table != 4096:
        enc.header_table_size = table
    block = enc.encode([(k or b"x", v) for k, v in headers] * 2, huffman=huffman)
    check(block, pieces)


@needs_c
def test_random_blocks_c_equals_python() -> None:
    rng = random.Random(5)
    prog = digest_program(LIMIT)
    py, c = PyVM(prog), CVM(prog)
    for _ in range(600):
        block = bytes(rng.randrange(256) for _ in range(rng.randrange(60)))
        assert py.run(block) == c.run(block)


def test_c_vm_under_sanitizers(mvm_run_asan: Path, tmp_path: Path) -> None:
    rng = random.Random(3)
    seeds = [encoded(REQUEST, True), encoded(REQUEST * 4, False),
             encoded([(b"x-%d" % i, b"v" * 300) for i in range(40)], True)]
    cases = []
    for seed in seeds:
        cases += [seed[:n] for n in range(0, len(seed) + 1, max(1, len(seed) // 40))]
        for _ in range(40):
            b = bytearray(seed)
            b[rng.randrange(len(b))] = rng.randrange(256)
            cases.append(bytes(b))
    cases += [bytes(rng.randrange(256) for _ in range(rng.randrange(200))) for _ in range(200)]
    cases.append(encoded([(b"a", b"")] * 1100, False))
    cases.append(encoded([(b"x-big", bytes(range(256)) * 60)], True))  # > scratch: 431
    for prog in (digest_program(1 << 20), expect_program(REQUEST, LIMIT, 3)):
        py = PyVM(prog)
        status, lines = run_mvm(mvm_run_asan, encode(prog), [(c, ()) for c in cases], tmp_path)
        assert status == "ok"
        assert lines == [str(py.run(c)) for c in cases]


def _refusals(prog: Program) -> tuple[str, str | None]:
    with pytest.raises(ProgramError) as exc:
        verify(prog)
    c_msg = None
    if available():
        with pytest.raises(ProgramError) as cexc:
            CVM(encode(prog))
        c_msg = str(cexc.value)
    return str(exc.value), c_msg


@pytest.mark.parametrize("helper_id,abi,message", [
    (16, 1, "insn 0 (call): imm: unknown helper 16 for helper ABI 1"),
    (19, 1, "insn 0 (call): imm: unknown helper 19 for helper ABI 1"),
    (20, 2, "insn 0 (call): imm: unknown helper 20 for helper ABI 2"),
    (15, 2, "insn 0 (call): imm: unknown helper 15 for helper ABI 2"),
])
def test_verifiers_refuse_unknown_helpers_identically(helper_id: int, abi: int,
                                                      message: str) -> None:
    prog = Program((Insn(OP_BY_NAME["call"], imm=helper_id), Insn(OP_BY_NAME["needmore"])),
                   (), (), ("p",), (Decision(0),), helper_abi=abi)
    py_msg, c_msg = _refusals(prog)
    assert py_msg == message
    assert c_msg in (None, message)


def test_helper_operands_must_be_zero_identically() -> None:
    prog = Program((Insn(OP_BY_NAME["call"], a=1, imm=16), Insn(OP_BY_NAME["needmore"])),
                   (), (), ("p",), (Decision(0),))
    py_msg, c_msg = _refusals(prog)
    assert py_msg == "insn 0 (call): a: must be 0, got 1"
    assert c_msg in (None, py_msg)


def test_generated_tables_are_current() -> None:
    assert gen_hpack.HEADER_PATH.read_text() == gen_hpack.render(), (
        "mvm_hpack_tables.h is stale: run python3 -m miresga_core.bytecode.gen_hpack")
