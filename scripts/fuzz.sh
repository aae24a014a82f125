#!/usr/bin/env bash
# Short coverage-guided fuzz run of every DICOM-RT reader (cargo-fuzz,
# libFuzzer), seeded with the real files of dicom-io/tests/data.
# Usage: ./scripts/fuzz.sh [seconds per target, default 60] [target...]
# Crashes are written to dicom-io/fuzz/artifacts/<target>/; reproduce one with
#   (cd dicom-io && RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>)
# cargo-fuzz needs nightly-only compiler flags; with the stable toolchain they
# are unlocked by RUSTC_BOOTSTRAP=1 (fuzzing only, never for releases).
set -euo pipefail
cd "$(dirname "$0")/../dicom-io"
SECONDS_PER_TARGET=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(rtdose rt_ion_plan rtstruct rt_brachy_plan ct_slice)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for t in "${TARGETS[@]}"; do
  corpus="fuzz/corpus/$t"
  mkdir -p "$corpus"
  cp -n tests/data/*.dcm "$corpus/" 2>/dev/null || true
  echo "==> fuzzing $t for ${SECONDS_PER_TARGET}s"
  # -rss_limit_mb: a corrupted length may make dicom-rs allocate its value
  cargo fuzz run "$t" "$corpus" -- -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 -max_len=3000000
done
