//! Sample quality, measured: a small Fashion-MNIST classifier trained and shipped by ddpm-lab,
//! the Fréchet distance between the classifier's features of generated and real images, the
//! share of samples it recognises with confidence, and the class histogram.

pub mod classifier;
pub mod frechet;
pub mod report;
pub mod score;

pub use classifier::Classifier;
pub use frechet::{frechet_distance, Gaussian};
pub use report::{check_classifier, check_n, classifier_for, evaluate, scorer_for, EvalReport};
pub use score::{Quality, Scorer, MIN_FRECHET_N, RECOGNISED_CONFIDENCE};
