"""MCsquare "measured" beam data in water for commissioning: integral depth doses (IDDs) of single pencil beams and
in-air spot sizes, for OpenTPS's stock IBA dedicated-nozzle beam model BDL_default_DN_RangeShifter AS SHIPPED.

Run once, by hand, never in CI (about a minute per energy on 2 cores):

    PY312=/path/to/python3.12 bash ../shared/mcsquare/opentps-setup.sh   # builds /tmp/opentps-venv
    /tmp/opentps-venv/bin/python scripts/mcsquare/idd_cases.py [--primaries N] [E ...]   # MC + write outputs
    /tmp/opentps-venv/bin/python scripts/mcsquare/idd_cases.py --write-only             # re-write from the cache
    /tmp/opentps-venv/bin/python scripts/mcsquare/idd_cases.py --check-optics           # MC check of spot_sigma()

It writes dose-core/tests/data/commissioning/mcsquare_dn/:
  idd_<E>MeV.csv          depth_mm, idd_gy_mm2_per_mu, se_gy_mm2_per_mu: depth of the voxel centre below the entrance
                          face (mm); laterally integrated dose to water sum_x sum_z D dx dz over the whole phantom cross
                          section (Gy mm^2 for 1 MU of that energy, i.e. Gy per proton x protons/MU of the BDL); its
                          standard error (std over the independent seeded sub-runs / sqrt(n_sub)).
  spot_sizes_in_air.csv   nominal_energy_mev, z_mm, sigma_x_mm, sigma_y_mm: in-air (vacuum transport, as MCsquare
                          does) spot sigma at z mm from the isocentre (z > 0 downstream), from the BDL optics with
                          MCsquare's beam-optics formula (see spot_sigma() and README.md).
  spot_sizes_in_air_per_gaussian.csv  the same per Gaussian (weights, sigma_1, sigma_2): core and halo separately.
  meta.json               versions, BDL text, scanner tables, grids, primaries, seeds, wall times, interpolated beam
                          parameters per energy, R80 with its MC uncertainty.
  README.md is written by hand (provenance, caveats).
Per-energy MC results are cached in /tmp/mcref/idd_cache/<E>.json so the outputs can be re-written without MC.

Conventions as in run_cases.py (whose scanner, seeded calculator and log helpers are imported): OpenTPS arrays are
[x, y, z]; gantry 0, beam along +y; the scanner maps HU 0 to pure water; one spot (0, 0) at the isocentre, which lies
on the centre of the entrance face y = 0.
"""
import glob
import json
import math
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_cases as rc  # noqa: E402  (sets HOME=/tmp/mcref/home, quietens OpenTPS, logs MCsquare to files)
from run_cases import SeededMCsquare, _PopenLogger, parse_log, make_scanner  # noqa: E402

import numpy as np  # noqa: E402
from opentps.core.data.images import CTImage  # noqa: E402
from opentps.core.data.plan import ProtonPlan, PlanProtonBeam, PlanProtonLayer  # noqa: E402
from opentps.core.io import mcsquareIO  # noqa: E402
from opentps.core.io.scannerReader import readScanner  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO, "dose-core", "tests", "data", "commissioning", "mcsquare_dn")
REPO_BDL_COPY = os.path.join(REPO, "dose-core", "tests", "data", "bdl", "BDL_default_DN_RangeShifter.txt")
STOCK_BDL = rc.STOCK_BDL  # .../MCsquare/BDL/BDL_default_DN_RangeShifter.txt inside the opentps-core package
WORK = os.path.join(rc.ROOT, "idd_work")
CACHE = os.path.join(rc.ROOT, "idd_cache")

ENERGIES = [70.0, 80.0, 90.0, 100.0, 120.0, 140.0, 160.0, 180.0, 200.0, 220.0]
N_PRIMARIES = 1_000_000
N_SUB = 4
DXZ = 4.0  # lateral voxel (mm), x and z
NXZ = 61  # lateral voxels: 61 x 4 mm = 244 mm, the central voxel centred on the beam axis
Z_IN_AIR = [-200.0, -100.0, 0.0, 100.0, 200.0]  # mm from the isocentre, > 0 downstream


def seed0(energy):
    return 30000 + 10 * int(round(energy))


