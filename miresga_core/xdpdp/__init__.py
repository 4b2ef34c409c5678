"""The ``xdp`` data plane: the XDP software switch, packet-level front-ends, back-end
agents, run in a lab of network namespaces (docs/xdp-dataplane.md)."""
