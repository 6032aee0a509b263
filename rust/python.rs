//! The thin binding: check buffers, release the GIL, call the kernels.

use numpy::{
    PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadwriteArray1, PyReadwriteArray2,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::collate::{collate_with, Collate, KeyMode, Outputs, Selection};
use crate::error::KernelError;
use crate::masking::{Count, MaskSpec, Vocab};
use crate::padding::{pad_aligned, trim_padding as trim_rows, Rows, TokenId};
use crate::rng;
use crate::words::{self, Boundaries, Lengths, Replace, SpanSpec, Units, WordMasking};

impl From<KernelError> for PyErr {
    fn from(e: KernelError) -> PyErr {
        PyValueError::new_err(e.to_string())
    }
}

fn contiguous<'a, T: numpy::Element>(a: &'a PyReadonlyArray1<T>, name: &str) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{name} must be a C-contiguous array")))
}

fn contiguous_mut<'a>(
    a: &'a mut PyReadwriteArray2<i64>,
    name: &str,
) -> PyResult<(&'a mut [i64], usize)> {
    let width = a.shape()[1];
    let s = a
        .as_slice_mut()
        .map_err(|_| PyValueError::new_err(format!("{name} must be a C-contiguous array")))?;
    Ok((s, width))
}

fn to_usize(v: &[i64], name: &str) -> PyResult<Vec<usize>> {
    v.iter()
        .map(|&x| {
            usize::try_from(x)
                .map_err(|_| PyValueError::new_err(format!("{name} has a negative entry {x}")))
        })
        .collect()
}

/// Run `f` on the values array whatever its integer dtype.
macro_rules! with_ids {
    ($values:expr, $name:literal, |$slice:ident| $body:expr) => {{
        let v = $values;
        if let Ok(a) = v.cast::<PyArray1<i64>>() {
            let r = a.readonly();
            let $slice = contiguous(&r, $name)?;
            $body
        } else if let Ok(a) = v.cast::<PyArray1<i32>>() {
            let r = a.readonly();
            let $slice = contiguous(&r, $name)?;
            $body
        } else if let Ok(a) = v.cast::<PyArray1<u32>>() {
            let r = a.readonly();
            let $slice = contiguous(&r, $name)?;
            $body
        } else if let Ok(a) = v.cast::<PyArray1<u16>>() {
            let r = a.readonly();
            let $slice = contiguous(&r, $name)?;
            $body
        } else if let Ok(a) = v.cast::<PyArray1<i16>>() {
            let r = a.readonly();
            let $slice = contiguous(&r, $name)?;
            $body
        } else if let Ok(a) = v.cast::<PyArray1<u8>>() {
            let r = a.readonly();
            let $slice = contiguous(&r, $name)?;
            $body
        } else {
            Err(PyTypeError::new_err(concat!(
                $name,
                " must be a 1-D integer numpy array (int64, int32, uint32, uint16, int16 or uint8)"
            )))
        }
    }};
}

type IdsAndLens<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>);

/// Append a list of exact Python ints that fit in i64 (and `None`s, as `none`, when it is given);
/// false (with `out` possibly extended) when an item is anything else, so the caller can take the
/// slow path that names the culprit.
fn extend_exact_ints(list: &Bound<'_, PyList>, none: Option<i64>, out: &mut Vec<i64>) -> bool {
    let n = list.len();
    out.reserve(n);
    let ptr = list.as_ptr();
    for j in 0..n {
        // SAFETY: we hold the GIL, `list` is a live list of length `n` that nothing mutates while
        // we read it (no Python code runs here), and items are borrowed only for this iteration.
        unsafe {
            let item = pyo3::ffi::PyList_GET_ITEM(ptr, j as pyo3::ffi::Py_ssize_t);
            if let Some(v) = none {
                if item == pyo3::ffi::Py_None() {
                    out.push(v);
                    continue;
                }
            }
            if pyo3::ffi::PyLong_CheckExact(item) == 0 {
                return false;
            }
            let v = pyo3::ffi::PyLong_AsLongLong(item);
            if v == -1 && !pyo3::ffi::PyErr_Occurred().is_null() {
                pyo3::ffi::PyErr_Clear();
                return false;
            }
            out.push(v);
        }
    }
    true
}

