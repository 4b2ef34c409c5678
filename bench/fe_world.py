"""The front-end world the packets/s bench and the front-end tests share: the VIP, the
switch's cookie key and the agent's key, the clock, the listener, and the two steps of a
connection the world plays itself (the client's cookie handshake, the agent's answer to a
forged SYN).

It lives in ``bench`` because the bench is installed and importable from the tests (the
repository root is on their path), while the tests are not a package the bench could
import; tests/frontend/fe_world.py and tests/dpdk/tracegen.py build on it.
"""

from __future__ import annotations

import textwrap
from typing import Any

from miresga_core import cookie
from miresga_core.api import Address
from miresga_core.config import parse_config
from miresga_core.dpdk.decider import ProgramDecider
from miresga_core.frontend import FrontendConfig, VipParams
from miresga_core.frontend.packet import Segment
from miresga_core.wire import option

__all__ = [
    "AGENT_KEY",
    "COOKIE_KEY",
    "LISTENER",
    "MS",
    "T0",
    "TIMERS",
    "VIP",
    "S",
    "cookie_isn",
    "decider",
    "fe_config",
    "frontend_config",
    "leg_base",
]

S, MS = 10**9, 10**6
T0 = 1_800_000_000 * S  # unix ns: a fixed clock, so recorded traces repeat
VIP = Address("10.0.0.100", 80)
AGENT_KEY = bytes(range(16))
COOKIE_KEY = bytes.fromhex("0102030405060708")

# the listener on VIP every world's configuration starts with: pool "blue" by default,
# "/green" to pool "green"; a world appends its own routes, then its pools
LISTENER = textwrap.dedent(f"""\
    [[listeners]]
    name = "web"
    listen = "{VIP.host}:{VIP.port}"
    default_pool = "blue"
    [[listeners.routes]]
    pool = "green"
    match = {{ path = {{ prefix = "/green" }} }}
""")

# timers short enough that a recorded trace of a few simulated minutes reaches each of them
TIMERS: dict[str, Any] = dict(max_head=3000, syn_rto_ns=S, syn_retries=2,
                              idle_timeout_ns=40 * S, offloaded_idle_timeout_ns=90 * S,
                              close_grace_ns=2 * S)


def frontend_config(**tuning: Any) -> FrontendConfig:
    """The front-end serving VIP with the agent's key (no previous key); ``tuning``:
    FrontendConfig's keywords."""
    return FrontendConfig({VIP: VipParams(wscale=7, mss=1460)}, (AGENT_KEY, None), **tuning)


def fe_config(**tuning: Any) -> FrontendConfig:
    """The configuration recorded traces are made with (TIMERS), plus ``tuning``."""
    return frontend_config(**TIMERS, **tuning)


def decider(registry: Any, config: str) -> ProgramDecider:
    """The compiled rule program of the listener "web" in ``config``."""
    return ProgramDecider.from_config(parse_config(config, registry), "web", registry)


def cookie_isn(client: Address, slot: int, mss: int | None = 1460, wscale: int | None = 7,
               sack: bool = True) -> int:
    """The ISN the switch's SYN-ACK gave ``client`` in cookie ``slot``: the handshake's
    ACK acknowledges it + 1, and the front-end checks it then."""
    return cookie.encode(COOKIE_KEY, client.host, client.port, VIP.host, VIP.port, slot,
                         cookie.mss_class(mss), wscale, sack)


def leg_base(syn: Segment) -> int:
    """The server-side sequence base a forged SYN carries, verified with the agent's key as
    the agent does before it answers the SYN."""
    miresga, _ts = option.split_syn_options(syn.options)
    return option.verify(miresga, (AGENT_KEY, None), saddr=syn.src, daddr=syn.dst,
                         sport=syn.sport, dport=syn.dport, seq=syn.seq).seq_base
