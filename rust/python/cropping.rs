//! Cropping rows to `max_length` tokens.

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;

use super::collation::CollateSettings;
use super::conversion::{slice, with_int_array, RaggedArg};
use crate::cropping::{crop_rows as crop, Crop};
use crate::padding::Rows;

type CropArrays<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
);

/// Crop `rows` (as given) and their `content` (without surplus padding, same values) to
/// `max_length` tokens, windows keyed as `settings` keys the masks (see `rust/cropping.rs`):
/// `(index, starts, lens, content_starts, content_lens)`, the flat positions kept and the new
/// rows and contents over them. `template` is `(prefix, suffix)`, the special tokens a window
/// keeps around it.
#[pyfunction]
fn crop_rows<'py>(
    py: Python<'py>,
    settings: &Bound<'py, CollateSettings>,
    rows: RaggedArg<'py>,
    content: RaggedArg<'py>,
    max_length: usize,
    template: (Vec<i64>, Vec<i64>),
    key_words: PyReadonlyArray1<'py, u32>,
) -> PyResult<CropArrays<'py>> {
    let (starts, lens) = rows.ranges("input_ids")?;
    let (content_starts, content_lens) = content.ranges("content")?;
    let (prefix, suffix) = template;
    let spec = Crop {
        max_length,
        prefix: &prefix,
        suffix: &suffix,
        key_words: slice(&key_words, "key_words")?,
        key_mode: settings.get().collate.key_mode,
    };
    let out = with_int_array!(&rows.values, "input_ids", |a: T| {
        let values = a.readonly();
        let rows = Rows::new(slice(&values, "input_ids")?, &starts, &lens)?;
        py.detach(|| crop(&rows, &content_starts, &content_lens, &spec))
            .map_err(PyErr::from)
    })?;
    let arr = |v: Vec<usize>| PyArray1::from_vec(py, v.into_iter().map(|n| n as i64).collect());
    Ok((
        PyArray1::from_vec(py, out.index),
        arr(out.starts),
        arr(out.lens),
        arr(out.content_starts),
        arr(out.content_lens),
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(crop_rows, m)?)?;
    Ok(())
}
