"""Build hook for the C rule VM extension (``miresga_core._mvm``); metadata is in pyproject.toml.

``pip install .`` compiles it; ``make -C native/dpdk/vm ext`` builds it in place for tests.
The sources have no dependency beyond libc (no DPDK)."""

from setuptools import Extension, setup

VM = "native/dpdk/vm/"

setup(
    ext_modules=[
        Extension(
            "miresga_core._mvm",
            sources=[VM + f for f in ("mvm_py.c", "mvm_load.c", "mvm_validate.c",
                                      "mvm_exec.c", "mvm_hpack.c", "mvm_dump.c")],
            include_dirs=[VM],
            extra_compile_args=["-O2", "-std=c11", "-fno-gcse", "-fno-crossjumping"],
        )
    ],
)
