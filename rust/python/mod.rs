//! The Python binding (`mlmkit._core`), one file per concept: it reads Python objects into the
//! kernels' slices and settings, releases the GIL and calls the kernels.

mod collation;
mod conversion;
mod corpus;
mod cropping;
mod rng;
mod words;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    conversion::register(m)?;
    rng::register(m)?;
    collation::register(m)?;
    words::register(m)?;
    cropping::register(m)?;
    corpus::register(m)?;
    Ok(())
}
