//! The counter-based random numbers, exposed so tests can check the documented algorithm.

use numpy::PyArray1;
use pyo3::prelude::*;

use crate::rng;

/// MurmurHash3_x86_32 of 32-bit words.
#[pyfunction]
fn hash_words(seed: u32, words: Vec<u32>) -> u32 {
    rng::hash_words(seed, &words)
}

/// The first `n` values of one lane of a row's stream.
#[pyfunction]
fn lane_values<'py>(py: Python<'py>, row_key: u32, lane: u32, n: u32) -> Bound<'py, PyArray1<u32>> {
    let lane = rng::Lane::new(row_key, lane);
    PyArray1::from_vec(py, (0..n).map(|i| lane.at(i)).collect())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(hash_words, m)?)?;
    m.add_function(wrap_pyfunction!(lane_values, m)?)?;
    m.add("LANE_SELECT", rng::LANE_SELECT)?;
    m.add("LANE_REPLACE", rng::LANE_REPLACE)?;
    m.add("LANE_RANDOM_TOKEN", rng::LANE_RANDOM_TOKEN)?;
    m.add("LANE_CROP", rng::LANE_CROP)?;
    Ok(())
}
