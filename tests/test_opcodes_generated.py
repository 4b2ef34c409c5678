"""The committed C opcode header must equal a fresh rendering of opcodes.py."""

from miresga_core.bytecode import gen_c


def test_header_is_current() -> None:
    committed = gen_c.HEADER_PATH.read_text()
    assert committed == gen_c.render(), (
        "native/dpdk/vm/mvm_opcodes.h is stale: run python3 -m miresga_core.bytecode.gen_c")


def test_every_opcode_is_in_the_header() -> None:
    from miresga_core.bytecode.opcodes import OPCODES
    text = gen_c.render()
    for number, op in enumerate(OPCODES):
        assert f"MVM_OP_{op.name.upper()} = {number}," in text
