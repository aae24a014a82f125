#!/usr/bin/env python3
"""Regenerate the shipped TG-43 seed files from the project's reference data.

Run from the repository root with the shared reference data beside the checkout:

    python3 dose-core/data/tg43/make_seed_files.py ../shared/refdata

It reads the consensus tables collected in shared/refdata (see its README.md for
the sources and their confidence) and writes one `<key>.json` per seed model in
the documented isodose seed-file format (see README.md here). Numbers are copied,
never changed; the source and confidence text travel with them. The tests never
run this script: they read the JSON files committed beside it.
"""
import csv
import re
import json
import sys
from pathlib import Path

HALF_LIFE_I125_DAYS = None  # read from tg43_I125_seed_parameters.csv header


def read_csv(path):
    header, rows = [], []
    with open(path, newline="") as f:
        for line in f:
            if line.startswith("#"):
                header.append(line[1:].strip())
            else:
                rows.append(line)
    return header, list(csv.DictReader(rows))


def f_table(theta_deg, r_cm, f_by_r):
    return {"r_cm": r_cm, "theta_deg": theta_deg, "f": f_by_r}


def main(ref):
    ref = Path(ref)
    out = Path(__file__).resolve().parent
    p_header, params = read_csv(ref / "tg43_I125_seed_parameters.csv")
    half_life_line = [h for h in p_header if "half-life" in h]
    assert half_life_line and "59.40 d" in half_life_line[0], half_life_line
    half_life_days = 59.40
    other = json.loads((ref / "tg43_I125_other_seeds.json").read_text())["seeds"]
    param_by_key = {row["seed_key"]: row for row in params}

    models = {}
    # 6711 and Best 2301 from their dedicated consensus CSVs
    for key, stem in [("Amersham6711", "6711"), ("Best2301", "Best2301")]:
        g_head, g_rows = read_csv(ref / f"tg43_I125_{stem}_radial_dose_function.csv")
        f_head, f_rows = read_csv(ref / f"tg43_I125_{stem}_anisotropy_F.csv")
        r_cols = [c for c in f_rows[0].keys() if c.startswith("r=")]
        r_cm = [float(c[2:-2]) for c in r_cols]
        theta = [float(row["theta_deg"]) for row in f_rows]
        f_by_r = [[float(row[c]) for row in f_rows] for c in r_cols]
        p = param_by_key[key]
        m = {
            "format": "isodose-tg43-seed/1",
            "key": key,
            "name": p["seed"],
            "isotope": "I-125",
            "half_life_days": half_life_days,
            "dose_rate_constant_cgy_per_h_per_u": float(p["Lambda_cGy_per_h_per_U"]),
            "active_length_cm": float(p["L_cm"]),
            "radial_dose_function": {
                "r_cm": [float(r["r_cm"]) for r in g_rows],
                "g_l": [float(r["g_L"]) for r in g_rows],
                "g_p": [float(r["g_P"]) for r in g_rows],
            },
            "anisotropy_function": f_table(theta, r_cm, f_by_r),
            "source": {
                "radial_dose_function": g_head,
                "anisotropy_function": f_head,
                "parameters": p_header[:2] + [f"row {key}: {p['source']} (confidence: {p['confidence']})"],
            },
        }
        if stem == "6711":
            a_head, a_rows = read_csv(ref / "tg43_I125_6711_phi_an_and_1D_transverse_dose_rate.csv")
            pts = [(float(r["r_cm"]), float(r["phi_an"])) for r in a_rows if r["phi_an"]]
            m["anisotropy_factor"] = {"r_cm": [p[0] for p in pts], "phi_an": [p[1] for p in pts]}
            m["source"]["anisotropy_factor"] = a_head
        models[key] = m

    # every other seed with complete tables (Lambda, L, g_L, F)
    for key, s in other.items():
        if key in models:
            continue
        if not all(k in s for k in ("Lambda_cGy_per_h_per_U", "L_cm", "g_L", "F")):
            print(f"skipping {key}: incomplete tables", file=sys.stderr)
            continue
        m = {
            "format": "isodose-tg43-seed/1",
            "key": key,
            "name": s["name"],
            "isotope": "I-125",
            "half_life_days": s.get("half_life_d", half_life_days),
            "dose_rate_constant_cgy_per_h_per_u": s["Lambda_cGy_per_h_per_U"],
            "active_length_cm": s["L_cm"],
            "radial_dose_function": {"r_cm": s["g_L"]["r_cm"], "g_l": s["g_L"]["gL"]},
            "anisotropy_function": f_table(s["F"]["theta_deg"], s["F"]["r_cm"], s["F"]["F_by_r"]),
            "source": {
                "data": s["source"],
                "likely_publication": s["likely_publication"],
                "confidence": s["confidence"],
                "collected_by": "shared/refdata/tg43_I125_other_seeds.json (isodose reference data; see its README.md)",
            },
        }
        if "phi_an" in s:
            m["anisotropy_factor"] = {"r_cm": s["phi_an"]["r_cm"], "phi_an": s["phi_an"]["phi_an"]}
        models[key] = m

    for key, m in models.items():
        text = json.dumps(m, indent=1)
        # one line per list of numbers, so tables read as rows
        text = re.sub(r"\[\s*([-0-9.eE,\s]+?)\s*\]", lambda g: "[" + ", ".join(g.group(1).split()).replace(",,", ",") + "]", text)
        (out / f"{key}.json").write_text(text + "\n")
    print(f"wrote {len(models)} seed files to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/refdata")
