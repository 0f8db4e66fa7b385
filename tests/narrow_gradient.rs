//! The vendored candle-core's gradient through `narrow` (`narrow-gradient-in-place.patch`): the
//! output gradient written into its window of zeros, in one fill and one copy. Its own test
//! binary: it opens the op census, which counts the ops of every thread of the process.

use std::collections::BTreeMap;

use candle_core::{census, Device, Tensor, Var};

/// The gradient of `Σ narrow(x, 1, start, len) ⊙ w` for `x (2, 5, 3)`, and the ops its
/// backward pass ran.
fn narrow_grad(start: usize, len: usize) -> (Vec<f32>, Vec<f32>, BTreeMap<&'static str, usize>) {
    let dev = Device::Cpu;
    let x = Var::from_tensor(
        &Tensor::arange(0f32, 30.0, &dev)
            .unwrap()
            .reshape((2, 5, 3))
            .unwrap(),
    )
    .unwrap();
    let n = 2 * len * 3;
    let w = Tensor::arange(1f32, n as f32 + 1.0, &dev)
        .unwrap()
        .reshape((2, len, 3))
        .unwrap();
    let loss = (x.narrow(1, start, len).unwrap() * &w)
        .unwrap()
        .sum_all()
        .unwrap();
    census::open();
    let grads = loss.backward();
    let ops = census::close();
    let g = grads.unwrap().get(&x).unwrap().flatten_all().unwrap();
    // By hand: w's values in the window, zeros elsewhere.
    let w = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut expected = vec![0f32; 30];
    for b in 0..2 {
        for i in 0..len {
            for j in 0..3 {
                expected[b * 15 + (start + i) * 3 + j] = w[b * len * 3 + i * 3 + j];
            }
        }
    }
    (g.to_vec1::<f32>().unwrap(), expected, ops)
}

#[test]
fn a_narrows_gradient_is_its_window_of_zeros_in_a_fill_and_a_copy() {
    // The whole axis: the gradient passes through as it is.
    let (g, expected, whole) = narrow_grad(0, 5);
    assert_eq!(g, expected);
    for (start, len) in [(0, 2), (1, 3), (3, 2), (4, 1)] {
        let (g, expected, ops) = narrow_grad(start, len);
        assert_eq!(g, expected, "narrow({start}, {len})");
        // One fill of zeros and one copy more than the whole axis's pass, wherever the window.
        let mut more = ops.clone();
        for (op, n) in &whole {
            *more.entry(op).or_default() -= n;
        }
        more.retain(|_, n| *n != 0);
        let one_each: BTreeMap<&str, usize> = [("copy2d", 1), ("zeros", 1)].into_iter().collect();
        assert_eq!(more, one_each, "narrow({start}, {len}): {ops:?}");
    }
}
