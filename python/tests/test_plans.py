"""RT Ion Plans and brachytherapy RT Plans from Python, checked with pydicom
(an independent DICOM reader) and the machine's published MU calibration."""

import csv
import json
import math

import numpy as np
import pydicom
import pytest

import isodose
from conftest import DICOM_DATA, REPO

HEAD_PLAN = DICOM_DATA / "dcpt_head_RN.dcm"
MACHINE_DATA = REPO / "dose-core" / "data" / "protons"


def protons_per_mu():
    """protons/MU(E) of the generic machine, from its data files: N_ref ·
    S(E_ref)/S(E) at each machine energy (S = PSTAR total stopping power,
    log-log interpolated), linear in E between machine energies."""
    machine = json.loads((MACHINE_DATA / "generic_machine.json").read_text())
    mu = machine["monitor_units"]
    with open(MACHINE_DATA / "pstar_water_proton.csv", newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    ln_e = np.log([float(r["E_MeV"]) for r in rows])
    ln_s = np.log([float(r["S_total"]) for r in rows])

    def s(e):
        return np.exp(np.interp(np.log(e), ln_e, ln_s))

    n_ref, e_ref = mu["protons_per_mu_at_reference"], mu["reference_energy_mev"]
    energies = isodose.ProtonMachine.generic().energies_mev

    def at(e):
        table = n_ref * s(e_ref) / s(energies)
        near = np.abs(energies - e) <= 0.01  # a machine energy: its own value
        return table[near][0] if near.any() else np.interp(e, energies, table)

    return at


def pydicom_spots(ds, beam):
    """(energy MeV, x mm, y mm, MU) of the spots of one beam with MU > 0:
    MU = ScanSpotMetersetWeight × BeamMeterset / FinalCumulativeMetersetWeight."""
    meterset = next(
        float(rb.BeamMeterset)
        for rb in ds.FractionGroupSequence[0].ReferencedBeamSequence
        if rb.ReferencedBeamNumber == beam.BeamNumber
    )
    scale = meterset / float(beam.FinalCumulativeMetersetWeight)
    spots = []
    for cp in beam.IonControlPointSequence:
        weights = np.atleast_1d(np.asarray(cp.ScanSpotMetersetWeights, dtype=float))
        xy = np.asarray(cp.ScanSpotPositionMap, dtype=float).reshape(-1, 2)
        for (x, y), w in zip(xy, weights):
            if w > 0:
                spots.append((float(cp.NominalBeamEnergy), x, y, w * scale))
    return np.array(spots)


def test_ion_plan_protons_are_mu_times_protons_per_mu():
    ds = pydicom.dcmread(HEAD_PLAN)
    plan = isodose.read_ion_plan(HEAD_PLAN)
    assert plan.fractions == 5 and len(plan.beams) == 3
    ppmu = protons_per_mu()
    for beam, dicom_beam, count in zip(plan.beams, ds.IonBeamSequence, [659, 624, 624]):
        spots = pydicom_spots(ds, dicom_beam)
        assert len(beam.weights) == len(spots) == count
        np.testing.assert_allclose(beam.energies_mev, spots[:, 0], rtol=1e-12)
        np.testing.assert_allclose(beam.spot_x_mm, spots[:, 1], rtol=1e-12)
        np.testing.assert_allclose(beam.spot_y_mm, spots[:, 2], rtol=1e-12)
        expected = spots[:, 3] * np.array([ppmu(e) for e in spots[:, 0]])
        np.testing.assert_allclose(beam.weights, expected, rtol=1e-6)
        cp0 = dicom_beam.IonControlPointSequence[0]
        assert beam.gantry_deg == float(cp0.GantryAngle)
        assert beam.couch_deg == float(cp0.PatientSupportAngle)
        np.testing.assert_allclose(beam.isocenter_mm, [float(v) for v in cp0.IsocenterPosition])
        # range shifter 'RS_5CM' IN with its water-equivalent thickness 57 mm
        assert beam.range_shifter is not None
        assert beam.range_shifter.water_equivalent_thickness_mm == pytest.approx(57.0)
    same = isodose.read_ion_plan(HEAD_PLAN, machine=isodose.ProtonMachine.generic())
    np.testing.assert_array_equal(same.beams[2].weights, plan.beams[2].weights)


def test_ion_plan_mu_summary():
    beams = isodose.read_ion_plan_mu(HEAD_PLAN)
    assert [b["name"] for b in beams] == ["Field 1", "Field 2", "Field 3"]
    assert [b["spots"] for b in beams] == [659, 624, 624]
    assert [b["layers"] for b in beams] == [24, 19, 19]
    assert [b["meterset_mu"] for b in beams] == pytest.approx([5199.03, 5532.59, 4726.13], abs=0.005)
    assert beams[0]["fractions"] == 5 and beams[0]["radiation_type"] == "PROTON"
    assert beams[0]["isocenter_mm"] == pytest.approx((0.0, -170.159, -2.12195), abs=1e-3)
    assert min(beams[0]["energies_mev"]) == pytest.approx(110.3, abs=0.01)
    assert max(beams[0]["energies_mev"]) == pytest.approx(186.2, abs=0.01)


def test_plan_reading_errors(tmp_path):
    with pytest.raises(isodose.IsodoseFileNotFoundError):
        isodose.read_ion_plan(tmp_path / "missing.dcm")
    with pytest.raises(isodose.DicomError, match="aptg_sobp_RD.dcm"):
        isodose.read_ion_plan(DICOM_DATA / "aptg_sobp_RD.dcm")  # an RTDOSE, not a plan
    with pytest.raises(isodose.DicomError):
        isodose.read_brachy_plan(HEAD_PLAN)  # an RT Ion Plan, not a brachy plan


def implant(duration_h=None):
    positions = [[0.0, 0.0, 0.0], [10.0, -5.0, 2.5], [-7.5, 4.0, -10.0]]
    axes = [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.6, 0.0, 0.8]]
    return isodose.Implant("Amersham6711", positions, [0.5, 0.6, 0.5], directions=axes, duration_h=duration_h)


