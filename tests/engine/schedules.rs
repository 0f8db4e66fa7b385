//! Schedule tables against the blog's closed forms, at T = 200 and T = 1000, every table, 1e-6.

use ddpm_lab::schedule::{BetaSchedule, ScheduleTables};

const TOL: f64 = 1e-6;

fn close(name: &str, ours: &[f64], expect: &[f64]) {
    assert_eq!(ours.len(), expect.len(), "{name}: length");
    for (i, (a, b)) in ours.iter().zip(expect).enumerate() {
        let tol = TOL * b.abs().max(1.0);
        assert!((a - b).abs() <= tol, "{name}[{i}]: {a} vs {b}");
    }
}

fn closed_form_betas(s: BetaSchedule, t: usize) -> Vec<f64> {
    let tf = (t - 1) as f64;
    match s {
        BetaSchedule::Linear => (0..t)
            .map(|i| 1e-4 + (0.02 - 1e-4) * i as f64 / tf)
            .collect(),
        BetaSchedule::Quadratic => (0..t)
            .map(|i| {
                let r = 1e-4f64.sqrt() + (0.02f64.sqrt() - 1e-4f64.sqrt()) * i as f64 / tf;
                r * r
            })
            .collect(),
        BetaSchedule::Sigmoid => (0..t)
            .map(|i| {
                let x = -6.0 + 12.0 * i as f64 / tf;
                1.0 / (1.0 + (-x).exp()) * (0.02 - 1e-4) + 1e-4
            })
            .collect(),
        BetaSchedule::Cosine => {
            let f = |x: f64| {
                let v = ((x / t as f64 + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos();
                v * v
            };
            (0..t)
                .map(|i| (1.0 - f((i + 1) as f64) / f(i as f64)).clamp(1e-4, 0.9999))
                .collect()
        }
    }
}

#[test]
fn every_table_matches_closed_forms() {
    for t in [200, 1000] {
        for s in BetaSchedule::ALL {
            let tab = ScheduleTables::new(s, t).unwrap();
            let betas = closed_form_betas(s, t);
            close(&format!("{s} T={t} betas"), &tab.betas, &betas);
            let alphas: Vec<f64> = betas.iter().map(|b| 1.0 - b).collect();
            close("alphas", &tab.alphas, &alphas);
            let ac: Vec<f64> = (0..t).map(|i| alphas[..=i].iter().product()).collect();
            close("alphas_cumprod", &tab.alphas_cumprod, &ac);
            let prev: Vec<f64> = (0..t)
                .map(|i| if i == 0 { 1.0 } else { ac[i - 1] })
                .collect();
            close("alphas_cumprod_prev", &tab.alphas_cumprod_prev, &prev);
            close(
                "sqrt_recip_alphas",
                &tab.sqrt_recip_alphas,
                &alphas.iter().map(|a| 1.0 / a.sqrt()).collect::<Vec<_>>(),
            );
            close(
                "sqrt_alphas_cumprod",
                &tab.sqrt_alphas_cumprod,
                &ac.iter().map(|a| a.sqrt()).collect::<Vec<_>>(),
            );
            close(
                "sqrt_one_minus_alphas_cumprod",
                &tab.sqrt_one_minus_alphas_cumprod,
                &ac.iter().map(|a| (1.0 - a).sqrt()).collect::<Vec<_>>(),
            );
            let pv: Vec<f64> = (0..t)
                .map(|i| betas[i] * (1.0 - prev[i]) / (1.0 - ac[i]))
                .collect();
            close("posterior_variance", &tab.posterior_variance, &pv);
            let snr: Vec<f64> = ac.iter().map(|a| a / (1.0 - a)).collect();
            close("snr", &tab.snr, &snr);
            // The first posterior variance is exactly zero (x_0 is deterministic given x_1).
            assert_eq!(tab.posterior_variance[0], 0.0);
        }
    }
}

#[test]
fn end_points_match_the_blog() {
    let lin = ScheduleTables::new(BetaSchedule::Linear, 200).unwrap();
    assert_eq!(lin.betas[0], 1e-4);
    assert_eq!(lin.betas[199], 0.02);
    assert!(
        (lin.alphas_cumprod[199] - 0.132).abs() < 1e-3,
        "{}",
        lin.alphas_cumprod[199]
    );
    assert!((lin.final_signal() - 0.36).abs() < 5e-3);
    let quad = ScheduleTables::new(BetaSchedule::Quadratic, 200).unwrap();
    assert!(
        (quad.alphas_cumprod[199] - 0.236).abs() < 1e-3,
        "{}",
        quad.alphas_cumprod[199]
    );
    let cos = ScheduleTables::new(BetaSchedule::Cosine, 200).unwrap();
    assert!(cos.alphas_cumprod[199] < 1e-8 && cos.alphas_cumprod[199] > 1e-9);
    assert_eq!(cos.betas[199], 0.9999, "cosine betas are clipped at 0.9999");
    let sig = ScheduleTables::new(BetaSchedule::Sigmoid, 200).unwrap();
    assert!(sig.betas.iter().all(|&b| (1e-4..=0.02).contains(&b)));
    // Monotone: more noise at every step.
    for s in BetaSchedule::ALL {
        let t = ScheduleTables::new(s, 200).unwrap();
        assert!(
            t.alphas_cumprod.windows(2).all(|w| w[1] < w[0]),
            "{s} ᾱ decreasing"
        );
    }
}

#[test]
fn smallest_schedule_works() {
    for s in BetaSchedule::ALL {
        let t = ScheduleTables::new(s, 2).unwrap();
        assert_eq!(t.timesteps(), 2);
        assert!(t.betas.iter().all(|b| b.is_finite() && *b > 0.0));
    }
}
