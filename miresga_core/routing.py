"""Routes and pools: the pure decision of where a request goes.

``Router.route(head, client)`` runs the listener's routes (first match wins, then the
default pool) and the pool's policy over the backends that are currently up. It is the
Python reference of the compiled rule program. Health state enters through
``PoolState.set_up`` / ``mark_failed``; a policy is rebuilt when the set of usable backends
changes, so picks never see a down backend. Nothing here does I/O: time is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .api import Address, Backend, OffloadMode, ParserPlugin, Policy, RequestHead
from .config import ListenerConfig, PoolConfig, RouteConfig

__all__ = ["PoolState", "RouteResult", "Router", "match_route", "route_scope"]


@dataclass(frozen=True, slots=True)
class RouteResult:
    """Outcome of routing: the route that matched (None: default pool), the pool name
    ("" when nothing matched and there is no default), and the backend (None: no backend up)."""

    route: RouteConfig | None
    pool: str
    backend: Backend | None
    offload: OffloadMode = OffloadMode.SPLICE


class PoolState:
    """A pool's backends, which of them are usable now, and the policy over those."""

    def __init__(self, config: PoolConfig, policy_cls: type[Policy]) -> None:
        self.config = config
        self.name = config.name
        self.policy_cls = policy_cls
        self.backends: tuple[Backend, ...] = config.backend_objects()
        self.admin_up = [True] * len(self.backends)  # active health verdict
        self.failed_until = [0.0] * len(self.backends)  # passive: out until this time
        self.passive_failures = [0] * len(self.backends)  # connect failures and resets seen
        self._usable: tuple[bool, ...] = ()
        self.policy: Policy = policy_cls(self.backends, config.options)
        self._rebuild(0.0)

    def usable(self, index: int, now: float) -> bool:
        return self.admin_up[index] and self.failed_until[index] <= now

    def set_up(self, index: int, up: bool, now: float = 0.0) -> bool:
        """Active health verdict for backend ``index``; True when it changed."""
        if self.admin_up[index] == up:
            return False
        self.admin_up[index] = up
        if up:
            self.failed_until[index] = 0.0
        self._rebuild(now)
        return True

    def mark_failed(self, index: int, now: float, cooldown: float) -> None:
        """Passive failure (connect refused, reset): keep the backend out for ``cooldown``."""
        self.passive_failures[index] += 1
        self.failed_until[index] = now + cooldown
        self._rebuild(now)

    def refresh(self, now: float) -> None:
        """Bring back backends whose passive cooldown has ended."""
        usable = tuple(self.usable(i, now) for i in range(len(self.backends)))
        if usable != self._usable:
            self._rebuild(now)

    def _rebuild(self, now: float) -> None:
        self._usable = tuple(self.usable(i, now) for i in range(len(self.backends)))
        live = [b for b, ok in zip(self.backends, self._usable, strict=True) if ok and b.weight > 0]
        self.policy = self.policy_cls(live, self.config.options)
        self.next_expiry = min((t for t in self.failed_until if t > now), default=0.0)

    def pick(self, head: RequestHead, client: Address | None, exclude: frozenset[int],
             now: float) -> Backend | None:
        if self.next_expiry and now >= self.next_expiry:
            self.refresh(now)
        return self.policy.pick(head, client, exclude)

    def status(self, now: float) -> list[dict[str, Any]]:
        return [{"backend": b.label, "address": str(b.address), "weight": b.weight,
                 "up": self.admin_up[i], "passive_out": self.failed_until[i] > now,
                 "passive_failures": self.passive_failures[i]}
                for i, b in enumerate(self.backends)]


def match_route(routes: Sequence[RouteConfig], head: RequestHead) -> RouteConfig | None:
    """First route whose conditions all hold, or None."""
    for route in routes:
        if all(cond.matches(head.field(cond.field)) for cond in route.match):
            return route
    return None


class Router:
    """Routing for one listener over shared pool states."""

    def __init__(self, listener: ListenerConfig, pools: Mapping[str, PoolState]) -> None:
        self.listener = listener
        self.pools = pools

    def route(self, head: RequestHead, client: Address | None,
              exclude: frozenset[int] = frozenset(), now: float = 0.0) -> RouteResult:
        route = match_route(self.listener.routes, head)
        pool_name = route.pool if route else self.listener.default_pool
        offload = route.offload if route else OffloadMode.SPLICE
        if not pool_name:
            return RouteResult(route, "", None, offload)
        backend = self.pools[pool_name].pick(head, client, exclude, now)
        return RouteResult(route, pool_name, backend, offload)


def route_scope(listener: ListenerConfig, parser: ParserPlugin,
                policies: Mapping[str, tuple[type[Policy], Any]]
                ) -> Literal["connection", "request"]:
    """Whether this listener's decisions can be made once per connection.

    The request fields a decision depends on are those of the route conditions (when the
    routes lead to more than one place) plus those the pools' policies hash or match on
    (``Policy.request_fields(options)``, optional). No such field: "connection". Otherwise
    the parser says whether its protocol can route those per request on one connection.
    ``policies`` maps pool name -> (policy class, options).
    """
    targets = {route.pool for route in listener.routes}
    catch_all = any(not route.match for route in listener.routes)
    if not catch_all and listener.routes:
        targets.add(listener.default_pool)  # "" stands for the 404 answer
    elif not listener.routes:
        targets = {listener.default_pool}
    fields: set[str] = set()
    if len(targets) > 1:
        fields |= {cond.field for route in listener.routes for cond in route.match}
    for pool in targets - {""}:
        policy, options = policies[pool]
        extra = getattr(policy, "request_fields", None)
        if extra is not None:
            fields |= set(extra(options))
    return parser.route_scope(fields) if fields else "connection"
