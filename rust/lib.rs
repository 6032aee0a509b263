//! mlmkit's kernels: pure functions over slices, one file per concept. The Python binding lives in
//! `python/` and is compiled only with the `python` feature (maturin enables it).

pub mod collate;
pub mod cropping;
pub mod error;
pub mod grouping;
pub mod masking;
pub mod padding;
pub mod pairs;
pub mod rng;
pub mod words;

#[cfg(feature = "python")]
mod python;
