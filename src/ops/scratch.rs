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

/// Builds an output buffer of `len` floats in parallel, `chunk` elements at a time, for bodies
/// that overwrite their whole chunk: `body(i, chunk_i)` runs on the worker that then has the
/// chunk in its cache, and the buffer is never zeroed first (a serial `vec![0.0; len]` of each
/// activation was about a tenth of a sampling step). In debug builds every chunk is filled with
/// NaN before `body` runs, so a body that leaves an element unwritten makes the tests' outputs
/// NaN. The last chunk may be shorter.
///
/// # Safety
/// `body(i, chunk)` must write every element of `chunk` and must not read an element before
/// writing it: the chunk's memory is uninitialised.
pub unsafe fn par_build_overwrite(
    len: usize,
    chunk: usize,
    body: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = Vec::<f32>::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, c)| {
            if cfg!(debug_assertions) {
                c.fill(std::mem::MaybeUninit::new(f32::NAN));
            }
            // SAFETY: `MaybeUninit<f32>` has the layout of `f32`; the caller promises that
            // `body` writes every element before reading it.
            let c = unsafe { &mut *(c as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) };
            body(i, c);
        });
    // SAFETY: the chunks cover `0..len` and `body` wrote each of them (a panic in `body`
    // propagates out of `for_each` before this line).
    unsafe { out.set_len(len) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn par_build_overwrite_keeps_what_body_wrote_and_poisons_in_debug() {
        // SAFETY: the body writes every element before reading any.
        let out = unsafe {
            par_build_overwrite(10, 4, |i, c| {
                assert_eq!(c.len(), if i == 2 { 2 } else { 4 });
                for (j, v) in c.iter_mut().enumerate() {
                    *v = (i * 4 + j) as f32;
                }
            })
        };
        assert_eq!(out, (0..10).map(|v| v as f32).collect::<Vec<_>>());
        // SAFETY: the body is never called.
        assert!(unsafe { par_build_overwrite(0, 4, |_, _| unreachable!()) }.is_empty());
        // A body that skips its last element leaves it NaN in debug builds (what the op tests
        // rely on to catch a kernel that does not write its whole output).
        if cfg!(debug_assertions) {
            // SAFETY: nothing is read; the unwritten element is only compared below.
            let out = unsafe { par_build_overwrite(8, 4, |_, c| c[..3].fill(1.0)) };
            assert!(out[3].is_nan() && out[7].is_nan());
            assert!(out[..3].iter().all(|&v| v == 1.0));
        }
    }
}
