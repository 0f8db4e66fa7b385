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

/// Builds an output buffer of `len` floats in parallel, `chunk` elements at a time: the thread
/// that runs `body(i, chunk_i)` first zeroes its own chunk, so the buffer is never zeroed on the
/// calling thread while the other cores wait (a serial `vec![0.0; len]` of each activation was
/// about a tenth of a sampling step) and the chunk is already in that core's cache when `body`
/// writes it. The last chunk may be shorter.
pub fn par_build(len: usize, chunk: usize, body: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    use rayon::prelude::*;
    use std::mem::MaybeUninit;
    let mut out = Vec::<f32>::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, c)| {
            c.fill(MaybeUninit::new(0.0));
            // SAFETY: every element of `c` was initialised just above, and `MaybeUninit<f32>`
            // has the layout of `f32`.
            let c = unsafe { &mut *(c as *mut [MaybeUninit<f32>] as *mut [f32]) };
            body(i, c);
        });
    // SAFETY: the chunks cover `0..len` and each was initialised by the pass above (a panic in
    // `body` propagates out of `for_each` before this line).
    unsafe { out.set_len(len) };
    out
}

/// [`par_build`] for bodies that overwrite their whole chunk: the chunks are handed out without
/// being zeroed first, which saves a write of every output float (zeroing fresh activations was
/// about 7% of a sampling step). In debug builds every chunk is filled with NaN first instead,
/// so a body that leaves an element unwritten makes the tests' outputs NaN.
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
    fn par_build_hands_out_zeroed_chunks_in_order_and_keeps_what_body_wrote() {
        let out = par_build(10, 4, |i, c| {
            assert!(c.iter().all(|&v| v == 0.0));
            assert_eq!(c.len(), if i == 2 { 2 } else { 4 });
            for (j, v) in c.iter_mut().enumerate() {
                *v = (i * 4 + j) as f32;
            }
        });
        assert_eq!(out, (0..10).map(|v| v as f32).collect::<Vec<_>>());
        assert!(par_build(0, 4, |_, _| unreachable!()).is_empty());
    }

    #[test]
    fn par_build_overwrite_keeps_what_body_wrote_and_poisons_in_debug() {
        // SAFETY: the body writes every element before reading any.
        let out = unsafe {
            par_build_overwrite(10, 4, |i, c| {
                for (j, v) in c.iter_mut().enumerate() {
                    *v = (i * 4 + j) as f32;
                }
            })
        };
        assert_eq!(out, (0..10).map(|v| v as f32).collect::<Vec<_>>());
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
