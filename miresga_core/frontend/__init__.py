"""The packet-level front-end (``xdp`` data plane): sans-I/O machine + I/O shell."""

from .decider import Decider, Decision, RouterDecider
from .machine import Frontend, FrontendConfig, VipParams
from .state import Offload, Transmit, Unoffload

__all__ = ["Decider", "Decision", "Frontend", "FrontendConfig", "Offload", "RouterDecider",
           "Transmit", "Unoffload", "VipParams"]
