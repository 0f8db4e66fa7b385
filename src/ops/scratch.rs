//! Per-thread scratch buffers, reused across calls so the hot loops neither allocate nor page
//! fault on every image.

use std::cell::RefCell;

thread_local! {
    static SCRATCH: [RefCell<Vec<f32>>; 2] = const { [RefCell::new(Vec::new()), RefCell::new(Vec::new())] };
}

/// Runs `f` with a scratch slice of `len` elements from slot `slot` (0 or 1) of this thread's
/// buffers. The contents on entry are unspecified. If the slot is already in use (re-entrant
/// call), a fresh buffer is used instead.
pub fn with_scratch<R>(slot: usize, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| match s[slot].try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}
