//! The forward process on one 8-bit image, in plain `f32`, for the Schedules screen:
//! `x_t = √ᾱ_t · x₀ + √(1−ᾱ_t) · ε` with pixels scaled to `[−1, 1]`.

use rand::Rng;
use rand_distr::StandardNormal;

use crate::imaging::Image8;
use crate::rng::LabRng;
use crate::schedule::ScheduleTables;

/// Standard normal noise for every byte of `img`, reproducible from `seed`.
pub fn noise_like(img: &Image8, seed: u64) -> Vec<f32> {
    let mut rng = LabRng::derived(seed, 7);
    (0..img.pixels.len())
        .map(|_| rng.inner().sample::<f32, _>(StandardNormal))
        .collect()
}

/// `img` noised to timestep `t` of `tables` with the given noise (one value per byte).
pub fn q_sample(img: &Image8, tables: &ScheduleTables, t: usize, eps: &[f32]) -> Image8 {
    let t = t.min(tables.timesteps() - 1);
    let a = tables.sqrt_alphas_cumprod[t] as f32;
    let b = tables.sqrt_one_minus_alphas_cumprod[t] as f32;
    let pixels = img
        .pixels
        .iter()
        .zip(eps)
        .map(|(&p, &e)| {
            let x0 = p as f32 / 127.5 - 1.0;
            let xt = (a * x0 + b * e).clamp(-1.0, 1.0);
            ((xt + 1.0) * 127.5).round() as u8
        })
        .collect();
    Image8 {
        pixels,
        ..img.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::BetaSchedule;

    #[test]
    fn noising_destroys_signal_by_the_end_of_cosine() {
        let img = Image8 {
            width: 8,
            height: 8,
            channels: 1,
            pixels: (0..64).map(|i| if i % 2 == 0 { 255 } else { 0 }).collect(),
        };
        let eps = noise_like(&img, 1);
        assert_eq!(eps, noise_like(&img, 1));
        let tables = ScheduleTables::new(BetaSchedule::Cosine, 200).unwrap();
        assert_eq!(q_sample(&img, &tables, 0, &eps).pixels.len(), 64);
        // At t = 0 the image is almost unchanged.
        let x0 = q_sample(&img, &tables, 0, &eps);
        let diff: i32 = x0
            .pixels
            .iter()
            .zip(&img.pixels)
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .max()
            .unwrap();
        assert!(diff < 20, "{diff}");
        // At T−1 the image is the noise alone.
        let xt = q_sample(&img, &tables, 199, &eps);
        let pure: Vec<u8> = eps
            .iter()
            .map(|e| ((e.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8)
            .collect();
        assert_eq!(xt.pixels, pure);
    }
}
