//! Sums over a batch split across threads (weight and bias gradients): each chunk of consecutive
//! items adds into a zeroed buffer of its own, and the buffers are added up in chunk order. The
//! split depends on the batch size only, so the result is the same bits on any number of threads.

use std::ops::Range;

use rayon::prelude::*;

/// Number of chunks a reduction over `n` items is split into. It depends on `n` only (never on
/// the thread count), so partial sums are always added in the same order.
pub(crate) fn reduction_chunks(n: usize) -> usize {
    n.clamp(1, 8)
}

/// Runs `f(items, out_part, partial)` in parallel on the [`reduction_chunks`] chunks of `0..n`
/// and returns the sum of their `partial`s: `items` is the chunk's range of consecutive items,
/// `out_part` its items' share of `out` (`out.len() / n` floats per item; empty when `out` is)
/// and `partial` a zeroed buffer of `len` floats. The sum is the first chunk's buffer plus the
/// second's, and so on in chunk order. `n = 0` gives zeros.
pub(crate) fn par_chunk_sum(
    n: usize,
    len: usize,
    out: &mut [f32],
    f: impl Fn(Range<usize>, &mut [f32], &mut [f32]) + Send + Sync,
) -> Vec<f32> {
    if n == 0 {
        return vec![0f32; len];
    }
    assert_eq!(
        out.len() % n,
        0,
        "par_chunk_sum: output does not split into {n} items"
    );
    let per = n.div_ceil(reduction_chunks(n));
    let chunks = n.div_ceil(per);
    let item = out.len() / n;
    let parts: Vec<&mut [f32]> = if item == 0 {
        (0..chunks).map(|_| <&mut [f32]>::default()).collect()
    } else {
        out.chunks_mut(per * item).collect()
    };
    let mut partials: Vec<Vec<f32>> = (0..chunks).map(|_| vec![0f32; len]).collect();
    parts
        .into_par_iter()
        .zip(partials.par_iter_mut())
        .enumerate()
        .for_each(|(chunk, (part, partial))| {
            let first = chunk * per;
            f(first..(first + per).min(n), part, partial);
        });
    let mut it = partials.into_iter();
    let mut sum = it.next().unwrap_or_default();
    for p in it {
        sum.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_items_once_and_sum_in_order() {
        for n in [1usize, 2, 7, 8, 9, 17, 33] {
            let mut out = vec![0f32; 2 * n];
            let sum = par_chunk_sum(n, 3, &mut out, |items, part, partial| {
                assert_eq!(part.len(), 2 * items.len());
                for (j, i) in items.clone().enumerate() {
                    part[2 * j] = i as f32;
                    part[2 * j + 1] = -(i as f32);
                    partial[0] += 1.0;
                    partial[1] += i as f32;
                }
                partial[2] = items.start as f32;
            });
            let want: Vec<f32> = (0..n).flat_map(|i| [i as f32, -(i as f32)]).collect();
            assert_eq!(out, want, "n = {n}");
            assert_eq!(sum[0], n as f32);
            assert_eq!(sum[1], (n * (n - 1) / 2) as f32);
            // Chunk starts 0, per, 2·per, … added up.
            let per = n.div_ceil(reduction_chunks(n));
            let starts: usize = (0..n).step_by(per).sum();
            assert_eq!(sum[2], starts as f32);
        }
        // No output to share out, and an empty batch.
        let sum = par_chunk_sum(5, 1, &mut [], |items, part, partial| {
            assert!(part.is_empty());
            partial[0] += items.len() as f32;
        });
        assert_eq!(sum, [5.0]);
        assert_eq!(
            par_chunk_sum(0, 2, &mut [], |_, _, _| unreachable!()),
            [0.0, 0.0]
        );
    }
}
