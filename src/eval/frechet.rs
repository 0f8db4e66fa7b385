//! The Fréchet distance between two Gaussians fitted to feature vectors (the "FID" formula),
//! in f64:
//!
//! d² = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½)
//!
//! The matrix square roots are taken through symmetric eigen-decompositions (nalgebra), so the
//! inner product stays symmetric and tiny negative eigenvalues from rounding are clamped to 0.

use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// Mean and covariance of a set of feature vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Gaussian {
    /// Mean feature vector.
    pub mean: DVector<f64>,
    /// Covariance (unbiased, `n − 1` in the denominator, as numpy's `cov` and pytorch-fid).
    pub cov: DMatrix<f64>,
    /// How many vectors it was fitted to.
    pub n: usize,
}

/// Fitting needs at least two vectors of one length.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrechetError {
    /// Fewer than two vectors.
    #[error("a Fréchet distance needs at least 2 feature vectors, got {0}")]
    TooFew(usize),
    /// Vectors of different lengths, or Gaussians of different dimension.
    #[error("feature vectors of different lengths ({0} and {1})")]
    Mismatch(usize, usize),
}

impl Gaussian {
    /// Fits the mean and covariance of `features` (one vector per row, all the same length).
    pub fn fit(features: &[Vec<f32>]) -> Result<Self, FrechetError> {
        let n = features.len();
        if n < 2 {
            return Err(FrechetError::TooFew(n));
        }
        let d = features[0].len();
        if let Some(bad) = features.iter().find(|f| f.len() != d) {
            return Err(FrechetError::Mismatch(d, bad.len()));
        }
        let mut mean = DVector::<f64>::zeros(d);
        for f in features {
            for (m, &x) in mean.iter_mut().zip(f) {
                *m += x as f64;
            }
        }
        mean /= n as f64;
        // Centred data as a d × n matrix; Σ = X Xᵀ / (n − 1).
        let centred = DMatrix::<f64>::from_fn(d, n, |i, j| features[j][i] as f64 - mean[i]);
        let cov = (&centred * centred.transpose()) / (n as f64 - 1.0);
        Ok(Self { mean, cov, n })
    }

    /// Dimension of the feature vectors.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }
}

/// The square root of a symmetric positive semi-definite matrix (eigenvalues below 0, which
/// only rounding produces, count as 0).
pub fn sqrt_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let sym = (m + m.transpose()) * 0.5;
    let eig = SymmetricEigen::new(sym);
    let roots = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
    &eig.eigenvectors * DMatrix::from_diagonal(&roots) * eig.eigenvectors.transpose()
}

