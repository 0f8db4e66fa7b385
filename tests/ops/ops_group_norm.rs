//! The fused GroupNorm op against candle-nn's GroupNorm and finite differences.

use crate::ops_common;

use candle_core::{Module, Result, Tensor, Var};
use ddpm_lab::ops::group_norm::group_norm;
use ops_common::{assert_close, check_finite_differences, grads_of, rand};

fn stock(x: &Tensor, g: &Tensor, b: &Tensor, groups: usize) -> Result<Tensor> {
    let c = x.dim(1)?;
    candle_nn::GroupNorm::new(g.clone(), b.clone(), c, groups, 1e-5)?.forward(x)
}

#[test]
fn forward_and_gradients_match_candle() {
    // (n, c, h, w, groups): GroupNorm(1, C) of the ConvNeXt blocks and the attention pre-norm,
    // GroupNorm(4, C) and (8, C) of the ResNet blocks.
    for (i, &(n, c, h, w, groups)) in [
        (2, 6, 9, 9, 1),
        (3, 8, 7, 7, 4),
        (9, 8, 4, 5, 8),
        (2, 4, 1, 1, 2),
    ]
    .iter()
    .enumerate()
    {
        let seed = 200 + i as u64 * 10;
        // An offset and scale make the statistics non-trivial.
        let x = ((rand(&[n, c, h, w], seed) * 3.0).unwrap() + 0.5).unwrap();
        let xv = Var::from_tensor(&x).unwrap();
        let gv = Var::from_tensor(&rand(&[c], seed + 1)).unwrap();
        let bv = Var::from_tensor(&rand(&[c], seed + 2)).unwrap();
        let vars = [xv.clone(), gv.clone(), bv.clone()];
        let ours = move |t: &[Tensor]| group_norm(&t[0], &t[1], &t[2], groups, 1e-5);
        let theirs = move |t: &[Tensor]| stock(&t[0], &t[1], &t[2], groups);
        let (yo, go) = grads_of(&vars, &ours, seed + 3);
        let (yt, gt) = grads_of(&vars, &theirs, seed + 3);
        assert_close(&format!("case {i} forward"), &yo, &yt, 2e-5);
        for (name, v) in [("dx", &xv), ("dgamma", &gv), ("dbeta", &bv)] {
            assert_close(
                &format!("case {i} {name}"),
                go.get(v).unwrap(),
                gt.get(v).unwrap(),
                5e-5,
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let x = rand(&[2, 4, 3, 3], 1);
    let (g, b) = (rand(&[4], 2), rand(&[4], 3));
    let vars = [
        Var::from_tensor(&x).unwrap(),
        Var::from_tensor(&g).unwrap(),
        Var::from_tensor(&b).unwrap(),
    ];
    let f = |t: &[Tensor]| group_norm(&t[0], &t[1], &t[2], 2, 1e-5);
    let (_, gr) = grads_of(&vars, &f, 4);
    let inputs = [x, g, b];
    for (i, v) in vars.iter().enumerate() {
        check_finite_differences(&inputs, i, gr.get(v).unwrap(), &f, 4, 1e-3, 1e-2);
    }
}

#[test]
fn groups_must_divide_channels() {
    let x = rand(&[1, 6, 2, 2], 1);
    assert!(group_norm(&x, &rand(&[6], 2), &rand(&[6], 3), 4, 1e-5).is_err());
}
