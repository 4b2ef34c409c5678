"""The RESP example plugin: prototype == Python VM == C VM, via the public test kit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from miresga_resp import RespParser

from miresga_core.testing import Equivalence

ROUTES = [("reads", [("command", "exact", ["get", "mget"], True)]),
          ("sessions", [("key", "prefix", ["session:"], False)])]


def resp(*items: bytes) -> bytes:
    return b"*%d\r\n" % len(items) + b"".join(b"$%d\r\n%s\r\n" % (len(i), i) for i in items)


CORPUS = [resp(b"GET", b"k"), resp(b"get", b"session:1"), resp(b"SET", b"session:9", b"v"),
          resp(b"PING"), resp(b"SET", b"a", b"b"), resp(b"GET", b"k")[:-1], b"", b"*",
          b"*0\r\n", b"*65\r\n", b"+OK\r\n", b"*1\r\n$3\r\nGETX\r\n", b"*1\r\n$x\r\n",
          b"*2\r\n$3\r\nGET\r\n", resp(b"GET", b"")]


@pytest.fixture(scope="module")
def eq() -> Equivalence:
    return Equivalence(RespParser(max_head=256), ROUTES)


@pytest.mark.parametrize("data", CORPUS, ids=range(len(CORPUS)))
def test_corpus(eq: Equivalence, data: bytes) -> None:
    eq.check(data)


def test_decisions(eq: Equivalence) -> None:
    assert eq.check(resp(b"GET", b"k")).startswith("route decision=0")
    assert eq.check(resp(b"DEL", b"session:1")).startswith("route decision=1")
    assert eq.check(resp(b"DEL", b"x")).startswith("route decision=2")
    assert eq.check(b"+PING\r\n") == "reject 400"
    assert eq.check(b"*2\r\n$3\r\nGET\r\n") == "needmore"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=12), min_size=1, max_size=4), st.integers(0, 80))
def test_generated(eq: Equivalence, items: list[bytes], cut: int) -> None:
    data = resp(*items)
    eq.check(data)
    eq.check(data[:cut])
