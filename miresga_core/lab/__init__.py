"""The Miresga lab: network namespaces and veth links for clients, the switch, front-ends
and backends (``miresga lab up|down|status``; docs/lab.md).

    spec = LabSpec(prefix="mrs-", clients=1, frontends=2)
    with Lab(spec) as lab:          # up() on enter, down() on exit (even after a failure)
        lab.run_in(lab.client(0).ns, fn)
"""

from .netns import in_netns, netns_exists
from .spec import Host, LabSpec
from .topology import Lab, LabError, down, load_spec, status, up

__all__ = ["Host", "Lab", "LabError", "LabSpec", "down", "in_netns", "load_spec", "netns_exists",
           "status", "up"]
