//! Data loading in one binary: the Hub against a loopback mock, local files, the built-in shapes
//! set and the batcher, dataset names and summaries. `HF_HUB_OFFLINE` from the environment is
//! tested in its own binary (tests/data_offline_env.rs): it sets a process-wide variable that
//! would turn every Hub test here offline.

#[path = "../common/mod.rs"]
mod common;
#[path = "../mock_hub/mod.rs"]
mod mock_hub;

mod data_hub;
mod data_local;
mod data_shapes_batcher;
mod data_spec_summary;
