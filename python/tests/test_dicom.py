"""RTDOSE in and out, checked with pydicom (an independent DICOM reader)."""

import numpy as np
import pydicom
import pytest

import isodose
from conftest import REPO

RAYSTATION_RD = REPO / "dicom-io" / "tests" / "data" / "aptg_sobp_RD.dcm"


def test_read_dose_agrees_with_pydicom():
    dose = isodose.read_dose(RAYSTATION_RD)
    ds = pydicom.dcmread(RAYSTATION_RD)
    expected = ds.pixel_array.astype(np.float64) * float(ds.DoseGridScaling)
    assert dose.array.shape == expected.shape == (107, 105, 105)
    np.testing.assert_allclose(dose.array, expected, rtol=1e-6, atol=1e-9)
    assert dose.grid.origin_mm == tuple(float(v) for v in ds.ImagePositionPatient)
    assert "GY PHYSICAL PLAN" in dose.backend


def test_written_rtdose_reads_in_pydicom(tmp_path):
    grid = isodose.Grid((3, 4, 5), (2.0, 2.5, 3.0), (-4.0, -5.0, 6.0))
    rng = np.random.default_rng(7)
    array = rng.uniform(0, 2.5, size=(3, 4, 5)).astype(np.float32)
    path = tmp_path / "RD.dcm"
    uid = isodose.write_dose(isodose.Dose(array, grid), path)
    ds = pydicom.dcmread(path)
    assert ds.Modality == "RTDOSE" and ds.SOPInstanceUID == uid
    assert ds.DoseUnits == "GY" and ds.DoseType == "PHYSICAL"
    pixels = ds.pixel_array.astype(np.float64) * float(ds.DoseGridScaling)
    assert pixels.shape == (3, 4, 5)
    np.testing.assert_allclose(pixels, array, atol=float(ds.DoseGridScaling) / 2 + 1e-6)
    # PixelSpacing is (row = y, column = x); frames advance along z
    assert [float(v) for v in ds.PixelSpacing] == [2.5, 2.0]
    assert [float(v) for v in ds.GridFrameOffsetVector] == [0.0, 3.0, 6.0]
    back = isodose.read_dose(path)
    np.testing.assert_allclose(back.array, array, atol=1e-6)


def test_dicom_errors(tmp_path):
    bad = tmp_path / "bad.dcm"
    bad.write_text("not DICOM")
    with pytest.raises(isodose.DicomError, match="bad.dcm"):
        isodose.read_dose(bad)
    with pytest.raises(isodose.IsodoseFileNotFoundError, match="missing.dcm") as e:
        isodose.read_dose(tmp_path / "missing.dcm")
    # an IsodoseError and a FileNotFoundError at once
    assert isinstance(e.value, isodose.IsodoseError) and isinstance(e.value, FileNotFoundError)
    with pytest.raises(isodose.IsodoseFileNotFoundError):
        isodose.read_ct(tmp_path / "no-such-folder")


def test_read_ct_agrees_with_pydicom(tmp_path):
    import tarfile

    with tarfile.open(REPO / "dicom-io" / "tests" / "data" / "CT.HeadPhantom_177_slices.tar.gz") as t:
        t.extractall(tmp_path, filter="data")
    folder = tmp_path / "CT"
    ct = isodose.read_ct(folder)
    assert ct.grid.shape == (177, 512, 512)
    # slice 50 (1-based instance 50 is the 50th by position: z from -139 mm)
    ds = pydicom.dcmread(folder / "CT.HeadPhantom.50.dcm")
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    k = round((float(ds.ImagePositionPatient[2]) - ct.grid.origin_mm[2]) / ct.grid.spacing_mm[2])
    np.testing.assert_array_equal(ct.hu[k], hu.astype(np.float32))
    assert ct.study_instance_uid == ds.StudyInstanceUID
    assert ct.frame_of_reference_uid == ds.FrameOfReferenceUID

    # an RTDOSE on this CT and its Eclipse ion plan joins their study and
    # frame of reference and references the plan (read back by pydicom)
    plan_path = REPO / "dicom-io" / "tests" / "data" / "dcpt_head_RN.dcm"
    rn = pydicom.dcmread(plan_path)
    grid = isodose.Grid((2, 3, 4), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    dose = isodose.Dose(np.ones((2, 3, 4), np.float32), grid)
    out = tmp_path / "RD.dcm"
    isodose.write_dose(dose, out, ct=ct, plan=plan_path)
    rd = pydicom.dcmread(out)
    assert rd.StudyInstanceUID == ds.StudyInstanceUID
    assert rd.FrameOfReferenceUID == ds.FrameOfReferenceUID == rn.FrameOfReferenceUID
    assert rd.PatientID == ds.PatientID
    ref = rd.ReferencedRTPlanSequence[0]
    assert ref.ReferencedSOPInstanceUID == rn.SOPInstanceUID
    assert ref.ReferencedSOPClassUID == rn.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.8"
    assert rd.DoseSummationType == "PLAN"
    # a plan of another patient's frame of reference is refused
    other = REPO / "dicom-io" / "tests" / "data" / "aptg_sobp_RP.dcm"
    with pytest.raises(isodose.DicomError, match="FrameOfReferenceUID"):
        isodose.write_dose(dose, tmp_path / "RD2.dcm", ct=ct, plan=other)
    with pytest.raises(isodose.DicomError, match="not a plan"):
        isodose.write_dose(dose, tmp_path / "RD3.dcm", plan=RAYSTATION_RD)


def test_read_rtstruct_masks():
    grid = isodose.Grid((111, 111, 111), (2.0, 2.0, 2.0), (-109.0, -109.0, -109.0))
    masks = isodose.read_rtstruct(REPO / "dicom-io" / "tests" / "data" / "aptg_sobp_RS.dcm", grid)
    assert set(masks) == {"Cube101010", "Slope101004", "External", "PMMA", "LoPo"}
    cube = masks["Cube101010"]
    assert cube.dtype == np.bool_ and cube.shape == (111, 111, 111)
    assert cube.sum() * 8.0 / 1000.0 == 1000.0  # the 100 mm cube, in cm³
    assert masks["LoPo"].sum() == 0


def test_read_rtstruct_fractional_occupancy():
    # 7 mm voxels cut by the faces of the 100 mm cube: voxel centres give the
    # wrong volume, occupancies from 12^3 samples per voxel the right one
    grid = isodose.Grid((18, 18, 18), (7.0, 7.0, 7.0), (-58.0, -57.0, -56.5))
    path = REPO / "dicom-io" / "tests" / "data" / "aptg_sobp_RS.dcm"
    occ = isodose.read_rtstruct(path, grid, supersampling=12)["Cube101010"]
    assert occ.dtype == np.float32 and occ.min() >= 0.0 and occ.max() == 1.0
    assert 0 < np.count_nonzero((occ > 0) & (occ < 1))
    voxel_cc = 0.343
    assert abs(occ.sum() * voxel_cc - 1000.0) < 5.0
    centres = isodose.read_rtstruct(path, grid)["Cube101010"]
    assert abs(centres.sum() * voxel_cc - 1000.0) > 20.0
    with pytest.raises(isodose.InputError, match="supersampling"):
        isodose.read_rtstruct(path, grid, supersampling=0)
