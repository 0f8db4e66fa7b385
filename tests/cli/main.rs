//! The headless CLI and what it writes, in one binary: the real binary on tiny configs, `data`
//! and `train` against a loopback mock Hub, the export layer's files and the `schedules` command.

#[path = "../common/mod.rs"]
mod common;
#[path = "../mock_hub/mod.rs"]
mod mock_hub;

mod cli;
mod cli_hub;
mod export_files;
mod export_schedules_cmd;
mod gpu_check_script;
mod gpu_pack_script;
mod reliability_edges;
mod reliability_signals;
