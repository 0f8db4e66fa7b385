//! The vendored candle-core's op census (`candle_core::census`), which `examples/op_census`
//! uses to count the ops, and so the GPU kernel launches, of each workload. Its own test
//! binary: the census counts the ops of every thread of the process, so it holds one test.

use std::collections::BTreeMap;

use candle_core::{census, Device, Tensor};

#[test]
fn the_census_counts_each_op_once_under_its_name_while_open() {
    let dev = Device::Cpu;
    census::open();
    let a = Tensor::new(&[1f32, 2.0, 3.0, 4.0], &dev).unwrap();
    let b = a.exp().unwrap();
    let c = (&a + &b).unwrap();
    // A view runs nothing; a transposed copy does.
    let m = c.reshape((2, 2)).unwrap();
    let mt = m.t().unwrap().contiguous().unwrap();
    let s = mt.sum_all().unwrap();
    let counts = census::close();
    let expected: BTreeMap<&str, usize> = [
        ("from_host", 1),
        ("exp", 1),
        ("add", 1),
        ("copy", 1),
        ("reduce", 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, expected);
    assert!(
        (s.to_scalar::<f32>().unwrap()
            - (10.0 + 1f32.exp() + 2f32.exp() + 3f32.exp() + 4f32.exp()))
        .abs()
            < 1e-3
    );

    // A composite run as one op counts once, under its own name, nested or not.
    census::open();
    let e = census::as_one("stand-in", || {
        let inner = census::as_one("inner", || a.exp().unwrap());
        (&inner + &a).unwrap().sqr().unwrap()
    });
    let _ = (&e * &a).unwrap();
    assert_eq!(
        census::close(),
        [("stand-in", 1), ("mul", 1)]
            .into_iter()
            .collect::<BTreeMap<_, _>>()
    );

    // Closed, it counts nothing; opened again, it starts empty.
    let _ = (&a * &b).unwrap();
    census::open();
    assert!(census::close().is_empty());
    census::open();
    let _ = (&a * &b).unwrap().sqr().unwrap();
    assert_eq!(
        census::close(),
        [("mul", 1), ("sqr", 1)]
            .into_iter()
            .collect::<BTreeMap<_, _>>()
    );
}