/// Flatten a list of rows (lists or tuples of Python ints) into `(values, lengths)`; `None`
/// items become `none` when it is given.
#[pyfunction]
#[pyo3(signature = (rows, name, none=None))]
fn flatten_rows<'py>(
    py: Python<'py>,
    rows: &Bound<'py, PyList>,
    name: &str,
    none: Option<i64>,
) -> PyResult<IdsAndLens<'py>> {
    let mut values: Vec<i64> = Vec::new();
    let mut lens: Vec<i64> = Vec::with_capacity(rows.len());
    let bad = |i: usize, j: usize, item: &Bound<'py, PyAny>| {
        let ty = item
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into());
        PyTypeError::new_err(format!(
            "{name} must hold integers; row {i}, position {j} is a {ty}"
        ))
    };
    let value = |i: usize, j: usize, item: &Bound<'py, PyAny>| match none {
        Some(v) if item.is_none() => Ok(v),
        _ => item.extract::<i64>().map_err(|_| bad(i, j, item)),
    };
    for (i, row) in rows.iter().enumerate() {
        let start = values.len();
        if let Ok(list) = row.cast::<PyList>() {
            if !extend_exact_ints(list, none, &mut values) {
                values.truncate(start);
                for (j, item) in list.iter().enumerate() {
                    values.push(value(i, j, &item)?);
                }
            }
        } else if let Ok(tuple) = row.cast::<PyTuple>() {
            for (j, item) in tuple.iter().enumerate() {
                values.push(value(i, j, &item)?);
            }
        } else {
            return Err(PyTypeError::new_err(format!(
                "{name} row {i} must be a list or tuple of ints"
            )));
        }
        lens.push((values.len() - start) as i64);
    }
    Ok((PyArray1::from_vec(py, values), PyArray1::from_vec(py, lens)))
}

/// Pad and mask a batch into caller-allocated `(B, L)` int64 outputs.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (values, starts, lens, special_mask, is_special, random_ids, key_words, keyed, mlm,
    probability, mask_replace_prob, random_replace_prob, exact, max_predictions, mask_id, pad_id, left,
    out_ids, out_labels, out_attention,
    words=None))]
fn collate_batch(
    py: Python<'_>,
    values: &Bound<'_, PyAny>,
    starts: PyReadonlyArray1<i64>,
    lens: PyReadonlyArray1<i64>,
    special_mask: Option<PyReadonlyArray1<u8>>,
    is_special: PyReadonlyArray1<u8>,
    random_ids: PyReadonlyArray1<i64>,
    key_words: PyReadonlyArray1<u32>,
    keyed: bool,
    mlm: bool,
    probability: f64,
    mask_replace_prob: f64,
    random_replace_prob: f64,
    exact: bool,
    max_predictions: Option<usize>,
    mask_id: i64,
    pad_id: i64,
    left: bool,
    mut out_ids: PyReadwriteArray2<i64>,
    mut out_labels: PyReadwriteArray2<i64>,
    mut out_attention: PyReadwriteArray2<i64>,
    words: Option<WordArgs<'_>>,
) -> PyResult<()> {
    let starts = to_usize(contiguous(&starts, "starts")?, "starts")?;
    let lens = to_usize(contiguous(&lens, "lens")?, "lens")?;
    let special = match &special_mask {
        Some(s) => Some(contiguous(s, "special_tokens_mask")?),
        None => None,
    };
    let is_special = contiguous(&is_special, "is_special")?;
    let random_ids = contiguous(&random_ids, "random_ids")?;
    let key_words = contiguous(&key_words, "key_words")?;
    let count = if exact {
        Count::Exact
    } else {
        Count::Bernoulli
    };
    let spec = MaskSpec::new(
        probability,
        mask_replace_prob,
        random_replace_prob,
        count,
        max_predictions.unwrap_or(usize::MAX),
        mask_id,
    )?;
    let cfg = Collate {
        vocab: Vocab {
            is_special,
            random_ids,
        },
        spec,
        mlm,
        pad_id,
        left,
        key_words,
        key_mode: if keyed {
            KeyMode::Content
        } else {
            KeyMode::RowIndex
        },
    };
    for (name, shape) in [
        ("out_labels", out_labels.shape()),
        ("out_attention", out_attention.shape()),
    ] {
        if shape != out_ids.shape() {
            return Err(PyValueError::new_err(format!(
                "{name} must have the shape of out_ids"
            )));
        }
    }
    if out_ids.shape()[0] != starts.len() {
        return Err(PyValueError::new_err(
            "out_ids must have one row per input row",
        ));
    }
    let (ids, width) = contiguous_mut(&mut out_ids, "out_ids")?;
    let (labels, _) = contiguous_mut(&mut out_labels, "out_labels")?;
    let (attention, _) = contiguous_mut(&mut out_attention, "out_attention")?;
    let selection = match &words {
        None => Selection::Tokens,
        Some(w) => Selection::Words(w.masking(probability)?),
    };
    with_ids!(values, "input_ids", |v| {
        let rows = Rows::new(v, &starts, &lens)?;
        run_detached(
            py,
            &rows,
            special,
            &cfg,
            &selection,
            Outputs {
                ids,
                labels,
                attention,
                width,
            },
        )
    })
}

