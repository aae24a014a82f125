//! # isodose-dicom
//!
//! DICOM-RT input and output for isodose: CT series, RTSTRUCT, RT Ion Plan,
//! brachytherapy RT Plan and RTDOSE. This crate depends on `isodose-core`,
//! never the reverse.
//!
//! Today: CT series ([`ct`]), RT Ion Plans ([`rt_ion_plan`], in MU) and
//! their conversion to isodose proton plans in protons
//! ([`ion_plan_convert`]), and RTDOSE reading and writing ([`rtdose`]).
//! RTSTRUCT ([`rtstruct`]) with the material overrides a planning system
//! assigns to structures ([`recompute`], for secondary dose checks), and
//! brachytherapy RT Plans ([`rt_brachy_plan`]).

mod attrs;
pub mod ct;
mod error;
pub mod ion_plan_convert;
pub mod recompute;
pub mod rt_brachy_plan;
pub mod rt_ion_plan;
pub mod rtdose;
pub mod rtstruct;

pub use ct::{CtSeries, StudyIdentifiers, read_ct, read_ct_series};
pub use error::DicomIoError;
pub use rt_brachy_plan::{
    BrachyApplicationSetup, BrachyChannel, BrachyControlPoint, BrachyPlan, BrachyPlanContext,
    BrachySeed, BrachySource, PlanDateTime, read_brachy_plan, write_brachy_plan,
};
pub use rt_ion_plan::{IonBeam, IonLayer, IonPlan, RangeShifterSetting, read_ion_plan};
pub use rtdose::{DoseContext, PlanReference, RtDose, read_rtdose, write_rtdose};
pub use rtstruct::{Contour, Roi, read_rtstruct};
