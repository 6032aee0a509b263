//! Corpus preprocessing: cutting documents into blocks (`GroupPlan`) and NSP/SOP sentence pairs.

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use super::conversion::{enum_from_str, slice, to_usize, with_int_array};
use crate::grouping::{self, Fill, Layout, Offset, Plan, Source, Tail};
use crate::pairs::{self, Docs, PairSpec, Task, Template};

enum_from_str!(Tail, "tail", { "drop" => Tail::Drop, "pad" => Tail::Pad, "keep" => Tail::Keep });
enum_from_str!(Task, "task", { "nsp" => Task::Nsp, "sop" => Task::Sop });

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
/// `prefix`/`suffix` are the numbers of tokens put around each block's content; `separator`
/// whether one token goes between documents.
#[pyfunction]
#[pyo3(signature = (offset_chunks, *, block_size, prefix, suffix, separator, tail))]
fn group_plan(
    py: Python<'_>,
    offset_chunks: Vec<Bound<'_, PyAny>>,
    block_size: usize,
    prefix: usize,
    suffix: usize,
    separator: bool,
    tail: Tail,
) -> PyResult<GroupPlan> {
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

/// The values a column takes where a plan inserts tokens.
struct FillArg {
    prefix: Vec<i64>,
    suffix: Vec<i64>,
    separator: i64,
    pad: i64,
}

fn apply_typed<'py, T>(
    py: Python<'py>,
    plan: &Plan,
    chunks: &[Bound<'py, PyAny>],
    constant: Option<i64>,
    fill: &FillArg,
    column: &str,
) -> PyResult<Bound<'py, PyArray1<T>>>
where
    T: numpy::Element + Copy + Send + Sync + TryFrom<i64>,
{
    let prefix: Vec<T> = fit_all(&fill.prefix, column)?;
    let suffix: Vec<T> = fit_all(&fill.suffix, column)?;
    let fill = Fill {
        prefix: &prefix,
        suffix: &suffix,
        separator: fit(fill.separator, column)?,
        pad: fit(fill.pad, column)?,
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
/// for a column with no input, `constant` at every document position; `like` gives the dtype;
/// `prefix`, `suffix`, `separator` and `pad` are its values at the tokens the plan inserts.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (plan, chunks, *, like, constant, prefix, suffix, separator, pad, column))]
fn group_apply<'py>(
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
    let fill = FillArg {
        prefix,
        suffix,
        separator,
        pad,
    };
    with_int_array!(like, &format!("column {column}"), |_a: T| {
        apply_typed::<T>(py, &plan.plan, &chunks, constant, &fill, column).map(|a| a.into_any())
    })
}

/// A sentence pair's special tokens and token types, read from `mlmkit.templates.PairTemplate`.
#[derive(FromPyObject)]
struct TemplateArg {
    prefix: Vec<i64>,
    middle: Vec<i64>,
    suffix: Vec<i64>,
    prefix_types: Vec<u8>,
    middle_types: Vec<u8>,
    suffix_types: Vec<u8>,
    a_type: u8,
    b_type: u8,
}

impl TemplateArg {
    fn template(&self) -> Template<'_> {
        Template {
            prefix: &self.prefix,
            middle: &self.middle,
            suffix: &self.suffix,
            prefix_types: &self.prefix_types,
            middle_types: &self.middle_types,
            suffix_types: &self.suffix_types,
            a_type: self.a_type,
            b_type: self.b_type,
        }
    }
}

type PairArrays<'py> = (
    Bound<'py, PyAny>,
    Bound<'py, PyArray1<u8>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<u8>>,
);

/// NSP/SOP instances of one batch of documents (see `rust/pairs.rs`). Returns
/// `(input_ids values, token type values, offsets, labels)`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (doc_offsets, sent_offsets, tokens, template, *, max_num_tokens,
    short_seq_prob, nsp_probability, task, key_words, dupe_factor))]
fn pair_instances<'py>(
    py: Python<'py>,
    doc_offsets: PyReadonlyArray1<'py, i64>,
    sent_offsets: PyReadonlyArray1<'py, i64>,
    tokens: &Bound<'py, PyAny>,
    template: TemplateArg,
    max_num_tokens: usize,
    short_seq_prob: f64,
    nsp_probability: f64,
    task: Task,
    key_words: PyReadonlyArray1<'py, u32>,
    dupe_factor: u32,
) -> PyResult<PairArrays<'py>> {
    let spec = PairSpec::new(
        max_num_tokens,
        short_seq_prob,
        nsp_probability,
        task,
        slice(&key_words, "key_words")?,
        dupe_factor,
    )?;
    let doc_offsets = to_usize(slice(&doc_offsets, "doc_offsets")?, "doc_offsets")?;
    let sent_offsets = to_usize(slice(&sent_offsets, "sent_offsets")?, "sent_offsets")?;
    let tpl = template.template();
    with_int_array!(tokens, "tokens", |a: T| {
        let arr = a.readonly();
        let docs = Docs {
            doc_offsets: &doc_offsets,
            sent_offsets: &sent_offsets,
            tokens: slice(&arr, "tokens")?,
        };
        let out = py.detach(|| pairs::instances::<T>(&docs, &spec, &tpl))?;
        let offsets: Vec<i64> = out.offsets.iter().map(|&o| o as i64).collect();
        Ok((
            PyArray1::from_vec(py, out.ids).into_any(),
            PyArray1::from_vec(py, out.types),
            PyArray1::from_vec(py, offsets),
            PyArray1::from_vec(py, out.labels),
        ))
    })
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
