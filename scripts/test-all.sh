#!/usr/bin/env bash
# Runs every test of isodose, installing what the tests need first.
# Usage: ./scripts/test-all.sh      (from anywhere inside the repository)
#
# Steps: system packages (Debian/Ubuntu, when missing), format and lint checks,
# the Rust test suite in release mode (unit, integration, property and doc tests,
# the CLI end to end), the examples, then the Python package built with maturin
# into a virtual environment and its pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# System packages the tests need: Python's venv, and the Vulkan loader with
# Mesa's software Vulkan driver (lavapipe), on which the GPU kernels are tested
# for real when the machine has no GPU.
APT_PACKAGES=(python3-venv libvulkan1 mesa-vulkan-drivers)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  step "installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# lavapipe's window-system probe wants a runtime directory
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/isodose-xdg-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --release -- -D warnings

step "cargo test (release)"
cargo test --workspace --release --exclude isodose-python

step "examples"
for ex in examples/*.rs; do
  name=$(basename "$ex" .rs)
  cargo run --release --quiet --example "$name" >/dev/null
  echo "example $name ok"
done

step "Python package (maturin) and pytest"
VENV=target/test-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# pymedphys and dicompyler-core are the independent references of the gamma
# and DVH cross-checks; matplotlib, nbclient, nbformat and ipykernel run the
# example notebook examples/isodose_tour.ipynb, which the pytest suite executes
# (python/tests/test_notebook.py) after building it here; mypy checks the
# stubs against the built module (python/tests/test_typing.py). With CI set, a
# missing reference package fails those tests instead of skipping them.
"$VENV/bin/python" -m pip install -q "maturin>=1.7,<2" pytest numpy scipy pydicom \
  pymedphys dicompyler-core matplotlib nbclient nbformat ipykernel tqdm mypy
"$VENV/bin/python" -m pip install -q ./python
# CI=1: the reference packages were installed above, so a missing one fails
# its cross-check instead of skipping it (python/tests/conftest.py)
CI="${CI:-1}" "$VENV/bin/python" -m pytest -q python/tests
