//! Collation: a collator's settings (`CollateSettings`, built once per configuration), one
//! kernel call per batch (`collate`), and the steps around it (`trim_padding`, `pad_column`).

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadwriteArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::conversion::{
    enum_from_str, optional_slice, out_rows, slice, to_usize, with_int_array, RaggedArg,
};
use super::words::{boundaries, selection, MaskingUnit, WordTablesArg};
use crate::collate::{
    collate as collate_batch, Batch, Collate, KeyMode, Labels, Outputs, Selection,
};
use crate::masking::{Count, MaskSpec, Vocab, IGNORE_INDEX};
use crate::padding::{pad_aligned, trim_padding as trim_rows, Rows, Side, Trim};
use crate::words::Replace;

enum_from_str!(Side, "padding_side", { "left" => Side::Left, "right" => Side::Right });
enum_from_str!(KeyMode, "key_mode", {
    "row_index" => KeyMode::RowIndex,
    "content" => KeyMode::Content,
});
enum_from_str!(Count, "mask_count", { "bernoulli" => Count::Bernoulli, "exact" => Count::Exact });
enum_from_str!(Replace, "replace_per", { "word" => Replace::PerUnit, "token" => Replace::PerToken });

/// A collator's settings, validated when built; `masking=None` makes the labels a copy of the
/// ids (`mlm=False`).
#[pyclass(frozen, module = "mlmkit._core")]
pub struct CollateSettings {
    pub collate: Collate,
}

#[pymethods]
impl CollateSettings {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (*, masking, mlm_probability, mask_replace_prob, random_replace_prob,
        mask_count, max_predictions, replace_per, span_geometric_p, max_span_length, max_ngram,
        padding_side, key_mode))]
    fn new(
        masking: Option<MaskingUnit>,
        mlm_probability: f64,
        mask_replace_prob: f64,
        random_replace_prob: f64,
        mask_count: Count,
        max_predictions: Option<usize>,
        replace_per: Replace,
        span_geometric_p: f64,
        max_span_length: usize,
        max_ngram: usize,
        padding_side: Side,
        key_mode: KeyMode,
    ) -> PyResult<Self> {
        let labels = match masking {
            None => Labels::Copied,
            Some(unit) => Labels::Masked {
                spec: MaskSpec::new(
                    mlm_probability,
                    mask_replace_prob,
                    random_replace_prob,
                    mask_count,
                    max_predictions.unwrap_or(usize::MAX),
                )?,
                selection: selection(
                    unit,
                    mlm_probability,
                    replace_per,
                    span_geometric_p,
                    max_span_length,
                    max_ngram,
                )?,
            },
        };
        Ok(CollateSettings {
            collate: Collate {
                side: padding_side,
                key_mode,
                labels,
            },
        })
    }

    /// Whether it masks whole words (so each batch needs word boundaries).
    #[getter]
    fn masks_words(&self) -> bool {
        matches!(
            self.collate.labels,
            Labels::Masked {
                selection: Selection::Words(_),
                ..
            }
        )
    }
}

/// What the kernels need of a tokenizer, read from `mlmkit.vocab.TokenizerTables`.
#[derive(FromPyObject)]
struct VocabArg<'py> {
    is_special: PyReadonlyArray1<'py, u8>,
    random_ids: PyReadonlyArray1<'py, i64>,
    mask_id: i64,
    pad_id: Option<i64>,
}

impl VocabArg<'_> {
    fn vocab(&self) -> PyResult<Vocab<'_>> {
        Ok(Vocab {
            is_special: slice(&self.is_special, "is_special")?,
            random_ids: slice(&self.random_ids, "random_ids")?,
            mask_id: self.mask_id,
            pad_id: self.pad_id,
        })
    }
}

/// A batch's aligned columns, read from `mlmkit.batch.Columns`.
#[derive(FromPyObject)]
struct ColumnsArg<'py> {
    content: RaggedArg<'py>,
    special: Option<PyReadonlyArray1<'py, u8>>,
    attention: Option<PyReadonlyArray1<'py, i64>>,
    word_ids: Option<PyReadonlyArray1<'py, i64>>,
    continuation: Option<PyReadonlyArray1<'py, u8>>,
    word_tables: Option<WordTablesArg<'py>>,
}

type OutArrays<'py> = (
    PyReadwriteArray2<'py, i64>,
    PyReadwriteArray2<'py, i64>,
    PyReadwriteArray2<'py, i64>,
);

