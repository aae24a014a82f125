#!/usr/bin/env python3
"""Times 3D gamma 2 %/2 mm on the case of benches/qa.rs with pymedphys and,
when the isodose module is installed, with isodose (CPU, and GPU if any).

The arrays are built here with the same formula as benches/qa.rs: a 60 mm box
field of 2 Gy with logistic penumbrae on a low-dose bath, 128 x 128 x 100
voxels of 2 mm; the evaluated dose is shifted 1 mm along x and scaled by 1.01.
Settings shared by both tools: global 2 %/2 mm, 10 % low-dose cut-off of the
reference maximum, search step DTA/10 (pymedphys interp_fraction=10), gamma
searched up to 2.

isodose runs its lattice search (the same search as pymedphys) on the CPU
and the GPU, and its continuous search (CPU only).

Usage: python scripts/bench_gamma.py [--size small|full] [--skip-pymedphys]
Prints a table; "small" (64 x 64 x 50 voxels of 4 mm) is quick. Every
implementation runs twice: the first (cold: numba's JIT compilation for
pymedphys, device and pipeline set-up for a GPU) and the second (warm) time
are both printed.
"""
import argparse
import platform
import time

import numpy as np


def field(x, y, z, shift_x=0.0):
    def edge(u):
        return 1.0 / (1.0 + np.exp(-(u + 30.0) / 2.0)) / (1.0 + np.exp((u - 30.0) / 2.0))

    x = x - shift_x
    r2 = x * x + y * y + z * z
    return 2.0 * edge(x) * edge(y) * edge(z) + 0.1 * np.exp(-r2 / (2.0 * 60.0 * 60.0))


def case(size):
    if size == "full":
        shape, spacing = (100, 128, 128), 2.0
    else:
        shape, spacing = (50, 64, 64), 4.0
    nz, ny, nx = shape
    # centred like benches/qa.rs: first voxel at -(n-1)/2 * spacing
    z = (np.arange(nz) - (nz - 1) / 2.0) * spacing
    y = (np.arange(ny) - (ny - 1) / 2.0) * spacing
    x = (np.arange(nx) - (nx - 1) / 2.0) * spacing
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    ref = field(xx, yy, zz).astype(np.float32)
    ev = (1.01 * field(xx, yy, zz, 1.0)).astype(np.float32)
    return (z, y, x), ref, ev, spacing


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="full", choices=["small", "full"])
    ap.add_argument("--skip-pymedphys", action="store_true")
    args = ap.parse_args()
    axes, ref, ev, spacing = case(args.size)
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"grid {ref.shape[::-1]} voxels of {spacing} mm ({ref.size / 1e6:.2f} M)")
    rows = []
    try:
        import isodose

        z, y, x = axes
        grid = isodose.Grid(shape=ref.shape, spacing_mm=(spacing,) * 3, origin_mm=(x[0], y[0], z[0]))
        r, e = isodose.Dose(ref, grid), isodose.Dose(ev, grid)
        for backend, search in [("cpu", "lattice"), ("cpu", "continuous"), ("gpu", "lattice")]:
            try:
                times = []
                for _ in range(2):
                    t = time.perf_counter()
                    g = isodose.gamma(
                        r, e, dose_percent=2.0, dta_mm=2.0, cutoff_percent=10.0, backend=backend, search=search
                    )
                    times.append(time.perf_counter() - t)
                rows.append((f"isodose {search} {g.backend}", times, g.pass_rate, g.evaluated_count))
            except Exception as exc:  # no GPU: report and go on
                print(f"isodose {backend}: {exc}")
    except ImportError:
        print("isodose not installed: pip install ./python")
    if not args.skip_pymedphys:
        import pymedphys

        times = []
        for _ in range(2):
            t = time.perf_counter()
            g = pymedphys.gamma(
                axes, ref, axes, ev,
                dose_percent_threshold=2.0, distance_mm_threshold=2.0,
                lower_percent_dose_cutoff=10.0, interp_fraction=10, max_gamma=2.0,
                local_gamma=False, quiet=True,
            )
            times.append(time.perf_counter() - t)
        valid = ~np.isnan(g)
        rows.append((f"pymedphys {pymedphys.__version__}", times,
                     float(np.mean(g[valid] <= 1.0)), int(valid.sum())))
    print(f"{'implementation':<72} {'cold s':>8} {'warm s':>8} {'pass %':>8} {'points':>9}")
    for name, (cold, warm), rate, n in rows:
        print(f"{name:<72} {cold:>8.3f} {warm:>8.3f} {100 * rate:>8.2f} {n:>9}")


if __name__ == "__main__":
    main()
