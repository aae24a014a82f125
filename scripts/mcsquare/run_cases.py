"""Monte Carlo reference doses for the proton pencil-beam engine (MCsquare via opentps-core).

Run once, by hand, never in CI (minutes per case on 2 cores):

    PY312=/path/to/python3.12 bash ../shared/mcsquare/opentps-setup.sh   # builds /tmp/opentps-venv
    /tmp/opentps-venv/bin/python scripts/mcsquare/run_cases.py [case ...]

Each case writes dose-core/tests/data/mcsquare/<case>/: meta.json (geometry, phantom, plan, beam model text,
scanner tables, seeds, primaries, software versions, run times) and little-endian float32/int16 planes:
  hu_plane.i16      HU of the phantom, (ny, nx); every case is invariant along z
  dose_plane.f32    dose to water in the central z plane (z = 0), Gy per proton of the plan, (ny, nx)
  se_plane.f32      its standard error from the independent sub-runs
  dose_zsum.f32     sum over z of dose x dz (Gy mm per proton), (ny, nx): the laterally integrated dose along z
  se_zsum.f32       its standard error
Geometry (shared by all cases): x 2 mm (nx 50), y = depth 1 mm (ny 250), z 2 mm (nz 51); the origin is the centre of
voxel (0, 0, 0) in DICOM LPS mm; isocentre (0, 0, 0) on the entrance face y = 0 unless the case says otherwise.
OpenTPS arrays are [x, y, z]; at gantry 0 / couch 0 OpenTPS+MCsquare map spot X -> +x, spot Y -> +z, beam along +y.

The beam model is a single-Gaussian simplification of OpenTPS's stock BDL_default_DN_RangeShifter (IBA dedicated
nozzle), written by make_bdl() below (adapted from ../shared/mcsquare/driver_example.py), so that the pencil-beam
engine can read the very same BDL file (isodose's BDL reader) and both codes see the same optics.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = "/tmp/mcref"
WORK = os.path.join(ROOT, "work")
DATA = os.path.join(ROOT, "data")
os.environ["HOME"] = os.path.join(ROOT, "home")
os.makedirs(os.environ["HOME"], exist_ok=True)
os.environ.setdefault("MPLBACKEND", "Agg")

import logging  # noqa: E402

import numpy as np  # noqa: E402

import opentps.core  # noqa: F401,E402
from opentps.core.data.images import CTImage  # noqa: E402
from opentps.core.data.plan import ProtonPlan, PlanProtonBeam, PlanProtonLayer  # noqa: E402
from opentps.core.io import mcsquareIO  # noqa: E402
from opentps.core.io.scannerReader import readScanner  # noqa: E402
import opentps.core.processing.doseCalculation.protons.mcsquareDoseCalculator as mdc  # noqa: E402
from opentps.core.processing.doseCalculation.protons.mcsquareDoseCalculator import MCsquareDoseCalculator  # noqa: E402
import opentps.core.processing.doseCalculation.protons.MCsquare as MCsquareModule  # noqa: E402

logging.getLogger().setLevel(logging.WARNING)
for _name in list(logging.root.manager.loggerDict):
    if _name.startswith("opentps"):
        logging.getLogger(_name).setLevel(logging.WARNING)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO, "dose-core", "tests", "data", "mcsquare")
MC_PKG = str(MCsquareModule.__path__[0])
STOCK_BDL = os.path.join(MC_PKG, "BDL", "BDL_default_DN_RangeShifter.txt")
STOCK_SCANNER = os.path.join(MC_PKG, "Scanners", "UCL_Toshiba")
SCANNER = os.path.join(DATA, "Scanner_UCL_Toshiba_HU0water")
BDL_FILE = os.path.join(DATA, "BDL_simplified_single_gaussian.txt")

SPACING = (2.0, 1.0, 2.0)  # mm (x, y, z)
SHAPE = (50, 250, 51)  # (nx, ny, nz)
ORIGIN = (-49.0, 0.5, -50.0)
HU_BONE = 1080.0  # RSP 1.444 at 150 MeV in this calibration
HU_LUNG = -700.0  # RSP 0.324
SAD_MM = 2000.0
RHO = 0.1  # not 0: MCsquare's 2x2 diagonalisation divides 0/0 for an exactly diagonal matrix


def axes():
    return tuple(ORIGIN[i] + SPACING[i] * np.arange(SHAPE[i]) for i in range(3))


def make_scanner():
    """Stock UCL_Toshiba calibration with HU in [-5, 8) mapped to pure water (material 17)."""
    os.makedirs(SCANNER, exist_ok=True)
    shutil.copy(os.path.join(STOCK_SCANNER, "HU_Density_Conversion.txt"), SCANNER)
    rows = open(os.path.join(STOCK_SCANNER, "HU_Material_Conversion.txt")).read().splitlines()
    out = []
    for r in rows:
        if re.match(r"^8\s", r.strip() + " "):
            out.append("-5\t17\t\t# Water  (inserted: HU in [-5,8) -> pure water)")
        out.append(r)
    open(os.path.join(SCANNER, "HU_Material_Conversion.txt"), "w").write("\n".join(out) + "\n")


def make_bdl():
    """Single symmetric Gaussian per energy from the stock BDL (same nominal/mean energy, spread, protons/MU, nozzle
    distance): divergence = mean of Divergence1x/1y; sigma at the isocentre (in vacuum) = mean of the group-1 x/y
    values; the nozzle-exit sigma s solves s^2 + 2 RHO s theta d + (theta d)^2 = sigma_iso^2 (d = 410 mm)."""
    lines = open(STOCK_BDL).read().splitlines()
    d = None
    for i, ln in enumerate(lines):
        if ln.strip() == "Nozzle exit to Isocenter distance":
            d = float(lines[i + 1].split()[0])
        if ln.strip().startswith("NominalEnergy"):
            tab0 = i + 1
    tab = np.loadtxt(STOCK_BDL, skiprows=tab0)
    rows = []
    for r in tab:
        (En, Em, sE, pmu, w1, s1x, t1x, c1x, s1y, t1y, c1y) = r[:11]
        six = np.sqrt(s1x ** 2 + 2 * c1x * s1x * t1x * d + (t1x * d) ** 2)
        siy = np.sqrt(s1y ** 2 + 2 * c1y * s1y * t1y * d + (t1y * d) ** 2)
        sig_iso = round(0.5 * (six + siy), 3)
        th = round(0.5 * (t1x + t1y), 6)
        b = RHO * th * d
        s = round(float(-b + np.sqrt(b * b - (th * d) ** 2 + sig_iso ** 2)), 4)
        rows.append((En, Em, sE, pmu, 1.0, s, th, RHO, s, th, RHO, 0.0, s, th, RHO, s, th, RHO))
    hdr = ["--UPenn beam model (double gaussian)--",
           "# Simplified single-Gaussian symmetric beam model derived from OpenTPS BDL_default_DN_RangeShifter",
           "# (isodose scripts/mcsquare/run_cases.py, make_bdl). Weight2 = 0 => second Gaussian never sampled.",
           "", "Nozzle exit to Isocenter distance", f"{d:.1f}", "",
           "SMX to Isocenter distance", f"{SAD_MM:.1f}", "", "SMY to Isocenter distance", f"{SAD_MM:.1f}", "",
           "Beam parameters", f"{len(rows)} energies", "",
           "NominalEnergy \t MeanEnergy \t EnergySpread \t ProtonsMU \t Weight1 \t SpotSize1x \t Divergence1x \t "
           "Correlation1x \t SpotSize1y \t Divergence1y \t Correlation1y \t Weight2 \t SpotSize2x \t Divergence2x \t "
           "Correlation2x \t SpotSize2y \t Divergence2y \t Correlation2y"]
    body = [" \t ".join(f"{v:.6f}" if j != 3 else f"{v:.1f}" for j, v in enumerate(rw)) for rw in rows]
    os.makedirs(DATA, exist_ok=True)
    open(BDL_FILE, "w").write("\n".join(hdr + body) + "\n")


class _PopenLogger:
    PIPE = subprocess.PIPE
    STDOUT = subprocess.STDOUT
    log_path = None
    _fh = None

    @classmethod
    def Popen(cls, *a, **kw):
        cls._fh = open(cls.log_path, "w")
        kw["stdout"] = cls._fh
        kw["stderr"] = subprocess.STDOUT
        return subprocess.Popen(*a, **kw)

    @classmethod
    def close(cls):
        if cls._fh:
            cls._fh.close()
            cls._fh = None


mdc.subprocess = _PopenLogger


class SeededMCsquare(MCsquareDoseCalculator):
    def __init__(self, seed, extra=None):
        super().__init__()
        self.seed = int(seed)
        self.extra = dict(extra or {})

    @property
    def _generalMCsquareConfig(self):
        cfg = MCsquareDoseCalculator._generalMCsquareConfig.fget(self)
        cfg["RNG_Seed"] = self.seed
        cfg["Num_Threads"] = 0
        for k, v in self.extra.items():
            cfg[k] = v
        return cfg


def parse_log(path):
    txt = open(path).read() if os.path.exists(path) else ""
    g = lambda pat: (float(m.group(1)) if (m := re.search(pat, txt)) else None)  # noqa: E731
    outside = re.search(r"\((\d+) generated outside", txt)
    return {"mc_time_s": g(r"MC computation time: ([0-9.]+)"),
            "primaries_simulated": g(r"Nbr primaries simulated: (\d+)"),
            "generated_outside": int(outside.group(1)) if outside else None}


# ----------------------------------------------------------------------------- phantoms (HU planes, (ny, nx))
def phantom(kind):
    x, y, _ = axes()
    X, Y = np.meshgrid(x, y)  # (ny, nx)
    hu = np.zeros_like(X)
    slab = (Y > 30.0) & (Y < 50.0)
    if kind == "water":
        pass
    elif kind == "bone_edge":  # bone for x > 0 at depth 30-50 mm, edge parallel to the beam
        hu[slab & (X > 0.0)] = HU_BONE
    elif kind == "lung_edge":  # lung for x > 0 at depth 30-70 mm
        hu[(Y > 30.0) & (Y < 70.0) & (X > 0.0)] = HU_LUNG
    elif kind == "bone_slab":  # bone at depth 30-50 mm across the whole width
        hu[slab] = HU_BONE
    elif kind == "bone_oblique":  # bone at depth 30-50 mm beyond an edge tilted 30 deg to the beam: x > (y - 40) tan 30
        hu[slab & (X > (Y - 40.0) * np.tan(np.radians(30.0)))] = HU_BONE
    else:
        raise ValueError(kind)
    return hu.astype(np.int16)


# spots: (x, y) in the IEC gantry frame at the isocentre plane (OpenTPS X -> +x, Y -> +z at gantry 0), 1 MU each
FIELD = [(float(sx), float(sy)) for sx in range(-15, 16, 5) for sy in range(-10, 11, 5)]
CASES = {
    "water_150": dict(phantom="water", energy=150.0, spots=[(0.0, 0.0)], primaries=4e6, sub=4),
    "bone_edge_150": dict(phantom="bone_edge", energy=150.0, spots=[(0.0, 0.0)], primaries=1e7, sub=4),
    "bone_beside_150": dict(phantom="bone_edge", energy=150.0, spots=[(-6.0, 0.0)], primaries=8e6, sub=4),
    "lung_edge_150": dict(phantom="lung_edge", energy=150.0, spots=[(0.0, 0.0)], primaries=8e6, sub=4),
    "bone_oblique_150": dict(phantom="bone_oblique", energy=150.0, spots=[(0.0, 0.0)], primaries=8e6, sub=4),
    "bone_field_150": dict(phantom="bone_edge", energy=150.0, spots=FIELD, primaries=1.4e7, sub=4),
    # gantry 45: the beam enters at (30, 0, 0) travelling towards -x, +y (IEC 61217, head-first supine) and crosses
    # the bone slab obliquely
    "bone_slab_g45_120": dict(phantom="bone_slab", energy=120.0, spots=[(0.0, 0.0)], primaries=8e6, sub=4,
                              gantry=45.0, iso=(30.0, 0.0, 0.0)),
}


def build_plan(energy, spots, gantry=0.0, iso=(0.0, 0.0, 0.0)):
    plan = ProtonPlan()
    beam = PlanProtonBeam()
    beam.gantryAngle = float(gantry)
    beam.couchAngle = 0.0
    beam.isocenterPosition = list(iso)
    layer = PlanProtonLayer(float(energy))
    layer.appendSpot([s[0] for s in spots], [s[1] for s in spots], [1.0] * len(spots))
    beam.appendLayer(layer)
    plan.appendBeam(beam)
    return plan


def run_case(name, spec, calib, bdl, seed0):
    hu2d = phantom(spec["phantom"])
    hu = np.repeat(hu2d.T[:, :, None], SHAPE[2], axis=2).astype(np.float32)  # [x, y, z]
    ct = CTImage(imageArray=hu, origin=ORIGIN, spacing=SPACING)
    n_sub = spec["sub"]
    n_each = int(spec["primaries"] // n_sub)
    subs, infos = [], []
    meta_txt = {}
    t0 = time.time()
    for h in range(n_sub):
        mc = SeededMCsquare(seed=seed0 + h, extra={"Dose_to_Water_conversion": "OnlineSPR"})
        mc.simulationDirectory = os.path.join(WORK, f"{name}_s{h}")
        os.makedirs(mc.simulationDirectory, exist_ok=True)
        mc._doseFilePath = os.path.join(mc._workDir, "Dose.mhd")
        mc.beamModel = bdl
        mc.ctCalibration = calib
        mc.nbPrimaries = n_each
        plan = build_plan(spec["energy"], spec["spots"], spec.get("gantry", 0.0), spec.get("iso", (0.0, 0.0, 0.0)))
        _PopenLogger.log_path = os.path.join(WORK, f"{name}_s{h}.log")
        t = time.time()
        try:
            dose = mc.computeDose(ct, plan)
        finally:
            _PopenLogger.close()
        wall = time.time() - t
        # OpenTPS scales the dose to the plan's MU: 1 MU per spot -> protons_per_MU protons per spot
        protons = len(spec["spots"]) * bdl.computeMU2Protons(spec["energy"])
        arr = np.asarray(dose.imageArray, dtype=np.float64) / protons  # Gy per proton of the plan
        assert arr.shape == hu.shape and np.allclose(dose.origin, ORIGIN) and np.allclose(dose.spacing, SPACING)
        info = parse_log(_PopenLogger.log_path)
        info["wall_s"] = wall
        info["seed"] = seed0 + h
        if h == 0:
            simdir = os.path.join(mc.simulationDirectory, "MCsquare_simulation")
            for key, f in (("config_txt", "config.txt"), ("plan_txt", "PlanPencil.txt"), ("bdl_txt", "bdl.txt"),
                           ("hu_density_txt", "Scanner/HU_Density_Conversion.txt"),
                           ("hu_material_txt", "Scanner/HU_Material_Conversion.txt")):
                meta_txt[key] = open(os.path.join(simdir, f)).read()
        subs.append(arr)
        infos.append(info)
        shutil.rmtree(mc.simulationDirectory, ignore_errors=True)
        print(f"  [{name}] sub-run {h + 1}/{n_sub}: {n_each:.3g} primaries, wall {wall:.1f} s", flush=True)
    subs = np.stack(subs)  # (n_sub, nx, ny, nz)
    kz = SHAPE[2] // 2
    plane = subs[:, :, :, kz].transpose(0, 2, 1)  # (n_sub, ny, nx)
    zsum = subs.sum(axis=3).transpose(0, 2, 1) * SPACING[2]
    se = lambda a: a.std(axis=0, ddof=1) / np.sqrt(a.shape[0])  # noqa: E731
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    hu2d.astype("<i2").tofile(os.path.join(d, "hu_plane.i16"))
    plane.mean(0).astype("<f4").tofile(os.path.join(d, "dose_plane.f32"))
    se(plane).astype("<f4").tofile(os.path.join(d, "se_plane.f32"))
    zsum.mean(0).astype("<f4").tofile(os.path.join(d, "dose_zsum.f32"))
    se(zsum).astype("<f4").tofile(os.path.join(d, "se_zsum.f32"))
    import importlib.metadata as md
    meta = {
        "case": name,
        "description": spec.get("description", ""),
        "phantom": spec["phantom"],
        "hu_bone": HU_BONE, "hu_lung": HU_LUNG,
        "grid": {"shape_zyx": [SHAPE[2], SHAPE[1], SHAPE[0]], "spacing_mm_xyz": list(SPACING),
                 "origin_mm_xyz": list(ORIGIN), "plane_z_index": kz, "plane_z_mm": ORIGIN[2] + kz * SPACING[2]},
        "beam": {"gantry_deg": spec.get("gantry", 0.0), "couch_deg": 0.0, "isocenter_mm": list(spec.get("iso", (0.0, 0.0, 0.0))),
                 "energy_mev": spec["energy"], "spots_xy_mm": spec["spots"], "mu_per_spot": 1.0,
                 "protons_per_mu": float(bdl.computeMU2Protons(spec["energy"]))},
        "units": {"dose_plane": "Gy per proton of the plan (dose to water, OnlineSPR)",
                  "dose_zsum": "Gy mm per proton (sum over z of dose times 2 mm)"},
        "mc": {"code": "MCsquare (opentps-core wheel)", "opentps_core": md.version("opentps-core"),
               "primaries": int(n_each * n_sub), "sub_runs": n_sub, "seeds": [i["seed"] for i in infos],
               "wall_s_total": time.time() - t0, "runs": infos,
               "standard_error": "std over independent sub-runs / sqrt(n)"},
        **meta_txt,
    }
    json.dump(meta, open(os.path.join(d, "meta.json"), "w"), indent=1)
    print(f"[{name}] done in {time.time() - t0:.0f} s; max plane dose {plane.mean(0).max():.3e}", flush=True)


def main():
    os.makedirs(WORK, exist_ok=True)
    for f in glob.glob(MC_PKG + "/MCsquare*"):
        if not os.access(f, os.X_OK):
            os.chmod(f, 0o755)
    make_scanner()
    make_bdl()
    calib = readScanner(SCANNER)
    bdl = mcsquareIO.readBDL(BDL_FILE)
    assert abs(calib.convertHU2RSP(0.0, 150.0) - 1.0) < 1e-9
    names = sys.argv[1:] or list(CASES)
    for k, name in enumerate(names):
        run_case(name, CASES[name], calib, bdl, seed0=1000 + 100 * list(CASES).index(name))


if __name__ == "__main__":
    main()
