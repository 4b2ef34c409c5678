#!/usr/bin/env bash
# Installs everything Miresga's build, tests and benchmarks need on a bare Debian bookworm
# machine. Idempotent: packages already present are skipped by apt/pip themselves.
# Usage: scripts/bootstrap.sh [--no-apt]   (MIRESGA_VENV=path to choose the virtualenv)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${MIRESGA_VENV:-$here/.venv}"

APT_PACKAGES=(
  # build: the C VM extension, BPF objects, the DPDK front-end
  build-essential clang llvm libbpf-dev libelf-dev zlib1g-dev linux-libc-dev bpftool
  pkg-config meson ninja-build dpdk libdpdk-dev libclang-rt-14-dev
  # lab: namespaces, veth, tc, ethtool
  iproute2 ethtool iputils-ping
  # real peers for tests and benchmarks
  curl nginx-light haproxy wrk nghttp2-client
)

if [[ "${1:-}" != "--no-apt" ]] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "bootstrap: apt installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # the distribution starts nginx/haproxy services on install; tests start their own
  for svc in nginx haproxy; do
    (command -v systemctl >/dev/null && systemctl stop "$svc" 2>/dev/null) || true
    pkill -x "$svc" 2>/dev/null || true
  done
fi

if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q -e "$here[dev]"
if [[ -d "$here/plugins/grpc" ]]; then
  "$venv/bin/pip" install -q -e "$here/plugins/grpc"
fi
echo "bootstrap: ready ($venv)"
