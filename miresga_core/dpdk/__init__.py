"""The C front-end (native/dpdk): build helper, ctypes binding and program decider."""
