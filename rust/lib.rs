//! mlmkit's kernels: pure functions over slices. The Python binding lives in `python.rs` and is
//! compiled only with the `python` feature (maturin enables it).

pub mod collate;
pub mod cropping;
pub mod error;
pub mod masking;
pub mod padding;
pub mod rng;
pub mod words;

// Corpus preprocessing (issue 4).
pub mod grouping;
pub mod pairs;

#[cfg(feature = "python")]
mod python;
