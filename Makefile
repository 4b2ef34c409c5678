# Everyday targets. `make test` is what CI runs (via .ci/run).
.PHONY: setup demo test lint typecheck unit native clean

setup:
	scripts/bootstrap.sh

demo: setup
	.venv/bin/miresga serve -c miresga.toml --demo-backends

test:
	scripts/test.sh

lint:
	.venv/bin/ruff check .

typecheck:
	.venv/bin/mypy

unit:  # fast tests only: no root, no namespaces, no slow end-to-end runs
	.venv/bin/python -m pytest -m "not root and not netns and not slow"

native:
	$(MAKE) -C native/xdp
	$(MAKE) -C native/dpdk/vm all ext
	$(MAKE) -C native/dpdk

clean:
	rm -rf .venv build *.egg-info .pytest_cache .mypy_cache .ruff_cache
	-$(MAKE) -C native/xdp clean
	-$(MAKE) -C native/dpdk/vm clean
	-$(MAKE) -C native/dpdk clean
