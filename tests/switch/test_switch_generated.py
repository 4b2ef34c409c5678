"""The committed C headers equal what the schema and cookie definition generate now."""

from __future__ import annotations

import pytest

from miresga_core.dataplane import gen_c


@pytest.mark.parametrize("name", sorted(gen_c.GENERATED))
def test_generated_header_is_current(name):
    committed = (gen_c.GENERATED_DIR / name).read_text()
    assert committed == gen_c.GENERATED[name](), (
        f"native/xdp/generated/{name} is stale: run python3 -m miresga_core.dataplane.gen_c")


def test_docs_schema_section_is_current():
    text = gen_c.DOC.read_text()
    assert gen_c.doc_with_schema(text) == text, (
        "docs/switch.md schema section is stale: run python3 -m miresga_core.dataplane.gen_c")
