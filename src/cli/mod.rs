//! (in progress)
pub mod lab_cmd;