/// Pad and label one batch into caller-allocated `(B, L)` int64 `outputs`: `(out_ids,
/// out_labels, out_attention)`, with the GIL released.
#[pyfunction]
fn collate<'py>(
    py: Python<'py>,
    settings: &Bound<'py, CollateSettings>,
    vocab: VocabArg<'py>,
    columns: ColumnsArg<'py>,
    key_words: PyReadonlyArray1<'py, u32>,
    outputs: OutArrays<'py>,
) -> PyResult<()> {
    let cfg = &settings.get().collate;
    let vocab = vocab.vocab()?;
    let (starts, lens) = columns.content.ranges("input_ids")?;
    let special = optional_slice(&columns.special, "special_tokens_mask")?;
    let attention = optional_slice(&columns.attention, "attention_mask")?;
    let boundaries = boundaries(
        &columns.word_ids,
        &columns.word_tables,
        &columns.continuation,
    )?;
    let key_words = slice(&key_words, "key_words")?;
    let (mut ids, mut labels, mut attention_out) = outputs;
    for (name, shape) in [
        ("out_labels", labels.shape()),
        ("out_attention", attention_out.shape()),
    ] {
        if shape != ids.shape() {
            return Err(PyValueError::new_err(format!(
                "{name} must have the shape of out_ids"
            )));
        }
    }
    if ids.shape()[0] != starts.len() {
        return Err(PyValueError::new_err(
            "out_ids must have one row per input row",
        ));
    }
    let (ids, width) = out_rows(&mut ids, "out_ids")?;
    let (labels, _) = out_rows(&mut labels, "out_labels")?;
    let (attention_out, _) = out_rows(&mut attention_out, "out_attention")?;
    with_int_array!(&columns.content.values, "input_ids", |a: T| {
        let values = a.readonly();
        let batch = Batch {
            rows: Rows::new(slice(&values, "input_ids")?, &starts, &lens)?,
            special,
            attention,
            boundaries,
            key_words,
        };
        let out = Outputs {
            ids,
            labels,
            attention: attention_out,
            width,
        };
        py.detach(|| collate_batch::<T>(cfg, &vocab, &batch, out))
            .map_err(PyErr::from)
    })
}

/// Copy an aligned per-token column into a padded `(B, L)` int64 output.
#[pyfunction]
fn pad_column(
    py: Python<'_>,
    values: &Bound<'_, PyAny>,
    starts: PyReadonlyArray1<i64>,
    lens: PyReadonlyArray1<i64>,
    fill: i64,
    padding_side: Side,
    mut out: PyReadwriteArray2<i64>,
) -> PyResult<()> {
    let starts = to_usize(slice(&starts, "starts")?, "starts")?;
    let lens = to_usize(slice(&lens, "lens")?, "lens")?;
    if out.shape()[0] != starts.len() {
        return Err(PyValueError::new_err("out must have one row per input row"));
    }
    let (out, width) = out_rows(&mut out, "out")?;
    with_int_array!(values, "column", |a: T| {
        let values = a.readonly();
        let rows = Rows::new(slice(&values, "column")?, &starts, &lens)?;
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
                pad_aligned(rows.row(i), fill, padding_side, dst);
            }
        });
        Ok(())
    })
}

/// The pad token's facts, read from `mlmkit.vocab.TokenizerTables`.
#[derive(FromPyObject)]
struct PadArg {
    pad_id: Option<i64>,
    pad_is_unique: bool,
}

type Trimmed<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>, usize);

/// Each row's content: `(starts, lens, width)`, the rows without the surplus padding at their
/// padding-side end (see `padding::Trim`: with `attention`, pad-id tokens whose attention is 0;
/// without it, pad-id tokens when the pad id is no other special token; else nothing), and the
/// longest row as given (the batch width). No row may be empty.
#[pyfunction]
#[pyo3(signature = (rows, pad, padding_side, attention=None))]
fn trim_padding<'py>(
    py: Python<'py>,
    rows: RaggedArg<'py>,
    pad: PadArg,
    padding_side: Side,
    attention: Option<PyReadonlyArray1<'py, i64>>,
) -> PyResult<Trimmed<'py>> {
    let (mut starts, mut lens) = rows.ranges("input_ids")?;
    if let Some(row) = lens.iter().position(|&l| l == 0) {
        return Err(PyValueError::new_err(format!(
            "row {row} of input_ids is empty"
        )));
    }
    let width = lens.iter().copied().max().unwrap_or(0);
    let attention = optional_slice(&attention, "attention_mask")?;
    let trim = match (pad.pad_id, attention) {
        (None, _) => Trim::Nothing,
        (Some(pad_id), Some(attention)) => Trim::Unattended { pad_id, attention },
        (Some(pad_id), None) if pad.pad_is_unique => Trim::PadIds(pad_id),
        (Some(_), None) => Trim::Nothing,
    };
    with_int_array!(&rows.values, "input_ids", |a: T| {
        let values = a.readonly();
        let v = slice(&values, "input_ids")?;
        Rows::new(v, &starts, &lens)?;
        if let Some(a) = attention {
            if a.len() != v.len() {
                return Err(PyValueError::new_err(format!(
                    "attention_mask holds {} values but input_ids holds {}",
                    a.len(),
                    v.len()
                )));
            }
        }
        trim_rows(v, &mut starts, &mut lens, &trim, padding_side);
        Ok::<(), PyErr>(())
    })?;
    let arr = |v: Vec<usize>| PyArray1::from_vec(py, v.into_iter().map(|n| n as i64).collect());
    Ok((arr(starts), arr(lens), width))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CollateSettings>()?;
    m.add_function(wrap_pyfunction!(collate, m)?)?;
    m.add_function(wrap_pyfunction!(pad_column, m)?)?;
    m.add_function(wrap_pyfunction!(trim_padding, m)?)?;
    m.add("IGNORE_INDEX", IGNORE_INDEX)?;
    Ok(())
}
