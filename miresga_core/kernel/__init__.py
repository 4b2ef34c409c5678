"""The ``kernel`` data plane: the host kernel's TCP stack accepts on the VIP, asyncio workers
parse and route every request, backends are reached over ordinary sockets."""