fn run_detached<T: TokenId>(
    py: Python<'_>,
    rows: &Rows<T>,
    special: Option<&[u8]>,
    cfg: &Collate,
    selection: &Selection,
    out: Outputs,
) -> PyResult<()> {
    py.detach(|| collate_with(rows, special, cfg, selection, out))
        .map_err(PyErr::from)
}

/// Copy an aligned per-token column into a padded `(B, L)` int64 output.
#[pyfunction]
fn pad_column(
    py: Python<'_>,
    values: &Bound<'_, PyAny>,
    starts: PyReadonlyArray1<i64>,
    lens: PyReadonlyArray1<i64>,
    fill: i64,
    left: bool,
    mut out: PyReadwriteArray2<i64>,
) -> PyResult<()> {
    let starts = to_usize(contiguous(&starts, "starts")?, "starts")?;
    let lens = to_usize(contiguous(&lens, "lens")?, "lens")?;
    if out.shape()[0] != starts.len() {
        return Err(PyValueError::new_err("out must have one row per input row"));
    }
    let (out, width) = contiguous_mut(&mut out, "out")?;
    with_ids!(values, "column", |v| {
        let rows = Rows::new(v, &starts, &lens)?;
        if rows.lens.iter().any(|&l| l > width) {
            return Err(PyValueError::new_err(
                "a column row is longer than the output width",
            ));
        }
        py.detach(|| {
            for (i, dst) in out
                .chunks_exact_mut(width.max(1))
                .enumerate()
                .take(rows.len())
            {
                pad_aligned(rows.row(i), fill, left, dst);
            }
        });
        Ok(())
    })
}

/// Shrink `starts`/`lens` in place to leave out pad-id runs at both ends of each row, after
/// checking no row is empty. Returns the longest row before trimming (the batch width).
#[pyfunction]
fn trim_padding(
    values: &Bound<'_, PyAny>,
    mut starts: PyReadwriteArray1<i64>,
    mut lens: PyReadwriteArray1<i64>,
    pad_id: i64,
    name: &str,
) -> PyResult<usize> {
    let starts = starts
        .as_slice_mut()
        .map_err(|_| PyValueError::new_err("starts must be a C-contiguous array"))?;
    let lens = lens
        .as_slice_mut()
        .map_err(|_| PyValueError::new_err("lens must be a C-contiguous array"))?;
    let mut s = to_usize(starts, "starts")?;
    let mut n = to_usize(lens, "lens")?;
    if let Some(row) = n.iter().position(|&l| l == 0) {
        return Err(PyValueError::new_err(format!(
            "row {row} of {name} is empty"
        )));
    }
    let width = n.iter().copied().max().unwrap_or(0);
    with_ids!(values, "input_ids", |v| {
        Rows::new(v, &s, &n)?;
        trim_rows(v, &mut s, &mut n, pad_id);
        Ok::<(), PyErr>(())
    })?;
    for (dst, src) in starts.iter_mut().zip(&s) {
        *dst = *src as i64;
    }
    for (dst, src) in lens.iter_mut().zip(&n) {
        *dst = *src as i64;
    }
    Ok(width)
}

