//! The lab's terminal UI in one binary: key handling and views on synthetic worker messages, the
//! main loop on a test backend, the real binary in tmux, and the README screenshots (ignored).

#[path = "../common/mod.rs"]
mod common;
#[path = "../mock_hub/mod.rs"]
mod mock_hub;
mod tui_support;

mod tui_e2e;
mod tui_keys;
mod tui_loop;
mod tui_mouse;
mod tui_screenshots;
mod tui_status;
mod tui_views;
