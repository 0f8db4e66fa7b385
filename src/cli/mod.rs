//! (in progress)

pub mod schedules_cmd;