def grid(energy):
    """Per-energy phantom: depth voxel 0.5 mm (E <= 100 MeV) or 1 mm; depth extent = CSDA-like range estimate
    (Bragg-Kleeman 0.0022 E^1.77 cm) + >= 25 mm, rounded up to 10 mm. Returns spacing, shape, origin (x, y, z)."""
    dy = 0.5 if energy <= 100.0 else 1.0
    r_mm = 10.0 * 0.0022 * energy ** 1.77
    length = 10.0 * math.ceil((r_mm + 25.0) / 10.0)
    ny = int(round(length / dy))
    spacing = (DXZ, dy, DXZ)
    shape = (NXZ, ny, NXZ)
    origin = (-(NXZ // 2) * DXZ, 0.5 * dy, -(NXZ // 2) * DXZ)  # voxel-centre of (0,0,0); entrance face at y = 0
    return spacing, shape, origin


def build_plan(energy):
    plan = ProtonPlan()
    beam = PlanProtonBeam()
    beam.gantryAngle = 0.0
    beam.couchAngle = 0.0
    beam.isocenterPosition = [0.0, 0.0, 0.0]
    layer = PlanProtonLayer(float(energy))
    layer.appendSpot([0.0], [0.0], [1.0])  # 1 MU
    beam.appendLayer(layer)
    plan.appendBeam(beam)
    return plan


def run_energy(energy, calib, bdl, n_total):
    spacing, shape, origin = grid(energy)
    ct = CTImage(imageArray=np.zeros(shape, np.float32), origin=origin, spacing=spacing)
    n_each = int(n_total // N_SUB)
    ppmu = float(bdl.computeMU2Protons(energy))
    idds, infos, txt = [], [], {}
    t0 = time.time()
    for h in range(N_SUB):
        name = f"idd_{int(energy)}_s{h}"
        mc = SeededMCsquare(seed=seed0(energy) + h, extra={"Dose_to_Water_conversion": "OnlineSPR"})
        mc.simulationDirectory = os.path.join(WORK, name)
        os.makedirs(mc.simulationDirectory, exist_ok=True)
        mc._doseFilePath = os.path.join(mc._workDir, "Dose.mhd")
        mc.beamModel = bdl
        mc.ctCalibration = calib
        mc.nbPrimaries = n_each
        _PopenLogger.log_path = os.path.join(WORK, name + ".log")
        t = time.time()
        try:
            dose = mc.computeDose(ct, build_plan(energy))
        finally:
            _PopenLogger.close()
        wall = time.time() - t
        # OpenTPS scales MCsquare's dose by the plan's delivered protons (1 MU x protons/MU): Gy for 1 MU
        arr = np.asarray(dose.imageArray, dtype=np.float64)
        assert arr.shape == shape and np.allclose(dose.origin, origin) and np.allclose(dose.spacing, spacing)
        idd = arr.sum(axis=(0, 2)) * spacing[0] * spacing[2]  # Gy mm^2 per MU, along y
        # fraction of the integral in the outer lateral ring (|x| or |z| > 100 mm): halo containment check
        xs = origin[0] + spacing[0] * np.arange(shape[0])
        outer = (np.abs(xs)[:, None] > 100.0) | (np.abs(xs)[None, :] > 100.0)
        ring = float(arr.sum(axis=1)[outer].sum() / arr.sum())
        info = parse_log(_PopenLogger.log_path)
        info.update(wall_s=wall, seed=seed0(energy) + h, primaries=n_each, dose_fraction_outside_100mm=ring)
        if h == 0:
            simdir = os.path.join(mc.simulationDirectory, "MCsquare_simulation")
            for key, f in (("config_txt", "config.txt"), ("plan_txt", "PlanPencil.txt"), ("bdl_txt", "bdl.txt"),
                           ("hu_density_txt", "Scanner/HU_Density_Conversion.txt"),
                           ("hu_material_txt", "Scanner/HU_Material_Conversion.txt")):
                txt[key] = open(os.path.join(simdir, f)).read()
        idds.append(idd.tolist())
        infos.append(info)
        shutil.rmtree(mc.simulationDirectory, ignore_errors=True)
        print(f"  [{energy:g} MeV] sub-run {h + 1}/{N_SUB}: {n_each:.3g} primaries, wall {wall:.1f} s, "
              f"MC {info['mc_time_s']} s, outside-100mm fraction {ring:.2e}", flush=True)
    res = {"energy_mev": energy, "spacing_mm_xyz": spacing, "shape_xyz": shape, "origin_mm_xyz": origin,
           "protons_per_mu": ppmu, "n_primaries": n_each * N_SUB, "n_sub": N_SUB, "idd_subs": idds,
           "runs": infos, "wall_s": time.time() - t0, **txt}
    os.makedirs(CACHE, exist_ok=True)
    json.dump(res, open(os.path.join(CACHE, f"{int(energy)}.json"), "w"))
    print(f"[{energy:g} MeV] done in {res['wall_s']:.0f} s", flush=True)
    return res


def check_optics(calib, bdl, energies=(70.0, 220.0), iso_y=(0.0, -200.0), n_total=200_000):
    """Check spot_sigma() against MCsquare itself: the lateral second moments of the dose in the first 0.5 mm of a
    thin water slab (0.5 mm lateral voxels over 244 mm; multiple scattering in 0.25 mm is negligible) for the
    isocentre on the slab face (z = 0) and 200 mm upstream of it (the face at z = +200 mm downstream of the
    isocentre). BDL x -> CT x, BDL y -> CT z at gantry 0."""
    out = []
    d_noz = float(bdl.nozzle_isocenter)
    for energy in energies:
        for iy in iso_y:
            spacing, shape, origin = (0.5, 0.5, 0.5), (488, 4, 488), (-121.75, 0.25, -121.75)
            ct = CTImage(imageArray=np.zeros(shape, np.float32), origin=origin, spacing=spacing)
            mc = SeededMCsquare(seed=seed0(energy) + 7, extra={"Dose_to_Water_conversion": "OnlineSPR"})
            mc.simulationDirectory = os.path.join(WORK, f"optics_{int(energy)}")
            os.makedirs(mc.simulationDirectory, exist_ok=True)
            mc._doseFilePath = os.path.join(mc._workDir, "Dose.mhd")
            mc.beamModel, mc.ctCalibration, mc.nbPrimaries = bdl, calib, n_total
            plan = build_plan(energy)
            plan.beams[0].isocenterPosition = [0.0, float(iy), 0.0]
            _PopenLogger.log_path = os.path.join(WORK, f"optics_{int(energy)}.log")
            try:
                dose = mc.computeDose(ct, plan)
            finally:
                _PopenLogger.close()
            shutil.rmtree(mc.simulationDirectory, ignore_errors=True)
            a = np.asarray(dose.imageArray, np.float64)[:, 0, :]  # first 0.5 mm
            c = origin[0] + spacing[0] * np.arange(shape[0])
            px, pz = a.sum(1), a.sum(0)
            mom = lambda p: float(np.sqrt((p * c * c).sum() / p.sum() - ((p * c).sum() / p.sum()) ** 2))  # noqa
            z = 0.25 - iy  # depth of the scored layer's centre relative to the isocentre
            p = bdl_interp(bdl, energy)
            rec = {"energy_mev": energy, "z_mm": z, "mc_rms_x_mm": mom(px), "mc_rms_y_mm": mom(pz),
                   "formula_x_mm": spot_sigma(p, "x", z, d_noz)[0], "formula_y_mm": spot_sigma(p, "y", z, d_noz)[0],
                   "formula_with_minus_correlation_x_mm": spot_sigma(
                       {**p, "correlation1x": -p["correlation1x"], "correlation2x": -p["correlation2x"]},
                       "x", z, d_noz)[0],
                   "primaries": n_total, "seed": seed0(energy) + 7,
                   "note": "rms over the 244 mm slab (halo tails beyond +-122 mm cut)"}
            print(rec, flush=True)
            out.append(rec)
    os.makedirs(CACHE, exist_ok=True)
    json.dump(out, open(os.path.join(CACHE, "optics_check.json"), "w"), indent=1)


# ----------------------------------------------------------------------------- analysis
def r80(depth, idd):
    """Distal depth where the IDD falls to 80 % of its maximum (voxel maximum), linear interpolation."""
    i = int(np.argmax(idd))
    lvl = 0.8 * idd[i]
    j = i + int(np.argmax(idd[i:] < lvl))
    if idd[j] >= lvl:
        return float("nan")
    return float(depth[j - 1] + (lvl - idd[j - 1]) * (depth[j] - depth[j - 1]) / (idd[j] - idd[j - 1]))


def bdl_interp(bdl, energy):
    """Beam-model numbers at one nominal energy, interpolated linearly in nominal energy as MCsquare does
    (and as OpenTPS computeMU2Protons does for protons/MU)."""
    en = np.asarray(bdl.nominalEnergy, float)
    f = lambda a: float(np.interp(energy, en, np.asarray(a, float)))  # noqa: E731
    out = {"mean_energy_mev": f(bdl.meanEnergy), "energy_spread_pct": f(bdl.energySpread),
           # MCsquare samples E ~ N(MeanEnergy, EnergySpread * NominalEnergy / 100) (compute_beam_model.c)
           "energy_sigma_mev": f(bdl.energySpread) * energy / 100.0,
           "protons_per_mu": float(bdl.computeMU2Protons(energy))}
    for g in ("1", "2"):
        out["weight" + g] = f(getattr(bdl, "weight" + g))
        for ax in ("x", "y"):
            for q, nm in (("spotSize", "spot_size"), ("divergence", "divergence"), ("correlation", "correlation")):
                out[f"{nm}{g}{ax}"] = f(getattr(bdl, f"{q}{g}{ax}"))
    return out


def spot_sigma(p, ax, z, d_nozzle):
    """In-air sigma at z mm from the isocentre (z > 0 downstream) for axis ax of the double-Gaussian BDL p.
    MCsquare's beam-optics (Fermi-Eyges / Twiss drift in vacuum) from the nozzle exit, which is d_nozzle mm
    upstream of the isocentre; s = distance travelled from the nozzle exit = d_nozzle + z:
        sigma_g(s)^2 = SpotSize_g^2 + 2 Correlation_g SpotSize_g Divergence_g s + Divergence_g^2 s^2
    per Gaussian g, and the two Gaussians combined by their weights into one second moment:
        sigma^2 = (w1 sigma_1^2 + w2 sigma_2^2) / (w1 + w2)."""
    s = d_nozzle + z
    var = []
    for g in ("1", "2"):
        s0, th, c = p[f"spot_size{g}{ax}"], p[f"divergence{g}{ax}"], p[f"correlation{g}{ax}"]
        var.append(s0 * s0 + 2.0 * c * s0 * th * s + th * th * s * s)
    w1, w2 = p["weight1"], p["weight2"]
    return math.sqrt((w1 * var[0] + w2 * var[1]) / (w1 + w2)), [math.sqrt(v) for v in var]


def write_outputs(calib_txt, bdl):
    os.makedirs(OUT, exist_ok=True)
    d_noz = float(bdl.nozzle_isocenter)
    per_e, wall = {}, {}
    for energy in ENERGIES:
        f = os.path.join(CACHE, f"{int(energy)}.json")
        if not os.path.exists(f):
            continue
        res = json.load(open(f))
        subs = np.asarray(res["idd_subs"])
        n = subs.shape[0]
        mean = subs.mean(0)
        se = subs.std(0, ddof=1) / np.sqrt(n)
        spacing, shape, origin = res["spacing_mm_xyz"], res["shape_xyz"], res["origin_mm_xyz"]
        depth = origin[1] + spacing[1] * np.arange(shape[1])
        with open(os.path.join(OUT, f"idd_{int(energy)}MeV.csv"), "w") as fh:
            fh.write("depth_mm,idd_gy_mm2_per_mu,se_gy_mm2_per_mu\n")
            for y, v, e in zip(depth, mean, se):
                fh.write(f"{y:.2f},{v:.6e},{e:.3e}\n")
        r_subs = [r80(depth, s) for s in subs]
        imax = int(np.argmax(mean))
        per_e[f"{int(energy)}"] = {
            "grid": {"spacing_mm_xyz": spacing, "shape_xyz": shape, "origin_mm_xyz": origin,
                     "lateral_extent_mm": shape[0] * spacing[0], "depth_extent_mm": shape[1] * spacing[1]},
            "beam_model_interpolated": bdl_interp(bdl, energy),
            "primaries": res["n_primaries"], "sub_runs": n, "seeds": [r["seed"] for r in res["runs"]],
            "wall_s": res["wall_s"], "runs": res["runs"],
            "r80_mm": r80(depth, mean), "r80_subruns_mm": r_subs,
            "r80_se_mm": float(np.std(r_subs, ddof=1) / np.sqrt(n)),
            "peak_depth_mm": float(depth[imax]), "peak_idd_gy_mm2_per_mu": float(mean[imax]),
            "peak_rel_se": float(se[imax] / mean[imax]),
            "idd_integral_gy_mm3_per_mu": float(mean.sum() * spacing[1]),
        }
        wall[energy] = res["wall_s"]
        last = res
    # in-air spot sizes
    rows = []
    for energy in ENERGIES:
        p = bdl_interp(bdl, energy)
        for z in Z_IN_AIR:
            sx, gx = spot_sigma(p, "x", z, d_noz)
            sy, gy = spot_sigma(p, "y", z, d_noz)
            rows.append((energy, z, sx, sy, p["weight1"], gx[0], gy[0], p["weight2"], gx[1], gy[1]))
    with open(os.path.join(OUT, "spot_sizes_in_air.csv"), "w") as fh:
        fh.write("nominal_energy_mev,z_mm,sigma_x_mm,sigma_y_mm\n")
        for r in rows:
            fh.write(f"{r[0]:g},{r[1]:g},{r[2]:.4f},{r[3]:.4f}\n")
    with open(os.path.join(OUT, "spot_sizes_in_air_per_gaussian.csv"), "w") as fh:
        fh.write("nominal_energy_mev,z_mm,weight1,sigma1_x_mm,sigma1_y_mm,weight2,sigma2_x_mm,sigma2_y_mm\n")
        for r in rows:
            fh.write(f"{r[0]:g},{r[1]:g},{r[4]:.6f},{r[5]:.4f},{r[6]:.4f},{r[7]:.6f},{r[8]:.4f},{r[9]:.4f}\n")
    import importlib.metadata as md
    import hashlib
    import platform
    binary = "MCsquare_linux"  # the launcher script picks it on AMD CPUs (else by avx512/avx2/avx/sse4 flags)
    cpu = open("/proc/cpuinfo").read()
    if "AuthenticAMD" not in cpu:
        binary = next((b for f, b in (("avx512", "MCsquare_linux_avx512"), ("avx2", "MCsquare_linux_avx2"),
                                      ("avx", "MCsquare_linux_avx"), ("sse4", "MCsquare_linux_sse4")) if f in cpu),
                      "MCsquare_linux")
    md5 = hashlib.md5(open(os.path.join(rc.MC_PKG, binary), "rb").read()).hexdigest()
    meta = {
        "description": "MCsquare (via opentps-core) integral depth doses in water and in-air spot sigmas for the "
                       "stock OpenTPS BDL_default_DN_RangeShifter (IBA dedicated nozzle) as shipped, no range shifter",
        "software": {"opentps_core": md.version("opentps-core"), "mcsquare": "binary shipped in opentps-core "
                     + md.version("opentps-core") + " (UCLouvain); BDL/scanner/config data files from the 3.0.0 wheel (3.0.1 omits them)",
                     "mcsquare_binary": binary, "mcsquare_binary_md5": md5, "python": platform.python_version(),
                     "numpy": np.__version__, "threads": "Num_Threads 0 (all cores: 2 here)"},
        "phantom": "water: HU 0 everywhere, scanner UCL_Toshiba with HU [-5, 8) -> MCsquare material 17 (Water)",
        "beam": {"gantry_deg": 0.0, "couch_deg": 0.0, "isocenter_mm": [0.0, 0.0, 0.0], "spot_xy_mm": [0.0, 0.0],
                 "mu": 1.0, "direction": "+y (OpenTPS [x, y, z] arrays); isocentre on the entrance face y = 0"},
        "scoring": "dose to water (Dose_to_Water_conversion = OnlineSPR); IDD = sum over the whole x-z cross "
                   "section of D dx dz, Gy mm^2 per MU; standard error = std over sub-runs (ddof 1) / sqrt(n)",
        "r80_definition": "distal depth where the sub-run-mean IDD falls to 80 % of its voxel maximum, linear "
                          "interpolation between voxel centres; r80_se_mm = std of the sub-run R80s / sqrt(n)",
        "spot_sizes_in_air": {
            "formula": "sigma_g(z)^2 = S_g^2 + 2 C_g S_g T_g (d + z) + T_g^2 (d + z)^2 per Gaussian g (S = SpotSize, "
                       "T = Divergence, C = Correlation, d = Nozzle exit to Isocenter distance, z from the isocentre "
                       "> 0 downstream); sigma^2 = (w1 sigma_1^2 + w2 sigma_2^2) / (w1 + w2)",
            "nozzle_exit_to_isocenter_mm": d_noz, "smx_mm": float(bdl.smx), "smy_mm": float(bdl.smy),
            "source": "MCsquare src/compute_beam_model.c, Sample_particle() (UPenn double-Gaussian model): "
                      "Gaussian g chosen with probability w_g / (w1 + w2); (x, theta) at the nozzle exit drawn from "
                      "N(0, [[S^2, C S T], [C S T, T^2]]); straight line (no air scattering) to the CT, "
                      "Transport_to_CT()",
            "per_gaussian_file": "spot_sizes_in_air_per_gaussian.csv"},
        "optics_check_mc": (json.load(open(os.path.join(CACHE, "optics_check.json")))
                            if os.path.exists(os.path.join(CACHE, "optics_check.json")) else None),
        "energies": per_e,
        "wall_s_total": float(sum(wall.values())),
        "stock_bdl_path_in_package": os.path.relpath(STOCK_BDL, os.path.dirname(os.path.dirname(rc.MC_PKG))),
        "stock_bdl_txt": open(STOCK_BDL).read(),
        "stock_bdl_identical_to_repo_copy": open(STOCK_BDL).read() == open(REPO_BDL_COPY).read(),
        "bdl_txt_as_written_by_opentps": last.get("bdl_txt") if per_e else None,
        "config_txt_first_run": last.get("config_txt") if per_e else None,
        "plan_txt_first_run": last.get("plan_txt") if per_e else None,
        "hu_density_txt": calib_txt[0],
        "hu_material_txt": calib_txt[1],
    }
    json.dump(meta, open(os.path.join(OUT, "meta.json"), "w"), indent=1)
    for k, v in per_e.items():
        print(f"{k:>4} MeV: R80 {v['r80_mm']:.2f} +- {v['r80_se_mm']:.2f} mm, peak {v['peak_depth_mm']:.1f} mm, "
              f"peak rel se {v['peak_rel_se']:.2%}, wall {v['wall_s']:.0f} s, primaries {v['primaries']:.3g}")


def main():
    args = sys.argv[1:]
    write_only = "--write-only" in args
    n_total = N_PRIMARIES
    if "--primaries" in args:
        k = args.index("--primaries")
        n_total = int(float(args[k + 1]))
        del args[k:k + 2]
    energies = [float(a) for a in args if not a.startswith("--")] or ENERGIES
    os.makedirs(WORK, exist_ok=True)
    for f in glob.glob(rc.MC_PKG + "/MCsquare*"):
        if not os.access(f, os.X_OK):
            os.chmod(f, 0o755)
    assert open(STOCK_BDL).read() == open(REPO_BDL_COPY).read(), "package BDL differs from the repo copy"
    make_scanner()
    calib = readScanner(rc.SCANNER)
    assert abs(calib.convertHU2RSP(0.0, 150.0) - 1.0) < 1e-9, "HU0 -> water override failed"
    calib_txt = [open(os.path.join(rc.SCANNER, f)).read()
                 for f in ("HU_Density_Conversion.txt", "HU_Material_Conversion.txt")]
    bdl = mcsquareIO.readBDL(STOCK_BDL)
    if "--check-optics" in args:
        check_optics(calib, bdl)
    elif not write_only:
        for energy in energies:
            run_energy(energy, calib, bdl, n_total)
            write_outputs(calib_txt, bdl)
    write_outputs(calib_txt, bdl)


if __name__ == "__main__":
    main()
