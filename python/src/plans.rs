//! Plan bindings: RT Ion Plans (read, converted to protons with a machine)
//! and brachytherapy RT Plans (read as an implant, written from one), over
//! `isodose_dicom`.

use std::path::PathBuf;
use std::sync::Arc;

use isodose_core::proton::ProtonMachine;
use isodose_core::tg43::SeedCatalogue;
use isodose_dicom::{BrachyPlanContext, DicomIoError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::errors::{self, IntoPy};
use crate::{PyImplant, PyProtonMachine, PyProtonPlan};

/// Reads an RT Ion Plan as a ProtonPlan: spot weights in protons per
/// fraction, protons = MU × protons/MU of the machine at the layer energy
/// (the built-in generic machine when `machine` is None).
///
/// path: the RT Ion Plan file (PBS, protons).
/// machine: the ProtonMachine whose MU calibration converts the weights and
///     whose range-shifter table gives a shifter's WET when the plan omits it.
/// Returns a ProtonPlan: gantry/couch angles (deg), isocentre (mm, LPS),
/// energies (MeV), spot positions (mm) and weights (protons), fractions.
#[pyfunction]
#[pyo3(signature = (path, machine = None))]
pub fn read_ion_plan(
    py: Python<'_>,
    path: PathBuf,
    machine: Option<&PyProtonMachine>,
) -> PyResult<PyProtonPlan> {
    let machine = match machine {
        Some(m) => Arc::clone(&m.0),
        None => Arc::new(errors::detach(py, ProtonMachine::generic)?.py_err(py)?),
    };
    errors::detach(py, || {
        isodose_dicom::read_ion_plan(&path)?.to_proton_plan(&machine)
    })?
    .map(PyProtonPlan)
    .map_err(|e| errors::dicom_to_py(py, e))
}

/// The beams of an RT Ion Plan as the plan gives them (in MU): one dict per
/// treatment beam with keys number, name, machine, radiation_type,
/// gantry_deg, couch_deg (deg), isocenter_mm ((x, y, z) mm, LPS),
/// meterset_mu (MU), fractions, layers, spots and energies_mev (per layer,
/// MeV).
#[pyfunction]
pub fn read_ion_plan_mu<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyList>> {
    let plan = errors::detach(py, || isodose_dicom::read_ion_plan(&path))?
        .map_err(|e| errors::dicom_to_py(py, e))?;
    let list = PyList::empty(py);
    for b in &plan.beams {
        let d = PyDict::new(py);
        d.set_item("number", b.number)?;
        d.set_item("name", &b.name)?;
        d.set_item("machine", &b.machine)?;
        d.set_item("radiation_type", &b.radiation_type)?;
        d.set_item("gantry_deg", b.gantry_deg)?;
        d.set_item("couch_deg", b.couch_deg)?;
        d.set_item(
            "isocenter_mm",
            (b.isocenter_mm[0], b.isocenter_mm[1], b.isocenter_mm[2]),
        )?;
        d.set_item("meterset_mu", b.meterset_mu)?;
        d.set_item("fractions", plan.fractions)?;
        d.set_item("layers", b.layers.len())?;
        d.set_item("spots", b.spot_count())?;
        d.set_item(
            "energies_mev",
            b.layers.iter().map(|l| l.energy_mev).collect::<Vec<_>>(),
        )?;
        list.append(d)?;
    }
    Ok(list)
}

/// Reads a brachytherapy RT Plan as an Implant, with the seed model `model`
/// (a key of `seed_models()`), or the catalogue model matching the plan's
/// source model names when None.
#[pyfunction]
#[pyo3(signature = (path, model = None))]
pub fn read_brachy_plan(py: Python<'_>, path: PathBuf, model: Option<&str>) -> PyResult<PyImplant> {
    let implant = errors::detach(py, || -> Result<_, DicomIoError> {
        let catalogue = SeedCatalogue::builtin();
        let plan = isodose_dicom::read_brachy_plan(&path)?;
        let model = match model {
            Some(key) => catalogue.get(key)?,
            None => plan.seed_model(&catalogue)?,
        };
        plan.to_implant(model)
    })?
    .map_err(|e| errors::dicom_to_py(py, e))?;
    Ok(PyImplant(implant))
}

/// Writes an implant as a brachytherapy RT Plan; returns its SOP instance
/// UID.
///
/// implant: the Implant (seed positions mm, LPS; S_K in U; permanent or
///     temporary with its duration in h).
/// path: the file to write.
/// patient_id, patient_name, label: PatientID, PatientName and RTPlanLabel.
#[pyfunction]
#[pyo3(signature = (implant, path, patient_id = "", patient_name = "", label = ""))]
pub fn write_brachy_plan(
    py: Python<'_>,
    implant: &PyImplant,
    path: PathBuf,
    patient_id: &str,
    patient_name: &str,
    label: &str,
) -> PyResult<String> {
    let context = BrachyPlanContext {
        patient_id: patient_id.to_owned(),
        patient_name: patient_name.to_owned(),
        label: label.to_owned(),
        ..BrachyPlanContext::default()
    };
    errors::detach(py, || {
        isodose_dicom::write_brachy_plan(&path, &implant.0, &context)
    })?
    .map_err(|e| errors::dicom_to_py(py, e))
}
