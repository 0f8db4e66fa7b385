//! A census of the storage ops run while one is open, by op name: on a GPU each is one kernel
//! launch or more (a custom op may launch several), so the census says how many launches a
//! pass needs, on any device. Closed, it costs one relaxed atomic load per op.
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

static OPEN: AtomicBool = AtomicBool::new(false);
static COUNTS: Mutex<BTreeMap<&'static str, usize>> = Mutex::new(BTreeMap::new());

thread_local! {
    /// How many [`as_one`] calls this thread is inside.
    static INSIDE: Cell<usize> = const { Cell::new(0) };
}

fn counts() -> MutexGuard<'static, BTreeMap<&'static str, usize>> {
    COUNTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens an empty census: from now on every op that writes a storage, on any thread, counts
/// one under its name (a new storage from an op, an in-place op, a fill, a copy from the host).
pub fn open() {
    counts().clear();
    OPEN.store(true, Ordering::SeqCst);
}

/// Closes the census and returns how often each op ran since [`open`].
pub fn close() -> BTreeMap<&'static str, usize> {
    OPEN.store(false, Ordering::SeqCst);
    std::mem::take(&mut *counts())
}

/// Runs `f` as one run of `op`: the ops it runs on this thread are not counted. For a
/// composite of ops that stands in for one op of another device (a CPU stand-in of a GPU
/// kernel), so that a census on the CPU counts what that device would run. Nested, only the
/// outermost counts.
pub fn as_one<R>(op: &'static str, f: impl FnOnce() -> R) -> R {
    /// Leaves the call on drop, also should `f` panic.
    struct Inside;
    impl Drop for Inside {
        fn drop(&mut self) {
            INSIDE.with(|d| d.set(d.get() - 1));
        }
    }
    count(op);
    INSIDE.with(|d| d.set(d.get() + 1));
    let _inside = Inside;
    f()
}

/// Counts one run of `op` if a census is open (and this thread is not inside [`as_one`]).
#[inline]
pub(crate) fn count(op: &'static str) {
    if OPEN.load(Ordering::Relaxed) && INSIDE.with(|d| d.get()) == 0 {
        *counts().entry(op).or_default() += 1;
    }
}
