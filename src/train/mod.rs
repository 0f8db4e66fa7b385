//! (in progress)
pub mod events;
