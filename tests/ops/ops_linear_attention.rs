//! The fused linear-attention core against the same maths in candle's stock ops (as the blog
//! writes it) and finite differences.

use crate::ops_common;

use candle_core::{Result, Tensor, Var, D};
use ddpm_lab::ops::linear_attention::{linear_attention, linear_attention_with_memory};
use ops_common::{assert_close, check_finite_differences, grads_of, rand};

/// The blog's `LinearAttention.forward` between `to_qkv` and `to_out`, in stock candle ops.
fn stock(qkv: &Tensor, heads: usize, d: usize) -> Result<Tensor> {
    let (b, _, h, w) = qkv.dims4()?;
    let qkv = qkv.reshape((b, 3, heads, d, h * w))?;
    let part = |i: usize| qkv.narrow(1, i, 1)?.squeeze(1)?.contiguous();
    let (q, k, v) = (part(0)?, part(1)?, part(2)?);
    let q = (candle_nn::ops::softmax(&q, D::Minus2)? * (d as f64).powf(-0.5))?;
    let k = candle_nn::ops::softmax(&k, D::Minus1)?;
    let context = k.matmul(&v.transpose(2, 3)?.contiguous()?)?;
    let out = context.transpose(2, 3)?.contiguous()?.matmul(&q)?;
    out.reshape((b, heads * d, h, w))
}

#[test]
fn forward_and_gradient_match_candle() {
    for (i, &(b, heads, d, h, w)) in [(2, 4, 32, 7, 7), (3, 2, 5, 4, 6), (1, 1, 3, 1, 2)]
        .iter()
        .enumerate()
    {
        let x = (rand(&[b, 3 * heads * d, h, w], 10 + i as u64) * 3.0).unwrap();
        let xv = Var::from_tensor(&x).unwrap();
        let ours = move |t: &[Tensor]| linear_attention(&t[0], heads, d);
        let theirs = move |t: &[Tensor]| stock(&t[0], heads, d);
        let (yo, go) = grads_of(std::slice::from_ref(&xv), &ours, 20 + i as u64);
        let (yt, gt) = grads_of(std::slice::from_ref(&xv), &theirs, 20 + i as u64);
        assert_close(&format!("case {i} forward"), &yo, &yt, 1e-5);
        assert_close(
            &format!("case {i} dqkv"),
            go.get(&xv).unwrap(),
            gt.get(&xv).unwrap(),
            1e-5,
        );
    }
}

#[test]
fn gradient_matches_finite_differences() {
    let x = rand(&[2, 3 * 2 * 3, 2, 3], 5);
    let xv = Var::from_tensor(&x).unwrap();
    let f = |t: &[Tensor]| linear_attention(&t[0], 2, 3);
    let (_, g) = grads_of(std::slice::from_ref(&xv), &f, 6);
    check_finite_differences(&[x], 0, g.get(&xv).unwrap(), &f, 6, 1e-3, 1e-2);
}

#[test]
fn wrong_channel_count_is_an_error() {
    assert!(linear_attention(&rand(&[1, 10, 2, 2], 1), 2, 3).is_err());
}

/// lucidrains' `LinearAttention.forward` between `to_qkv` and `to_out`, in stock candle ops:
/// the memory's keys and values (`mem_kv (2, heads, d, m)`) before the image's.
fn stock_with_memory(qkv: &Tensor, mem: &Tensor, heads: usize, d: usize) -> Result<Tensor> {
    let (b, _, h, w) = qkv.dims4()?;
    let qkv = qkv.reshape((b, 3, heads, d, h * w))?;
    let part = |i: usize| qkv.narrow(1, i, 1)?.squeeze(1)?.contiguous();
    let (q, k, v) = (part(0)?, part(1)?, part(2)?);
    let m = mem.dim(3)?;
    let memory = |i: usize| {
        mem.get(i)?
            .unsqueeze(0)?
            .broadcast_as((b, heads, d, m))?
            .contiguous()
    };
    let k = Tensor::cat(&[&memory(0)?, &k], D::Minus1)?;
    let v = Tensor::cat(&[&memory(1)?, &v], D::Minus1)?;
    let q = (candle_nn::ops::softmax(&q, D::Minus2)? * (d as f64).powf(-0.5))?;
    let k = candle_nn::ops::softmax(&k, D::Minus1)?;
    let context = k.matmul(&v.transpose(2, 3)?.contiguous()?)?;
    let out = context.transpose(2, 3)?.contiguous()?.matmul(&q)?;
    out.reshape((b, heads * d, h, w))
}

/// With memory, the op gives lucidrains' output and the gradients of both the input and the
/// memory (summed over the batch), as the stock ops do.
#[test]
fn with_memory_forward_and_gradients_match_candle() {
    for (i, &(b, heads, d, h, w, m)) in
        [(2, 4, 32, 7, 7, 4), (3, 2, 5, 4, 6, 3), (1, 1, 3, 1, 2, 1)]
            .iter()
            .enumerate()
    {
        let x = (rand(&[b, 3 * heads * d, h, w], 30 + i as u64) * 3.0).unwrap();
        let mem = (rand(&[2, heads, d, m], 40 + i as u64) * 2.0).unwrap();
        let vars = [
            Var::from_tensor(&x).unwrap(),
            Var::from_tensor(&mem).unwrap(),
        ];
        let ours = move |t: &[Tensor]| linear_attention_with_memory(&t[0], &t[1], heads, d);
        let theirs = move |t: &[Tensor]| stock_with_memory(&t[0], &t[1], heads, d);
        let (yo, go) = grads_of(&vars, &ours, 50 + i as u64);
        let (yt, gt) = grads_of(&vars, &theirs, 50 + i as u64);
        assert_close(&format!("case {i} forward"), &yo, &yt, 1e-5);
        for (name, v) in ["dqkv", "dmem"].iter().zip(&vars) {
            assert_close(
                &format!("case {i} {name}"),
                go.get(v).unwrap(),
                gt.get(v).unwrap(),
                1e-5,
            );
        }
    }
}

#[test]
fn with_memory_gradients_match_finite_differences() {
    let x = rand(&[2, 3 * 2 * 3, 2, 3], 7);
    let mem = rand(&[2, 2, 3, 2], 8);
    let vars = [
        Var::from_tensor(&x).unwrap(),
        Var::from_tensor(&mem).unwrap(),
    ];
    let f = |t: &[Tensor]| linear_attention_with_memory(&t[0], &t[1], 2, 3);
    let (_, g) = grads_of(&vars, &f, 9);
    for (i, v) in vars.iter().enumerate() {
        check_finite_differences(
            &[x.clone(), mem.clone()],
            i,
            g.get(v).unwrap(),
            &f,
            9,
            1e-3,
            1e-2,
        );
    }
    // Memory of another shape than the heads': an error, not a wrong answer.
    assert!(linear_attention_with_memory(&x, &rand(&[2, 3, 3, 2], 1), 2, 3).is_err());
}
