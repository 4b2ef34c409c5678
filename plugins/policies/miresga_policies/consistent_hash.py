"""Consistent hashing with Maglev (Eisenbud et al., NSDI '16), weighted.

Theory of operation. Each backend gets a permutation of the table slots 0..M-1 (M prime),
``(offset + j * skip) mod M`` with offset and skip hashed from its *name* (not its position,
so the permutation survives other backends coming and going). Backends take turns claiming
their next free preferred slot (a backend of weight w takes w turns per round) until the
table is full. A request's key hash mod M indexes the table. Properties:

* balance: with equal weights every backend owns floor(M/N) or ceil(M/N) slots;
* minimal disruption: removing one of N backends moves its own keys plus a small extra
  fraction (measured in tests/bench: about 1/N in total);
* lookups are one table read: slot = FNV-1a-32(key) mod M, the VM's ``hash`` and ``tlook``
  ops, so the table (``index_table()``) is the data of the compiled form.

The key is the client address (IP, not port), a header, a cookie or the path; when the
chosen field is missing the client address is used, so such requests still spread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from miresga_core import Address, Backend, Policy, RequestHead
from miresga_core.config import opt

from .keyhash import key_hash, perm_hash

__all__ = ["ConsistentHash", "MaglevOptions", "is_prime", "maglev_table", "request_key"]

MAX_TABLE = 1_000_003  # memory bound: a table of this many slots per pool per worker
SEED_OFFSET, SEED_SKIP = 0x6F66667365740000, 0x736B697000000000  # "offset", "skip"


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    return all(n % d for d in range(3, math.isqrt(n) + 1, 2))


def _check_size(n: int) -> str | None:
    if n < 7 or n > MAX_TABLE:
        return f"must be between 7 and {MAX_TABLE}"
    if not is_prime(n):
        return f"must be a prime (e.g. 65537, 131071, 262139), {n} is not"
    return None


def _check_key(key: str) -> str:
    if key in ("client", "path"):
        return key
    kind, sep, name = key.partition(":")
    if sep and kind in ("header", "cookie") and name.strip():
        return f"{kind}:{name.strip().lower() if kind == 'header' else name.strip()}"
    raise ValueError(f"key must be client, path, header:<name> or cookie:<name>, got {key!r}")


@dataclass(frozen=True)
class MaglevOptions:
    key: str = opt("client", convert=_check_key,
                   doc="what is hashed: client | path | header:<name> | cookie:<name>")
    table_size: int = opt(65537, check=_check_size,
                          doc="Maglev table slots, a prime; keep it >= 100 x backends")


def maglev_table(names: Sequence[str], weights: Sequence[int], size: int) -> list[int]:
    """The lookup table: slot -> position in ``names``. Empty list when nothing has weight."""
    live = [i for i, w in enumerate(weights) if w > 0]
    if not live:
        return []
    if size < len(live):
        raise ValueError(f"table size {size} is smaller than the {len(live)} backends")
    g = math.gcd(*(weights[i] for i in live))
    # turns in name order: the table depends on the set of backends, not on their positions
    turns = [(i, weights[i] // g) for i in sorted(live, key=lambda i: names[i])]
    offset = {i: perm_hash(names[i].encode(), SEED_OFFSET) % size for i in live}
    skip = {i: perm_hash(names[i].encode(), SEED_SKIP) % (size - 1) + 1 for i in live}
    nxt = dict.fromkeys(live, 0)
    table = [-1] * size
    filled = 0
    while True:
        for i, count in turns:
            off, stp = offset[i], skip[i]
            for _ in range(count):
                j = nxt[i]
                slot = (off + j * stp) % size
                while table[slot] >= 0:  # at most size steps: skip is coprime with size
                    j += 1
                    slot = (off + j * stp) % size
                table[slot] = i
                nxt[i] = j + 1
                filled += 1
                if filled == size:
                    return table


def request_key(key: str, request: RequestHead | None, client: Address | None) -> bytes:
    """The bytes hashed for ``request`` under option ``key`` (client address if missing)."""
    value: str | None = None
    if request is not None:
        if key == "path":
            value = request.path
        elif key.startswith("header:"):
            value = request.header(key[7:])
        elif key.startswith("cookie:"):
            value = _cookie(request, key[7:])
    if value is None:
        value = client.host if client is not None else ""
    # parsers decode wire bytes as latin-1: encoding back gives the bytes the VM hashes
    return value.encode("latin-1", "replace")


def _cookie(request: RequestHead, name: str) -> str | None:
    for header, value in request.headers:  # HTTP/2 may split cookies over several headers
        if header != "cookie":
            continue
        for part in value.split(";"):
            k, sep, v = part.strip().partition("=")
            if sep and k == name:
                return v
    return None


class ConsistentHash(Policy):
    name = "consistent-hash"
    options = MaglevOptions

    def __init__(self, backends: Sequence[Backend], options: Any = None) -> None:
        super().__init__(backends, options or MaglevOptions())
        self.size = self.opts.table_size
        self.table = maglev_table([b.label for b in self.backends],
                                  [b.weight for b in self.backends], self.size)

    @classmethod
    def request_fields(cls, options: MaglevOptions | None) -> tuple[str, ...]:
        """Request fields the pick depends on (none when keyed by the client address)."""
        key = (options or MaglevOptions()).key
        if key == "client":
            return ()
        return ("header:cookie",) if key.startswith("cookie:") else (key,)

    def slot_of(self, request: RequestHead | None, client: Address | None) -> int:
        return key_hash(request_key(self.opts.key, request, client)) % self.size

    def pick(self, request: RequestHead | None, client: Address | None,
             exclude: frozenset[int] = frozenset()) -> Backend | None:
        if not self.table:
            return None
        slot = self.slot_of(request, client)
        backend = self.backends[self.table[slot]]
        if backend.index not in exclude:
            return backend
        # a retry: walk the table from the slot so the second choice is stable too
        for step in range(1, self.size):
            backend = self.backends[self.table[(slot + step) % self.size]]
            if backend.index not in exclude:
                return backend
        return None

    def compile(self, b: Any, refs: Any = None) -> Any:
        """Table form: ``tlook`` of the Maglev table at the key's hash.

        ``key = "client"``: r0, the caller's client hash, which must be
        ``keyhash.key_hash`` of the client IP text. ``path`` / ``header:<name>``: ``hash``
        of the parser's field register (``refs``), r0 when the header is absent (as the
        Python form falls back to the client address). ``cookie:`` keys have no compiled
        form (the program leaves the pick to ``pick``)."""
        key = self.opts.key
        if not self.table or key.startswith("cookie:"):
            return None
        from miresga_core.bytecode.builder import ARG_CLIENT_HASH

        table = b.table(self.index_table())
        reg = b.ireg()
        if key == "client":
            b.tlook(reg, ARG_CLIENT_HASH, table)
            return reg
        ref = (refs or {}).get(key)
        if ref is None:
            b.free(reg)
            return None
        b.mov(reg, ARG_CLIENT_HASH)
        done = b.label()
        if ref.present is not None:
            b.jeqi(ref.present, 0, done)
        b.hash(reg, ref.value)
        b.place(done)
        b.tlook(reg, reg, table)
        return reg

    def index_table(self) -> list[int]:
        """The table as pool indexes (``Backend.index``): the compiled form's data."""
        return [self.backends[p].index for p in self.table]
