#!/usr/bin/env python3
"""Times isodose's plan-QA defaults against the reference tools, in one run:
3D gamma against pymedphys.gamma, and DVHs against dicompyler-core's dvhcalc.

Gamma cases (the arrays of scripts/bench_gamma.py: a 60 mm box field of 2 Gy
with logistic penumbrae on a low-dose bath, 128 x 128 x 100 voxels of 2 mm,
the evaluated dose shifted 1 mm along x and scaled by 1.01):
  - smooth: 2 %/2 mm global;
  - noisy: 3 %/2 mm global, the evaluated dose with uniform noise of +-1 %
    and +-2 % per voxel (seeded), where the continuous search does most of
    its work in the branch and bound.
Both with a 10 % low-dose cut-off, search step DTA/10 (pymedphys
interp_fraction=10), gamma searched up to 2. isodose runs with its defaults
(the continuous search, backend "auto") and, for comparison, its lattice
search; on a machine with a GPU also backend="gpu".

DVH case: the ROIs of the RayStation phantom (dicom-io/tests/data/aptg_sobp_RS.dcm)
on its RTDOSE (aptg_sobp_RD.dcm), isodose.dvh with its defaults against
dicompyler-core's get_dvh on the same files (which reads them itself; isodose
is timed without its file reading, which is timed separately).

Times: the fastest of `--repeat` warm calls (after one cold call, which for
pymedphys includes numba's compilation); pymedphys is slow, so it runs
twice (cold, warm). Usage: python scripts/bench_qa.py [--repeat N]
"""
import argparse
import platform
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gamma import case  # noqa: E402

import isodose  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RS = REPO / "dicom-io" / "tests" / "data" / "aptg_sobp_RS.dcm"
RD = REPO / "dicom-io" / "tests" / "data" / "aptg_sobp_RD.dcm"


def best(f, repeat):
    """(cold s, fastest warm s, last result) of `repeat` warm calls of f."""
    t = time.perf_counter()
    out = f()
    cold = time.perf_counter() - t
    warm = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        warm.append(time.perf_counter() - t)
    return cold, min(warm), out


def gamma_rows(name, ref, ev, axes, spacing, dd, dta, repeat, with_gpu):
    import pymedphys

    z, y, x = axes
    grid = isodose.Grid(shape=ref.shape, spacing_mm=(spacing,) * 3, origin_mm=(x[0], y[0], z[0]))
    r, e = isodose.Dose(ref, grid), isodose.Dose(ev, grid)
    rows = []
    runs = [("default", {}), ("lattice", {"search": "lattice"})]
    if with_gpu:
        runs.append(("default, gpu", {"backend": "gpu"}))
    for label, kw in runs:
        cold, warm, g = best(lambda: isodose.gamma(r, e, dd, dta, cutoff_percent=10.0, **kw), repeat)
        rows.append((f"isodose {label} ({g.backend})", cold, warm, g.pass_rate, g.evaluated_count))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cold, warm, g = best(
            lambda: pymedphys.gamma(
                axes, ref, axes, ev,
                dose_percent_threshold=dd, distance_mm_threshold=dta,
                lower_percent_dose_cutoff=10.0, interp_fraction=10, max_gamma=2.0,
                local_gamma=False, quiet=True,
            ),
            1,
        )
    valid = ~np.isnan(g)
    rows.append((f"pymedphys {pymedphys.__version__}", cold, warm, float(np.mean(g[valid] <= 1.0)), int(valid.sum())))
    print(f"\ngamma, {name}: {dd} %/{dta} mm global, 10 % cut-off, step DTA/10, grid {ref.shape[::-1]} of {spacing} mm")
    print(f"{'implementation':<44} {'cold s':>8} {'warm s':>8} {'x pymedphys':>12} {'pass %':>8} {'points':>8}")
    their = rows[-1][2]
    for label, cold, warm, rate, n in rows:
        print(f"{label:<44} {cold:>8.3f} {warm:>8.4f} {their / warm:>12.1f} {100 * rate:>8.2f} {n:>8}")


def dicompyler_dvhcalc():
    """dicompyler-core's dvhcalc, with the pydicom 3 aliases of
    python/tests/test_qa.py (its release 0.5.6 imports names pydicom 3 removed)."""
    import pydicom
    import pydicom.dicomio

    if not hasattr(pydicom.dicomio, "read_file"):
        from pydicom.pixels.utils import pixel_dtype

        util = types.ModuleType("pydicom.pixel_data_handlers.util")
        util.pixel_dtype = pixel_dtype
        handlers = types.ModuleType("pydicom.pixel_data_handlers")
        handlers.util = util
        pydicom.dicomio.read_file = pydicom.dcmread
        sys.modules.setdefault("pydicom.pixel_data_handlers", handlers)
        sys.modules.setdefault("pydicom.pixel_data_handlers.util", util)
    from dicompylercore import dvhcalc

    return dvhcalc


def dvh_rows(repeat):
    import pydicom

    dvhcalc = dicompyler_dvhcalc()
    t = time.perf_counter()
    structures, dose = isodose.read_structures(RS), isodose.read_dose(RD)
    read_s = time.perf_counter() - t
    numbers = {roi.ROIName: int(roi.ROINumber) for roi in pydicom.dcmread(RS).StructureSetROISequence}
    print(f"\nDVH: RayStation phantom ROIs on its RTDOSE {dose.grid.shape[::-1]} (isodose reads both files in {read_s:.3f} s)")
    print(f"{'ROI':<14} {'isodose s':>10} {'k=1 s':>8} {'dicompyler s':>13} {'isodose cc':>11} {'dicompyler cc':>14} {'D50 Gy':>7} {'theirs':>7}")
    for name, s in structures.items():
        if name not in numbers:
            continue
        try:
            _, ours_s, ours = best(lambda: isodose.dvh(dose, s), repeat)
            _, k1_s, _ = best(lambda: isodose.dvh(dose, s, subdivisions=1), repeat)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, theirs_s, theirs = best(lambda: dvhcalc.get_dvh(str(RS), str(RD), numbers[name]), 1)
        except Exception as exc:  # a ROI outside the dose grid, say
            print(f"{name:<14} skipped: {exc}")
            continue
        d50 = theirs.D50.value if theirs.volume > 0 else float("nan")
        print(
            f"{name:<14} {ours_s:>10.4f} {k1_s:>8.4f} {theirs_s:>13.4f} {ours.volume_cc:>11.3f} "
            f"{theirs.volume:>14.3f} {ours.d(50):>7.3f} {d50:>7.3f}"
        )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--gpu", action="store_true", help="also run isodose with backend='gpu'")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, isodose {isodose.__version__}")
    axes, ref, ev, spacing = case("full")
    gamma_rows("smooth", ref, ev, axes, spacing, 2.0, 2.0, args.repeat, args.gpu)
    for noise in (0.01, 0.02):
        rng = np.random.default_rng(2024)
        noisy = (ev * (1.0 + noise * rng.uniform(-1.0, 1.0, ev.shape))).astype(np.float32)
        gamma_rows(f"noisy (+-{100 * noise:.0f} % per voxel)", ref, noisy, axes, spacing, 3.0, 2.0, args.repeat, args.gpu)
    dvh_rows(args.repeat)


if __name__ == "__main__":
    main()
