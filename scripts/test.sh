#!/usr/bin/env bash
# The whole test suite, as the README documents it and CI runs it:
# install what is needed, then lint (ruff), type-check (mypy), and run pytest.
# Tests marked root/netns run when this runs as root (CI does) and are skipped otherwise.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
scripts/bootstrap.sh
venv="${MIRESGA_VENV:-$here/.venv}"
export PATH="$venv/bin:$PATH"
echo "== ruff"; ruff check .
echo "== mypy"; mypy
echo "== pytest"; python -m pytest -p no:cacheprovider ${PYTEST_ARGS:-}
