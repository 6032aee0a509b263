//! Whole-word and span masking: the masking unit, word boundaries from a batch's columns or a
//! tokenizer's tables, and the span thresholds.

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::conversion::{enum_from_str, optional_slice, slice};
use crate::collate::Selection;
use crate::words::{
    self, Boundaries, Lengths, Replace, SpanSpec, Units, WordMasking, ENDS_WORD_BREAK,
    ENDS_WORD_JOIN, ENDS_WORD_NONE, MAX_SPAN_WORDS,
};

/// What a collator masks: `masking` of `mlmkit.DataCollatorForLanguageModeling`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskingUnit {
    Token,
    Word,
    Span,
    Ngram,
}

enum_from_str!(MaskingUnit, "masking", {
    "token" => MaskingUnit::Token,
    "word" => MaskingUnit::Word,
    "span" => MaskingUnit::Span,
    "ngram" => MaskingUnit::Ngram,
});

/// The span length distributions (`units` of `span_tables`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SpanUnit {
    Span,
    Ngram,
}

enum_from_str!(SpanUnit, "units", { "span" => SpanUnit::Span, "ngram" => SpanUnit::Ngram });

fn span_spec(
    unit: SpanUnit,
    probability: f64,
    span_geometric_p: f64,
    max_length: usize,
) -> PyResult<SpanSpec> {
    let lengths = match unit {
        SpanUnit::Span => Lengths::geometric(span_geometric_p, max_length)?,
        SpanUnit::Ngram => Lengths::harmonic(max_length)?,
    };
    Ok(SpanSpec::new(lengths, probability)?)
}

/// How a collator with these settings selects the tokens it masks.
pub fn selection(
    unit: MaskingUnit,
    probability: f64,
    replace: Replace,
    span_geometric_p: f64,
    max_span_length: usize,
    max_ngram: usize,
) -> PyResult<Selection> {
    let units = match unit {
        MaskingUnit::Token => return Ok(Selection::Tokens),
        MaskingUnit::Word => Units::Words,
        MaskingUnit::Span => Units::Spans(span_spec(
            SpanUnit::Span,
            probability,
            span_geometric_p,
            max_span_length,
        )?),
        MaskingUnit::Ngram => Units::Spans(span_spec(
            SpanUnit::Ngram,
            probability,
            span_geometric_p,
            max_ngram,
        )?),
    };
    Ok(Selection::Words(WordMasking { units, replace }))
}

/// A tokenizer's word tables, read from `mlmkit.word_boundaries.WordTables`.
#[derive(FromPyObject)]
pub struct WordTablesArg<'py> {
    starts_word: PyReadonlyArray1<'py, u8>,
    ends_word: PyReadonlyArray1<'py, u8>,
}

/// A batch's word boundaries: its `word_ids` column, or the tokenizer's tables (with the
/// continuation flags of a `chinese_ref` column); `None` when it has neither.
pub fn boundaries<'a>(
    word_ids: &'a Option<PyReadonlyArray1<i64>>,
    tables: &'a Option<WordTablesArg>,
    continuation: &'a Option<PyReadonlyArray1<u8>>,
) -> PyResult<Option<Boundaries<'a>>> {
    let continuation = optional_slice(continuation, "continuation")?;
    match (word_ids, tables) {
        (Some(w), _) => {
            if continuation.is_some() {
                return Err(PyValueError::new_err(
                    "give word boundaries as word_ids or as reference positions, not both",
                ));
            }
            Ok(Some(Boundaries::WordIds(slice(w, "word_ids")?)))
        }
        (None, Some(t)) => Ok(Some(Boundaries::Tables {
            starts_word: slice(&t.starts_word, "starts_word")?,
            ends_word: slice(&t.ends_word, "ends_word")?,
            continuation,
        })),
        (None, None) => Ok(None),
    }
}

type SpanTables<'py> = (u64, Bound<'py, PyArray1<u64>>, Bound<'py, PyArray1<u64>>);

/// Span masking's integer thresholds `(Q, C, F)` (see `rust/words.rs`): `units` is "span"
/// (SpanBERT lengths from `span_geometric_p` and `max_length`) or "ngram" (1/n up to `max_length`).
#[pyfunction]
fn span_tables<'py>(
    py: Python<'py>,
    units: SpanUnit,
    probability: f64,
    span_geometric_p: f64,
    max_length: usize,
) -> PyResult<SpanTables<'py>> {
    let spec = span_spec(units, probability, span_geometric_p, max_length)?;
    Ok((
        spec.start,
        PyArray1::from_vec(py, spec.lengths.cdf),
        PyArray1::from_vec(py, spec.phase),
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(span_tables, m)?)?;
    m.add("LANE_SPAN_LENGTH", words::LANE_SPAN_LENGTH)?;
    m.add("LANE_SPAN_PHASE", words::LANE_SPAN_PHASE)?;
    m.add("MAX_SPAN_WORDS", MAX_SPAN_WORDS)?;
    m.add("ENDS_WORD_NONE", ENDS_WORD_NONE)?;
    m.add("ENDS_WORD_BREAK", ENDS_WORD_BREAK)?;
    m.add("ENDS_WORD_JOIN", ENDS_WORD_JOIN)?;
    Ok(())
}
