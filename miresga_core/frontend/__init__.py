"""The packet-level front-end (``xdp`` data plane): sans-I/O machine + I/O shell."""

from .decider import CoreDecider, Decider, Decision, RouterDecider, make_core_decider
from .machine import Frontend, FrontendConfig, VipParams
from .state import Offload, Transmit, Unoffload

__all__ = ["CoreDecider", "Decider", "Decision", "Frontend", "FrontendConfig", "Offload",
           "RouterDecider", "Transmit", "Unoffload", "VipParams", "make_core_decider"]