/// MurmurHash3_x86_32 of 32-bit words (exposed so tests can check the documented algorithm).
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

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(flatten_rows, m)?)?;
    m.add_function(wrap_pyfunction!(collate_batch, m)?)?;
    m.add_function(wrap_pyfunction!(pad_column, m)?)?;
    m.add_function(wrap_pyfunction!(trim_padding, m)?)?;
    m.add_function(wrap_pyfunction!(hash_words, m)?)?;
    m.add_function(wrap_pyfunction!(lane_values, m)?)?;
    m.add("LANE_SELECT", rng::LANE_SELECT)?;
    m.add("LANE_REPLACE", rng::LANE_REPLACE)?;
    m.add("LANE_RANDOM_TOKEN", rng::LANE_RANDOM_TOKEN)?;
    // Whole-word and span masking.
    m.add_function(wrap_pyfunction!(span_tables, m)?)?;
    m.add("LANE_SPAN_LENGTH", words::LANE_SPAN_LENGTH)?;
    m.add("LANE_SPAN_PHASE", words::LANE_SPAN_PHASE)?;
    Ok(())
}

// ---- Whole-word and span masking --------------------------------------------------------------

/// Word-masking options, read from a dict (see `mlmkit.word_masking.word_arguments`).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct WordArgs<'py> {
    units: String,
    replace: String,
    starts_word: Option<PyReadonlyArray1<'py, u8>>,
    ends_word: Option<PyReadonlyArray1<'py, u8>>,
    continuation: Option<PyReadonlyArray1<'py, u8>>,
    word_ids: Option<PyReadonlyArray1<'py, i64>>,
    span_geometric_p: f64,
    max_span_length: usize,
    max_ngram: usize,
}

impl WordArgs<'_> {
    fn masking(&self, probability: f64) -> PyResult<WordMasking<'_>> {
        let boundaries = match (&self.word_ids, &self.starts_word, &self.ends_word) {
            (Some(w), _, _) => {
                if self.continuation.is_some() {
                    return Err(PyValueError::new_err(
                        "give word boundaries as word_ids or as reference positions, not both",
                    ));
                }
                Boundaries::WordIds(contiguous(w, "word_ids")?)
            }
            (None, Some(s), Some(e)) => Boundaries::Tables {
                starts_word: contiguous(s, "starts_word")?,
                ends_word: contiguous(e, "ends_word")?,
                continuation: match &self.continuation {
                    Some(c) => Some(contiguous(c, "continuation")?),
                    None => None,
                },
            },
            _ => {
                return Err(PyValueError::new_err(
                    "word masking needs word_ids or both starts_word and ends_word",
                ))
            }
        };
        let units = match self.units.as_str() {
            "word" => Units::Words,
            "span" => Units::Spans(SpanSpec::new(
                Lengths::geometric(self.span_geometric_p, self.max_span_length)?,
                probability,
            )?),
            "ngram" => Units::Spans(SpanSpec::new(
                Lengths::harmonic(self.max_ngram)?,
                probability,
            )?),
            other => {
                return Err(PyValueError::new_err(format!(
                    "units must be 'word', 'span' or 'ngram', got {other:?}"
                )))
            }
        };
        let replace = match self.replace.as_str() {
            "word" => Replace::PerUnit,
            "token" => Replace::PerToken,
            other => {
                return Err(PyValueError::new_err(format!(
                    "replace_per must be 'word' or 'token', got {other:?}"
                )))
            }
        };
        Ok(WordMasking {
            boundaries,
            units,
            replace,
        })
    }
}

type SpanTables<'py> = (u64, Bound<'py, PyArray1<u64>>, Bound<'py, PyArray1<u64>>);

/// Span masking's integer thresholds `(Q, C, F)` (see `rust/words.rs`): `units` is "span"
/// (SpanBERT lengths from `span_geometric_p` and `max_length`) or "ngram" (1/n up to `max_length`).
#[pyfunction]
fn span_tables<'py>(
    py: Python<'py>,
    units: &str,
    probability: f64,
    span_geometric_p: f64,
    max_length: usize,
) -> PyResult<SpanTables<'py>> {
    let lengths = match units {
        "span" => Lengths::geometric(span_geometric_p, max_length)?,
        "ngram" => Lengths::harmonic(max_length)?,
        other => {
            return Err(PyValueError::new_err(format!(
                "units must be 'span' or 'ngram', got {other:?}"
            )))
        }
    };
    let spec = SpanSpec::new(lengths, probability)?;
    Ok((
        spec.start,
        PyArray1::from_vec(py, spec.lengths.cdf),
        PyArray1::from_vec(py, spec.phase),
    ))
}
