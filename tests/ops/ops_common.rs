//! Helpers for the custom-op tests: random tensors, gradients of a random projection of an
//! op's output, and central finite differences.
#![allow(dead_code)]

use crate::common;

use candle_core::{backprop::GradStore, Device, Result, Tensor, Var};

/// A deterministic pseudo-random tensor with values in about `[-1, 1]`.
pub fn rand(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64 * 2.0 - 1.0) as f32
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Max |a − b| over all elements (shapes must match); NaN if any difference is NaN.
pub use common::max_abs_diff as max_diff;

/// Max |a| over all elements.
pub fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Asserts `a ≈ b` to `tol` relative to the largest magnitude of `b` (at least 1).
pub fn assert_close(what: &str, a: &Tensor, b: &Tensor, tol: f32) {
    let scale = max_abs(b).max(1.0);
    let e = max_diff(a, b);
    assert!(
        e <= tol * scale,
        "{what}: max difference {e} (scale {scale})"
    );
}

/// `L = Σ f(vars) · r` for a fixed random `r`; returns the output and the gradients.
pub fn grads_of(
    vars: &[Var],
    f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    r_seed: u64,
) -> (Tensor, GradStore) {
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&ts).unwrap();
    let r = rand(out.dims(), r_seed);
    let loss = (&out * &r).unwrap().sum_all().unwrap();
    let g = loss.backward().unwrap();
    (out, g)
}

/// Checks `∂L/∂input[idx]` of `L = Σ f(inputs) · r` against central differences (in f64 over
/// f32 evaluations) at a few positions of input `which`.
pub fn check_finite_differences(
    inputs: &[Tensor],
    which: usize,
    analytic: &Tensor,
    f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    r_seed: u64,
    eps: f32,
    tol: f64,
) {
    let base = f(inputs).unwrap();
    let r = rand(base.dims(), r_seed);
    let loss = |ins: &[Tensor]| -> f64 {
        let o = f(ins).unwrap();
        (o.to_dtype(candle_core::DType::F64).unwrap()
            * r.to_dtype(candle_core::DType::F64).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
    };
    let x = inputs[which]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let ga = analytic.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let n = x.len();
    let picks = [0, n / 7, n / 3, n / 2, (2 * n) / 3, n - 1];
    for &i in &picks {
        let mut plus = x.clone();
        plus[i] += eps;
        let mut minus = x.clone();
        minus[i] -= eps;
        let shape = inputs[which].dims();
        let mut ip = inputs.to_vec();
        ip[which] = Tensor::from_vec(plus, shape, &Device::Cpu).unwrap();
        let mut im = inputs.to_vec();
        im[which] = Tensor::from_vec(minus, shape, &Device::Cpu).unwrap();
        let numeric = (loss(&ip) - loss(&im)) / (2.0 * eps as f64);
        let a = ga[i] as f64;
        assert!(
            (numeric - a).abs() <= tol * (1.0 + numeric.abs()),
            "input {which}, element {i}: analytic {a}, numeric {numeric}"
        );
    }
}

/// Checks an element-wise custom op against candle's own (forward to 1e-6, input gradient to
/// 1e-5, on values spread over ±8) and its gradient against finite differences.
pub fn check_elementwise_op(
    ours: impl Fn(&Tensor) -> Result<Tensor>,
    theirs: impl Fn(&Tensor) -> Result<Tensor>,
) {
    let x = (rand(&[3, 5, 7, 11], 1) * 4.0).unwrap();
    let xv = Var::from_tensor(&x).unwrap();
    let (yo, go) = grads_of(std::slice::from_ref(&xv), &|t: &[Tensor]| ours(&t[0]), 2);
    let (yt, gt) = grads_of(std::slice::from_ref(&xv), &|t: &[Tensor]| theirs(&t[0]), 2);
    assert!(
        max_diff(&yo, &yt) < 1e-6,
        "forward differs by {}",
        max_diff(&yo, &yt)
    );
    assert_close("dx", go.get(&xv).unwrap(), gt.get(&xv).unwrap(), 1e-5);

    let x = (rand(&[4, 9], 3) * 3.0).unwrap();
    let xv = Var::from_tensor(&x).unwrap();
    let f = |t: &[Tensor]| ours(&t[0]);
    let (_, g) = grads_of(std::slice::from_ref(&xv), &f, 4);
    check_finite_differences(&[x], 0, g.get(&xv).unwrap(), &f, 4, 1e-3, 1e-2);
}