def test_brachy_plan_written_reads_in_pydicom(tmp_path):
    path = tmp_path / "RP.dcm"
    uid = isodose.write_brachy_plan(implant(), path, patient_id="P-1", patient_name="Doe^Jane")
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.5"  # RT Plan Storage
    assert ds.SOPInstanceUID == uid and ds.file_meta.MediaStorageSOPInstanceUID == uid
    assert ds.Modality == "RTPLAN" and ds.RTPlanGeometry == "PATIENT"
    assert ds.PatientID == "P-1" and str(ds.PatientName) == "Doe^Jane"
    assert ds.BrachyTreatmentTechnique == "PERMANENT" and ds.BrachyTreatmentType == "LDR"
    assert sorted(float(s.ReferenceAirKermaRate) for s in ds.SourceSequence) == [0.5, 0.6]
    assert {s.SourceIsotopeName for s in ds.SourceSequence} == {"I-125"}
    assert float(ds.SourceSequence[0].SourceIsotopeHalfLife) == pytest.approx(59.4)
    channels = ds.ApplicationSetupSequence[0].ChannelSequence
    assert len(channels) == 3
    tau_s = 59.4 * 86400 / math.log(2)  # permanent: the mean life at the initial rate
    for ch, pos, axis in zip(channels, implant().positions_mm, implant().directions):
        assert float(ch.ChannelTotalTime) == pytest.approx(tau_s, rel=1e-6)
        cp = ch.BrachyControlPointSequence[0]
        np.testing.assert_allclose([float(v) for v in cp.ControlPoint3DPosition], pos, atol=1e-9)
        np.testing.assert_allclose([float(v) for v in cp.ControlPointOrientation], axis, atol=1e-9)


def test_brachy_plan_round_trip(tmp_path):
    for duration in [None, 24.0]:
        original = implant(duration)
        path = tmp_path / f"RP_{duration}.dcm"
        isodose.write_brachy_plan(original, path)
        if duration is not None:
            ds = pydicom.dcmread(path)
            assert ds.BrachyTreatmentTechnique == "INTERSTITIAL"
            assert float(ds.ApplicationSetupSequence[0].ChannelSequence[0].ChannelTotalTime) == pytest.approx(86400.0)
        back = isodose.read_brachy_plan(path)
        assert back.model == "Amersham6711" and back.seed_count == 3
        assert back.duration_h == (None if duration is None else pytest.approx(duration))
        np.testing.assert_allclose(back.positions_mm, original.positions_mm, atol=1e-9)
        np.testing.assert_allclose(back.directions, original.directions, atol=1e-9)
        np.testing.assert_allclose(back.air_kerma_strength_u, [0.5, 0.6, 0.5], rtol=1e-12)
        assert back.days_from_reference == pytest.approx(0.0, abs=1e-6)
    other = isodose.read_brachy_plan(path, model="Best2301")
    assert other.model == "Best2301"
    with pytest.raises(isodose.InputError, match="Model9999"):
        isodose.read_brachy_plan(path, model="Model9999")
