"""Header-match: a request header's value names the backend of the pool that serves it.

``exact`` maps whole values to backend names, ``prefix`` maps value prefixes (the longest
matching prefix wins, so the order in the file does not matter). Requests without the
header, with a value that maps to nothing, or whose backend is down or excluded (a retry)
go to the ``fallback`` policy over the pool's live backends: ``round-robin``,
``consistent-hash`` (keyed by the client address) or ``none`` (answered 503).
Backend names are checked against the pool when the config is loaded (``check_pool``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from miresga_core import Address, Backend, Policy, RequestHead
from miresga_core.config import opt

from .consistent_hash import ConsistentHash
from .round_robin import RoundRobin

__all__ = ["HeaderMatch", "HeaderMatchOptions"]


def _header(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or any(c in name for c in " :\t"):
        raise ValueError(f"expected a header name, got {name!r}")
    return name.strip().lower()


def _value_map(raw: Any) -> Mapping[str, str]:
    if not isinstance(raw, dict):
        raise ValueError("expected a table of header value = backend name")
    for value, backend in raw.items():
        if not isinstance(backend, str) or not backend:
            raise ValueError(f"{value!r}: expected a backend name, got {backend!r}")
    return dict(raw)


@dataclass(frozen=True)
class HeaderMatchOptions:
    header: str = opt(convert=_header, doc="request header whose value selects the backend")
    exact: Any = opt({}, convert=_value_map, doc="table: header value = backend name")
    prefix: Any = opt({}, convert=_value_map,
                      doc="table: value prefix = backend name (longest prefix wins)")
    fallback: Literal["round-robin", "consistent-hash", "none"] = opt(
        "round-robin", doc="policy for unmatched requests: round-robin | consistent-hash | none")


class HeaderMatch(Policy):
    name = "header-match"
    options = HeaderMatchOptions

    def __init__(self, backends: Sequence[Backend], options: Any = None) -> None:
        super().__init__(backends, options)
        opts: HeaderMatchOptions = self.opts
        by_name = {b.label: b for b in self.backends}
        # names whose backend is not live are dropped: those requests take the fallback
        self.exact = {v: by_name[n] for v, n in opts.exact.items() if n in by_name}
        self.prefixes = sorted(((p, by_name[n]) for p, n in opts.prefix.items() if n in by_name),
                               key=lambda item: -len(item[0]))
        self.fallback: RoundRobin | ConsistentHash | None = None  # both accept no request
        if opts.fallback == "round-robin":
            self.fallback = RoundRobin(self.backends)
        elif opts.fallback == "consistent-hash":
            self.fallback = ConsistentHash(self.backends)

    @classmethod
    def request_fields(cls, options: HeaderMatchOptions) -> tuple[str, ...]:
        return (f"header:{options.header}",)

    def compile(self, b: Any, refs: Any = None) -> Any:
        """Compiled form: exact values, then prefixes longest first, each a compare and a
        constant backend index; unmatched requests take round-robin's table form, or -1
        (let ``pick`` decide) for the other fallbacks."""
        ref = (refs or {}).get(f"header:{self.opts.header}")
        if ref is None:
            return None
        reg = b.ireg()
        done, miss = b.label(), b.label()
        if ref.present is not None:
            b.jeqi(ref.present, 0, miss)
        cases = [("jseq", value, backend) for value, backend in self.exact.items()]
        cases += [("jspre", prefix, backend) for prefix, backend in self.prefixes]
        hits = []
        for op, value, backend in cases:
            try:
                raw = value.encode("latin-1")
            except UnicodeEncodeError:
                continue  # no request decodes to this value
            hit = b.label()
            b.emit(op, ref.value, raw, hit)
            hits.append((hit, backend))
        b.jmp(miss)
        for hit, backend in hits:
            b.place(hit)
            b.movi(reg, backend.index)
            b.jmp(done)
        b.place(miss)
        fallback = self.fallback.compile(b) if isinstance(self.fallback, RoundRobin) else None
        if fallback is not None:
            b.mov(reg, fallback)
            b.free(fallback)
        else:
            b.movi(reg, -1)
        b.place(done)
        return reg

    @classmethod
    def check_pool(cls, names: Sequence[str], options: HeaderMatchOptions) -> str | None:
        """Config-time check: every mapped backend name exists in the pool."""
        for table in ("exact", "prefix"):
            for value, name in getattr(options, table).items():
                if name not in names:
                    return (f"options.{table}: {value!r} names backend {name!r}, not in the "
                            f"pool (backends: {', '.join(names)})")
        return None

    def match(self, value: str | None) -> Backend | None:
        """The backend mapped to header ``value`` (live backends only), or None."""
        if value is None:
            return None
        hit = self.exact.get(value)
        if hit is not None:
            return hit
        for prefix, backend in self.prefixes:
            if value.startswith(prefix):
                return backend
        return None

    def pick(self, request: RequestHead | None, client: Address | None,
             exclude: frozenset[int] = frozenset()) -> Backend | None:
        value = request.header(self.opts.header) if request is not None else None
        hit = self.match(value)
        if hit is not None and hit.index not in exclude:
            return hit
        if self.fallback is None:
            return None
        return self.fallback.pick(request, client, exclude)
