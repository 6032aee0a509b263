//! The thin binding: check buffers, release the GIL, call the kernels.

use numpy::{
    PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadwriteArray1, PyReadwriteArray2,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::collate::{collate_with, Aligned, Collate, KeyMode, Outputs, Selection};
use crate::cropping::{crop_rows as crop_kernel, Crop};
use crate::error::KernelError;
use crate::masking::{Count, MaskSpec, Vocab};
use crate::padding::{pad_aligned, trim_padding as trim_rows, Rows, TokenId, Trim};
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

/// What is wrong with an item of a row that is not an integer that fits in 64 bits.
fn bad_item(name: &str, i: usize, j: usize, item: &Bound<'_, PyAny>, bools: bool) -> PyErr {
    let at = format!("{name} row {i}, position {j}");
    if item.is_instance_of::<pyo3::types::PyBool>() && !bools {
        return PyTypeError::new_err(format!(
            "{at} is {item}: {name} must hold integers, not bools"
        ));
    }
    if item.is_instance_of::<pyo3::types::PyInt>() {
        return PyOverflowError::new_err(format!(
            "{at} holds {item}, which does not fit in 64 bits"
        ));
    }
    if item.is_instance_of::<pyo3::types::PyString>() && name == "input_ids" {
        return PyTypeError::new_err(format!(
            "{at} is a str ({}): {name} must hold token ids; tokenize the text first",
            item.repr().map(|r| r.to_string()).unwrap_or_default()
        ));
    }
    let ty = item
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    PyTypeError::new_err(format!("{name} must hold integers; {at} is a {ty}"))
}

/// Flatten a list of rows (lists or tuples of Python ints) into `(values, lengths)`; `None`
/// items become `none` when it is given; Python bools are refused unless `bools` (masks).
#[pyfunction]
#[pyo3(signature = (rows, name, none=None, bools=false))]
fn flatten_rows<'py>(
    py: Python<'py>,
    rows: &Bound<'py, PyList>,
    name: &str,
    none: Option<i64>,
    bools: bool,
) -> PyResult<IdsAndLens<'py>> {
    let mut values: Vec<i64> = Vec::new();
    let mut lens: Vec<i64> = Vec::with_capacity(rows.len());
    let value = |i: usize, j: usize, item: &Bound<'py, PyAny>| match none {
        Some(v) if item.is_none() => Ok(v),
        _ if item.is_instance_of::<pyo3::types::PyBool>() && !bools => {
            Err(bad_item(name, i, j, item, bools))
        }
        _ => item
            .extract::<i64>()
            .map_err(|_| bad_item(name, i, j, item, bools)),
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
    words=None, attention=None))]
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
    pad_id: Option<i64>,
    left: bool,
    mut out_ids: PyReadwriteArray2<i64>,
    mut out_labels: PyReadwriteArray2<i64>,
    mut out_attention: PyReadwriteArray2<i64>,
    words: Option<WordArgs<'_>>,
    attention: Option<PyReadonlyArray1<i64>>,
) -> PyResult<()> {
    let starts = to_usize(contiguous(&starts, "starts")?, "starts")?;
    let lens = to_usize(contiguous(&lens, "lens")?, "lens")?;
    let aligned = Aligned {
        special: match &special_mask {
            Some(s) => Some(contiguous(s, "special_tokens_mask")?),
            None => None,
        },
        attention: match &attention {
            Some(a) => Some(contiguous(a, "attention_mask")?),
            None => None,
        },
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
            aligned,
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
    aligned: Aligned,
    cfg: &Collate,
    selection: &Selection,
    out: Outputs,
) -> PyResult<()> {
    py.detach(|| collate_with(rows, aligned, cfg, selection, out))
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

/// Shrink `starts`/`lens` in place to leave out the surplus padding at each row's padding-side
/// end (see `padding::Trim`): with `attention`, pad-id tokens whose attention is 0; without it,
/// pad-id tokens when `pad_is_unique` (the pad id is no other special token); else nothing.
/// Checks no row is empty first. Returns the longest row before trimming (the batch width).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (values, starts, lens, pad_id, pad_is_unique, left, name, attention=None))]
fn trim_padding(
    values: &Bound<'_, PyAny>,
    mut starts: PyReadwriteArray1<i64>,
    mut lens: PyReadwriteArray1<i64>,
    pad_id: Option<i64>,
    pad_is_unique: bool,
    left: bool,
    name: &str,
    attention: Option<PyReadonlyArray1<i64>>,
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
    let attention = match &attention {
        Some(a) => Some(contiguous(a, "attention_mask")?),
        None => None,
    };
    let trim = match (pad_id, attention) {
        (None, _) => Trim::Nothing,
        (Some(pad_id), Some(attention)) => Trim::Unattended { pad_id, attention },
        (Some(pad_id), None) if pad_is_unique => Trim::PadIds(pad_id),
        (Some(_), None) => Trim::Nothing,
    };
    with_ids!(values, "input_ids", |v| {
        Rows::new(v, &s, &n)?;
        if let Some(a) = attention {
            if a.len() != v.len() {
                return Err(PyValueError::new_err(format!(
                    "attention_mask holds {} values but {name} holds {}",
                    a.len(),
                    v.len()
                )));
            }
        }
        trim_rows(v, &mut s, &mut n, &trim, left);
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

type CropArrays<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
);

/// Crop rows to `max_length` tokens (see `cropping`): `(index, starts, lens, content_starts,
/// content_lens)`, the flat positions kept and the new rows and contents over them.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn crop_rows<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyAny>,
    starts: PyReadonlyArray1<i64>,
    lens: PyReadonlyArray1<i64>,
    content_starts: PyReadonlyArray1<i64>,
    content_lens: PyReadonlyArray1<i64>,
    max_length: usize,
    prefix: Vec<i64>,
    suffix: Vec<i64>,
    key_words: PyReadonlyArray1<u32>,
    keyed: bool,
) -> PyResult<CropArrays<'py>> {
    let starts = to_usize(contiguous(&starts, "starts")?, "starts")?;
    let lens = to_usize(contiguous(&lens, "lens")?, "lens")?;
    let content_starts = to_usize(contiguous(&content_starts, "content_starts")?, "starts")?;
    let content_lens = to_usize(contiguous(&content_lens, "content_lens")?, "lens")?;
    let key_words = contiguous(&key_words, "key_words")?;
    let crop = Crop {
        max_length,
        prefix: &prefix,
        suffix: &suffix,
        key_words,
        key_mode: if keyed {
            KeyMode::Content
        } else {
            KeyMode::RowIndex
        },
    };
    let out = with_ids!(values, "input_ids", |v| {
        let rows = Rows::new(v, &starts, &lens)?;
        py.detach(|| crop_kernel(&rows, &content_starts, &content_lens, &crop))
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
    // Cropping to max_length.
    m.add_function(wrap_pyfunction!(crop_rows, m)?)?;
    m.add("LANE_CROP", rng::LANE_CROP)?;
    // Whole-word and span masking.
    m.add_function(wrap_pyfunction!(span_tables, m)?)?;
    m.add("LANE_SPAN_LENGTH", words::LANE_SPAN_LENGTH)?;
    m.add("LANE_SPAN_PHASE", words::LANE_SPAN_PHASE)?;
    // Corpus preprocessing (issue 4).
    corpus::register(m)?;
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

// ---------------------------------------------------------------------------------------------
// Corpus preprocessing (issue 4): chunk grouping and NSP/SOP sentence pairs.
// ---------------------------------------------------------------------------------------------

mod corpus {
    use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
    use pyo3::exceptions::{PyTypeError, PyValueError};
    use pyo3::prelude::*;

    use crate::error::KernelError;
    use crate::grouping::{self, Fill, Layout, Offset, Plan, Source, Tail};
    use crate::padding::TokenId;
    use crate::pairs::{self, Docs, PairSpec, Task, Template};
    use crate::rng;

    /// Run `$body` with `$T` bound to the integer dtype of the numpy array `$like`.
    macro_rules! with_dtype {
        ($like:expr, $what:expr, $T:ident => $body:expr) => {{
            let like = $like;
            if like.cast::<PyArray1<i64>>().is_ok() {
                type $T = i64;
                $body
            } else if like.cast::<PyArray1<i32>>().is_ok() {
                type $T = i32;
                $body
            } else if like.cast::<PyArray1<i16>>().is_ok() {
                type $T = i16;
                $body
            } else if like.cast::<PyArray1<i8>>().is_ok() {
                type $T = i8;
                $body
            } else if like.cast::<PyArray1<u64>>().is_ok() {
                type $T = u64;
                $body
            } else if like.cast::<PyArray1<u32>>().is_ok() {
                type $T = u32;
                $body
            } else if like.cast::<PyArray1<u16>>().is_ok() {
                type $T = u16;
                $body
            } else if like.cast::<PyArray1<u8>>().is_ok() {
                type $T = u8;
                $body
            } else {
                Err(PyTypeError::new_err(format!(
                    "{} must be a 1-D integer numpy array",
                    $what
                )))
            }
        }};
    }

    fn slice<'a, T: numpy::Element>(a: &'a PyReadonlyArray1<T>, what: &str) -> PyResult<&'a [T]> {
        a.as_slice()
            .map_err(|_| PyValueError::new_err(format!("{what} must be a C-contiguous array")))
    }

    fn fit<T: TryFrom<i64>>(v: i64, column: &str) -> PyResult<T> {
        T::try_from(v).map_err(|_| {
            PyValueError::new_err(format!(
                "column {column}: fill value {v} does not fit the column's integer type"
            ))
        })
    }

    fn fit_all<T: TryFrom<i64>>(v: &[i64], column: &str) -> PyResult<Vec<T>> {
        v.iter().map(|&x| fit(x, column)).collect()
    }

    /// Where each block of a grouped batch comes from; apply it to every column.
    #[pyclass(frozen, module = "mlmkit._core")]
    pub struct GroupPlan {
        plan: Plan,
    }

    #[pymethods]
    impl GroupPlan {
        #[getter]
        fn n_blocks(&self) -> usize {
            self.plan.block_lens.len()
        }
        #[getter]
        fn out_len(&self) -> usize {
            self.plan.out_len
        }
        #[getter]
        fn source_tokens(&self) -> usize {
            self.plan.source_tokens
        }
        #[getter]
        fn dropped_tokens(&self) -> usize {
            self.plan.dropped_tokens
        }
        /// `n_blocks + 1` list offsets of the output.
        fn offsets<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
            let mut o = Vec::with_capacity(self.plan.block_lens.len() + 1);
            let mut at = 0i64;
            o.push(0);
            for &l in &self.plan.block_lens {
                at += l as i64;
                o.push(at);
            }
            PyArray1::from_vec(py, o)
        }
    }

    fn plan_typed<O: Offset + numpy::Element>(
        py: Python<'_>,
        layout: Layout,
        offset_chunks: &[Bound<'_, PyAny>],
    ) -> PyResult<Plan> {
        let arrays = offset_chunks
            .iter()
            .map(|c| {
                c.cast::<PyArray1<O>>().map(|a| a.readonly()).map_err(|_| {
                    PyTypeError::new_err("offsets must be 1-D numpy arrays, all int32 or all int64")
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let slices = arrays
            .iter()
            .map(|a| slice(a, "offsets"))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(py.detach(|| grouping::plan(layout, &slices))?)
    }

    /// Plan the blocks of a batch from each chunk's list offsets (int32 or int64, as Arrow
    /// stores them; slices of a list array are fine: positions are relative to the first).
    #[pyfunction]
    #[pyo3(signature = (offset_chunks, block_size, prefix, suffix, separator, tail))]
    pub fn group_plan(
        py: Python<'_>,
        offset_chunks: Vec<Bound<'_, PyAny>>,
        block_size: usize,
        prefix: usize,
        suffix: usize,
        separator: bool,
        tail: &str,
    ) -> PyResult<GroupPlan> {
        let tail = match tail {
            "drop" => Tail::Drop,
            "pad" => Tail::Pad,
            "keep" => Tail::Keep,
            other => {
                return Err(PyValueError::new_err(format!(
                    "tail must be 'drop', 'pad' or 'keep', got {other:?}"
                )))
            }
        };
        let layout = Layout::new(block_size, prefix, suffix, separator, tail)?;
        let int32 = offset_chunks
            .first()
            .is_some_and(|c| c.cast::<PyArray1<i32>>().is_ok());
        let plan = if int32 {
            plan_typed::<i32>(py, layout, &offset_chunks)?
        } else {
            plan_typed::<i64>(py, layout, &offset_chunks)?
        };
        Ok(GroupPlan { plan })
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_typed<'py, T>(
        py: Python<'py>,
        plan: &Plan,
        chunks: &[Bound<'py, PyAny>],
        constant: Option<i64>,
        prefix: &[i64],
        suffix: &[i64],
        separator: i64,
        pad: i64,
        column: &str,
    ) -> PyResult<Bound<'py, PyArray1<T>>>
    where
        T: numpy::Element + Copy + Send + Sync + TryFrom<i64>,
    {
        let prefix: Vec<T> = fit_all(prefix, column)?;
        let suffix: Vec<T> = fit_all(suffix, column)?;
        let fill = Fill {
            prefix: &prefix,
            suffix: &suffix,
            separator: fit(separator, column)?,
            pad: fit(pad, column)?,
        };
        let arrays = chunks
            .iter()
            .map(|c| {
                c.cast::<PyArray1<T>>().map(|a| a.readonly()).map_err(|_| {
                    PyTypeError::new_err(format!(
                        "column {column}: every chunk must have the same integer dtype"
                    ))
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let slices = arrays
            .iter()
            .map(|a| slice(a, column))
            .collect::<PyResult<Vec<_>>>()?;
        let source = match constant {
            Some(v) => {
                if !slices.is_empty() {
                    return Err(PyValueError::new_err(
                        "pass either chunks or a constant, not both",
                    ));
                }
                Source::Constant(fit(v, column)?)
            }
            None => Source::Chunks(slices),
        };
        let out = py.detach(|| grouping::apply(plan, &source, &fill, column))?;
        Ok(PyArray1::from_vec(py, out))
    }

    /// One column cut through a plan: `chunks` (flat values, one array per input chunk) or,
    /// for a column with no input, `constant` at every document position; `like` gives the dtype.
    #[pyfunction]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (plan, chunks, like, constant, prefix, suffix, separator, pad, column))]
    pub fn group_apply<'py>(
        py: Python<'py>,
        plan: &GroupPlan,
        chunks: Vec<Bound<'py, PyAny>>,
        like: &Bound<'py, PyAny>,
        constant: Option<i64>,
        prefix: Vec<i64>,
        suffix: Vec<i64>,
        separator: i64,
        pad: i64,
        column: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let p = &plan.plan;
        with_dtype!(like, format!("column {column}"), T => {
            apply_typed::<T>(py, p, &chunks, constant, &prefix, &suffix, separator, pad, column)
                .map(|a| a.into_any())
        })
    }

    fn to_usize(v: &[i64], what: &str) -> PyResult<Vec<usize>> {
        v.iter()
            .map(|&x| {
                usize::try_from(x)
                    .map_err(|_| PyValueError::new_err(format!("{what} has a negative entry {x}")))
            })
            .collect()
    }

    type PairArrays<'py> = (
        Bound<'py, PyAny>,
        Bound<'py, PyArray1<u8>>,
        Bound<'py, PyArray1<i64>>,
        Bound<'py, PyArray1<u8>>,
    );

    #[allow(clippy::too_many_arguments)]
    fn pairs_typed<'py, T>(
        py: Python<'py>,
        tokens: &Bound<'py, PyAny>,
        doc_offsets: &[usize],
        sent_offsets: &[usize],
        spec: &PairSpec,
        tpl: &Template,
    ) -> PyResult<PairArrays<'py>>
    where
        T: numpy::Element + TokenId + TryFrom<i64>,
    {
        let arr = tokens
            .cast::<PyArray1<T>>()
            .map_err(|_| PyTypeError::new_err("tokens has an unexpected dtype"))?
            .readonly();
        let tokens = slice(&arr, "tokens")?;
        let docs = Docs {
            doc_offsets,
            sent_offsets,
            tokens,
        };
        let out = py.detach(|| pairs::instances(&docs, spec, tpl))?;
        let offsets: Vec<i64> = out.offsets.iter().map(|&o| o as i64).collect();
        Ok((
            PyArray1::from_vec(py, out.ids).into_any(),
            PyArray1::from_vec(py, out.types),
            PyArray1::from_vec(py, offsets),
            PyArray1::from_vec(py, out.labels),
        ))
    }

    /// NSP/SOP instances of one batch of documents (see `rust/pairs.rs`). Returns
    /// `(input_ids values, token type values, offsets, labels)`.
    #[pyfunction]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (doc_offsets, sent_offsets, tokens, max_num_tokens, short_seq_prob,
        nsp_probability, sop, key_words, dupe_factor, prefix, middle, suffix, prefix_types,
        middle_types, suffix_types, a_type, b_type))]
    pub fn pair_instances<'py>(
        py: Python<'py>,
        doc_offsets: PyReadonlyArray1<i64>,
        sent_offsets: PyReadonlyArray1<i64>,
        tokens: &Bound<'py, PyAny>,
        max_num_tokens: usize,
        short_seq_prob: f64,
        nsp_probability: f64,
        sop: bool,
        key_words: PyReadonlyArray1<u32>,
        dupe_factor: u32,
        prefix: Vec<i64>,
        middle: Vec<i64>,
        suffix: Vec<i64>,
        prefix_types: Vec<u8>,
        middle_types: Vec<u8>,
        suffix_types: Vec<u8>,
        a_type: u8,
        b_type: u8,
    ) -> PyResult<PairArrays<'py>> {
        for (name, p) in [
            ("short_seq_prob", short_seq_prob),
            ("nsp_probability", nsp_probability),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(
                    KernelError::Config(format!("{name} must be in [0, 1], got {p}")).into(),
                );
            }
        }
        let doc_offsets = to_usize(slice(&doc_offsets, "doc_offsets")?, "doc_offsets")?;
        let sent_offsets = to_usize(slice(&sent_offsets, "sent_offsets")?, "sent_offsets")?;
        let key_words = slice(&key_words, "key_words")?;
        let spec = PairSpec {
            max_num_tokens,
            short_seq: rng::threshold(short_seq_prob),
            random_next: rng::threshold(nsp_probability),
            task: if sop { Task::Sop } else { Task::Nsp },
            key_words,
            dupe_factor,
        };
        let tpl = Template {
            prefix: &prefix,
            middle: &middle,
            suffix: &suffix,
            prefix_types: &prefix_types,
            middle_types: &middle_types,
            suffix_types: &suffix_types,
            a_type,
            b_type,
        };
        if tokens.cast::<PyArray1<i64>>().is_ok() {
            pairs_typed::<i64>(py, tokens, &doc_offsets, &sent_offsets, &spec, &tpl)
        } else if tokens.cast::<PyArray1<i32>>().is_ok() {
            pairs_typed::<i32>(py, tokens, &doc_offsets, &sent_offsets, &spec, &tpl)
        } else if tokens.cast::<PyArray1<u32>>().is_ok() {
            pairs_typed::<u32>(py, tokens, &doc_offsets, &sent_offsets, &spec, &tpl)
        } else if tokens.cast::<PyArray1<u16>>().is_ok() {
            pairs_typed::<u16>(py, tokens, &doc_offsets, &sent_offsets, &spec, &tpl)
        } else if tokens.cast::<PyArray1<i16>>().is_ok() {
            pairs_typed::<i16>(py, tokens, &doc_offsets, &sent_offsets, &spec, &tpl)
        } else {
            Err(PyTypeError::new_err(
                "tokens must be a 1-D numpy array of int64, int32, uint32, uint16 or int16",
            ))
        }
    }

    pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add_class::<GroupPlan>()?;
        m.add_function(wrap_pyfunction!(group_plan, m)?)?;
        m.add_function(wrap_pyfunction!(group_apply, m)?)?;
        m.add_function(wrap_pyfunction!(pair_instances, m)?)?;
        m.add("LANE_TARGET", pairs::LANE_TARGET)?;
        m.add("LANE_SPLIT", pairs::LANE_SPLIT)?;
        m.add("LANE_NEXT", pairs::LANE_NEXT)?;
        m.add("LANE_OTHER_DOC", pairs::LANE_OTHER_DOC)?;
        m.add("LANE_OTHER_START", pairs::LANE_OTHER_START)?;
        m.add("LANE_TRUNCATE", pairs::LANE_TRUNCATE)?;
        Ok(())
    }
}
