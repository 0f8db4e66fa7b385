//! (in progress)

pub mod data_cmd;
