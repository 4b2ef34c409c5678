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


def test_docs_table_is_current() -> None:
    from pathlib import Path
    doc = (Path(gen_c.HEADER_PATH).parents[3] / "docs" / "bytecode.md").read_text()
    begin = doc.index("-->\n", doc.index("<!-- opcodes:begin")) + 4
    end = doc.index("<!-- opcodes:end -->")
    assert doc[begin:end] == gen_c.render_markdown(), "regenerate the table in docs/bytecode.md"