/// The squared Fréchet distance between `a` and `b` (≥ 0; 0 for identical Gaussians).
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> Result<f64, FrechetError> {
    if a.dim() != b.dim() {
        return Err(FrechetError::Mismatch(a.dim(), b.dim()));
    }
    let diff = &a.mean - &b.mean;
    let root_a = sqrt_psd(&a.cov);
    let inner = &root_a * &b.cov * &root_a;
    // tr((Σ₁^½ Σ₂ Σ₁^½)^½) is the sum of the square roots of the inner matrix's eigenvalues.
    let inner = (&inner + inner.transpose()) * 0.5;
    let tr_cross: f64 = SymmetricEigen::new(inner)
        .eigenvalues
        .iter()
        .map(|l| l.max(0.0).sqrt())
        .sum();
    let d = diff.norm_squared() + a.cov.trace() + b.cov.trace() - 2.0 * tr_cross;
    Ok(d.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    fn gaussian(mean: Vec<f64>, cov: DMatrix<f64>) -> Gaussian {
        Gaussian {
            mean: DVector::from_vec(mean),
            cov,
            n: 0,
        }
    }

    #[test]
    fn closed_form_for_diagonal_gaussians() {
        // Commuting (diagonal) covariances: d² = ‖μ₁ − μ₂‖² + Σ (√a_i − √b_i)².
        let a = gaussian(
            vec![0.0, 1.0, -2.0],
            DMatrix::from_diagonal(&DVector::from_vec(vec![1.0, 4.0, 9.0])),
        );
        let b = gaussian(
            vec![1.0, 1.0, 0.0],
            DMatrix::from_diagonal(&DVector::from_vec(vec![4.0, 1.0, 0.25])),
        );
        let expected = (1.0 + 0.0 + 4.0)
            + (1.0f64 - 2.0).powi(2)
            + (2.0f64 - 1.0).powi(2)
            + (3.0f64 - 0.5).powi(2);
        let d = frechet_distance(&a, &b).unwrap();
        assert!((d - expected).abs() < 1e-10, "{d} vs {expected}");
        // Symmetric in its arguments.
        assert!((frechet_distance(&b, &a).unwrap() - expected).abs() < 1e-10);
    }

    #[test]
    fn closed_form_for_non_commuting_covariances() {
        // Σ₁ = I: the cross term is tr(Σ₂^½), so d² = tr(Σ₂) + d − 2 tr(Σ₂^½). For
        // Σ₂ = [[2, 1], [1, 2]] (eigenvalues 3 and 1): d² = 4 + 2 − 2 (√3 + 1).
        let a = gaussian(vec![0.0, 0.0], DMatrix::identity(2, 2));
        let b = gaussian(
            vec![0.0, 0.0],
            DMatrix::from_row_slice(2, 2, &[2.0, 1.0, 1.0, 2.0]),
        );
        let expected = 6.0 - 2.0 * (3f64.sqrt() + 1.0);
        let d = frechet_distance(&a, &b).unwrap();
        assert!((d - expected).abs() < 1e-10, "{d} vs {expected}");
        // A rotated pair: Σ₁ = diag(4, 1), Σ₂ = R Σ₁ Rᵀ (90°) = diag(1, 4): d² = 2 (2 − 1)².
        let c = gaussian(
            vec![0.0, 0.0],
            DMatrix::from_row_slice(2, 2, &[4.0, 0.0, 0.0, 1.0]),
        );
        let e = gaussian(
            vec![0.0, 0.0],
            DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, 4.0]),
        );
        assert!((frechet_distance(&c, &e).unwrap() - 2.0).abs() < 1e-10);
    }

    #[test]
    fn sqrt_psd_squares_back() {
        let m = DMatrix::from_row_slice(3, 3, &[4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0]);
        let r = sqrt_psd(&m);
        assert!((&r * &r - &m).abs().max() < 1e-10);
    }

    fn random_features(n: usize, d: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let z: Vec<f32> = (0..d)
                    .map(|_| rng.sample::<f32, _>(StandardNormal))
                    .collect();
                // Correlated features: x_i = z_i + 0.5 z_{i+1} + 0.1 i.
                (0..d)
                    .map(|i| z[i] + 0.5 * z[(i + 1) % d] + 0.1 * i as f32)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn identical_sets_are_at_distance_zero() {
        let f = random_features(300, 16, 1);
        let g = Gaussian::fit(&f).unwrap();
        let d = frechet_distance(&g, &g).unwrap();
        assert!(d < 1e-8, "{d}");
    }

    #[test]
    fn invariant_to_sample_order() {
        let f = random_features(200, 8, 2);
        let other = random_features(200, 8, 3);
        let mut shuffled = f.clone();
        shuffled.reverse();
        shuffled.swap(3, 77);
        let (g, h) = (
            Gaussian::fit(&f).unwrap(),
            Gaussian::fit(&shuffled).unwrap(),
        );
        let o = Gaussian::fit(&other).unwrap();
        let (d1, d2) = (
            frechet_distance(&g, &o).unwrap(),
            frechet_distance(&h, &o).unwrap(),
        );
        assert!((d1 - d2).abs() < 1e-9 * d1.max(1.0), "{d1} vs {d2}");
    }

    #[test]
    fn fitted_moments_and_a_shifted_set() {
        let f = vec![vec![1.0, 2.0], vec![3.0, 6.0], vec![5.0, 4.0]];
        let g = Gaussian::fit(&f).unwrap();
        assert_eq!(g.mean.as_slice(), &[3.0, 4.0]);
        // numpy.cov of the columns: var x = 4, var y = 4, cov = 2.
        assert_eq!(g.cov.as_slice(), &[4.0, 2.0, 2.0, 4.0]);
        // Shifting every vector by s moves only the mean term: d² = ‖s‖².
        let shifted: Vec<Vec<f32>> = f.iter().map(|v| vec![v[0] + 3.0, v[1] - 4.0]).collect();
        let d = frechet_distance(&g, &Gaussian::fit(&shifted).unwrap()).unwrap();
        assert!((d - 25.0).abs() < 1e-9, "{d}");
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(
            Gaussian::fit(&[vec![1.0]]).unwrap_err(),
            FrechetError::TooFew(1)
        );
        assert_eq!(
            Gaussian::fit(&[vec![1.0, 2.0], vec![1.0]]).unwrap_err(),
            FrechetError::Mismatch(2, 1)
        );
        let a = Gaussian::fit(&[vec![1.0], vec![2.0]]).unwrap();
        let b = Gaussian::fit(&[vec![1.0, 0.0], vec![2.0, 1.0]]).unwrap();
        assert!(frechet_distance(&a, &b).is_err());
    }
}
