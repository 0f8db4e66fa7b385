//! The fused scale-shift + SiLU of today's blog UNet against candle's broadcast ops and finite
//! differences.

use crate::ops_common;

use candle_core::{Result, Tensor, Var};
use ddpm_lab::ops::scale_shift_silu::scale_shift_silu;
use ops_common::{assert_close, check_finite_differences, grads_of, rand};

fn stock(h: &Tensor, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
    let (n, c) = scale.dims2()?;
    let s = (scale.reshape((n, c, 1, 1))? + 1.0)?;
    h.broadcast_mul(&s)?
        .broadcast_add(&shift.reshape((n, c, 1, 1))?)?
        .silu()
}

#[test]
fn forward_and_gradients_match_candle() {
    for (i, &(n, c, hh, w)) in [(2, 6, 9, 9), (3, 8, 7, 7), (1, 3, 1, 1), (5, 4, 28, 28)]
        .iter()
        .enumerate()
    {
        let seed = 700 + i as u64 * 10;
        let hv = Var::from_tensor(&(rand(&[n, c, hh, w], seed) * 3.0).unwrap()).unwrap();
        let sv = Var::from_tensor(&rand(&[n, c], seed + 1)).unwrap();
        let bv = Var::from_tensor(&rand(&[n, c], seed + 2)).unwrap();
        let vars = [hv.clone(), sv.clone(), bv.clone()];
        let (yo, go) = grads_of(
            &vars,
            &|t: &[Tensor]| scale_shift_silu(&t[0], &t[1], &t[2]),
            seed + 3,
        );
        let (yt, gt) = grads_of(&vars, &|t: &[Tensor]| stock(&t[0], &t[1], &t[2]), seed + 3);
        assert_close(&format!("case {i} forward"), &yo, &yt, 1e-5);
        for (name, v) in [("dh", &hv), ("dscale", &sv), ("dshift", &bv)] {
            assert_close(
                &format!("case {i} {name}"),
                go.get(v).unwrap(),
                gt.get(v).unwrap(),
                1e-4,
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let inputs = [rand(&[2, 3, 4, 4], 1), rand(&[2, 3], 2), rand(&[2, 3], 3)];
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let f = |t: &[Tensor]| scale_shift_silu(&t[0], &t[1], &t[2]);
    let (_, g) = grads_of(&vars, &f, 4);
    for (i, v) in vars.iter().enumerate() {
        check_finite_differences(&inputs, i, g.get(v).unwrap(), &f, 4, 1e-3, 1e-2);
    }
}

#[test]
fn mismatched_shapes_are_errors() {
    let h = rand(&[2, 3, 4, 4], 1);
    let e = scale_shift_silu(&h, &rand(&[2, 4], 2), &rand(&[2, 4], 3)).unwrap_err();
    assert!(e.to_string().contains("scale and shift"), "{e}");
}
