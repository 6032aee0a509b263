//! From Python objects to the kernels' slices and enums, and back: one dtype dispatch, one
//! contiguity check, one conversion of offsets, the errors, and `flatten_rows`.

use numpy::{PyArray1, PyReadonlyArray1, PyReadwriteArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyList, PyString, PyTuple};

use crate::error::KernelError;

impl From<KernelError> for PyErr {
    fn from(e: KernelError) -> PyErr {
        PyValueError::new_err(e.to_string())
    }
}

/// The integer dtypes every kernel takes, for token ids and for the columns aligned with them
/// (the order `with_int_array!` tries them in).
pub const TOKEN_ID_DTYPES: [&str; 8] = [
    "int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8",
];

/// The error for an array whose dtype is none of `TOKEN_ID_DTYPES` (or that is not 1-D).
pub fn not_an_int_array(name: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "{name} must be a 1-D integer numpy array ({})",
        TOKEN_ID_DTYPES.join(", ")
    ))
}

/// Run `$body` with `$arr` bound to `$array` cast to `PyArray1<$T>`, `$T` being its integer
/// element type: the one dispatch over `TOKEN_ID_DTYPES`.
macro_rules! with_int_array {
    ($array:expr, $name:expr, |$arr:ident: $T:ident| $body:expr) => {{
        let any = $array;
        if let Ok($arr) = any.cast::<numpy::PyArray1<i64>>() {
            #[allow(dead_code)]
            type $T = i64;
            $body
        } else if let Ok($arr) = any.cast::<numpy::PyArray1<i32>>() {
            #[allow(dead_code)]
            type $T = i32;
            $body
        } else if let Ok($arr) = any.cast::<numpy::PyArray1<i16>>() {
            #[allow(dead_code)]
            type $T = i16;
            $body
        } else if let Ok($arr) = any.cast::<numpy::PyArray1<i8>>() {
            #[allow(dead_code)]
            type $T = i8;
            $body
        } else if let Ok($arr) = any.cast::<numpy::PyArray1<u64>>() {
            #[allow(dead_code)]
            type $T = u64;
            $body
        } else if let Ok($arr) = any.cast::<numpy::PyArray1<u32>>() {
            #[allow(dead_code)]
            type $T = u32;
            $body
        } else if let Ok($arr) = any.cast::<numpy::PyArray1<u16>>() {
            #[allow(dead_code)]
            type $T = u16;
            $body
        } else if let Ok($arr) = any.cast::<numpy::PyArray1<u8>>() {
            #[allow(dead_code)]
            type $T = u8;
            $body
        } else {
            Err($crate::python::conversion::not_an_int_array($name))
        }
    }};
}
pub(crate) use with_int_array;

/// A 1-D array's values, which must be C-contiguous.
pub fn slice<'a, T: numpy::Element>(a: &'a PyReadonlyArray1<T>, name: &str) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{name} must be a C-contiguous array")))
}

/// An optional aligned column's values.
pub fn optional_slice<'a, T: numpy::Element>(
    a: &'a Option<PyReadonlyArray1<T>>,
    name: &str,
) -> PyResult<Option<&'a [T]>> {
    a.as_ref().map(|a| slice(a, name)).transpose()
}

/// A `(rows, width)` output's values and width; it must be C-contiguous.
pub fn out_rows<'a>(
    a: &'a mut PyReadwriteArray2<i64>,
    name: &str,
) -> PyResult<(&'a mut [i64], usize)> {
    let width = a.shape()[1];
    let values = a
        .as_slice_mut()
        .map_err(|_| PyValueError::new_err(format!("{name} must be a C-contiguous array")))?;
    Ok((values, width))
}

/// Offsets or lengths as `usize`.
pub fn to_usize(v: &[i64], name: &str) -> PyResult<Vec<usize>> {
    v.iter()
        .map(|&x| {
            usize::try_from(x)
                .map_err(|_| PyValueError::new_err(format!("{name} has a negative entry {x}")))
        })
        .collect()
}

/// Rows of a flat buffer, read from an object with `values`, `starts` and `lens` attributes
/// (`mlmkit.batch.Ragged`).
#[derive(FromPyObject)]
pub struct RaggedArg<'py> {
    pub values: Bound<'py, PyAny>,
    pub starts: PyReadonlyArray1<'py, i64>,
    pub lens: PyReadonlyArray1<'py, i64>,
}

impl RaggedArg<'_> {
    /// `(starts, lens)` as `usize`, each checked for C-contiguity and signs.
    pub fn ranges(&self, name: &str) -> PyResult<(Vec<usize>, Vec<usize>)> {
        let starts = to_usize(slice(&self.starts, name)?, &format!("{name} starts"))?;
        let lens = to_usize(slice(&self.lens, name)?, &format!("{name} lengths"))?;
        Ok((starts, lens))
    }
}

/// The message of `mlmkit.validation.one_of`: `name must be one of 'a', 'b' or 'c', got x`.
pub fn not_one_of(name: &str, choices: &[&str], got: &Bound<'_, PyAny>) -> PyErr {
    let quoted: Vec<String> = choices.iter().map(|c| format!("'{c}'")).collect();
    let listed = match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    };
    let got = got
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".into());
    PyValueError::new_err(format!("{name} must be one of {listed}, got {got}"))
}

/// `FromPyObject` for an enum named by strings on the Python side (a `Literal` setting): the
/// error names the setting and its choices.
macro_rules! enum_from_str {
    ($ty:ty, $setting:literal, { $($text:literal => $value:expr),+ $(,)? }) => {
        impl<'a, 'py> pyo3::FromPyObject<'a, 'py> for $ty {
            type Error = pyo3::PyErr;

            fn extract(obj: pyo3::Borrowed<'a, 'py, pyo3::PyAny>) -> pyo3::PyResult<Self> {
                use pyo3::types::PyStringMethods;
                if let Ok(s) = obj.cast::<pyo3::types::PyString>() {
                    match s.to_str()? {
                        $($text => return Ok($value),)+
                        _ => {}
                    }
                }
                Err($crate::python::conversion::not_one_of($setting, &[$($text),+], &obj))
            }
        }
    };
}
pub(crate) use enum_from_str;

type ValuesAndLens<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>);

/// Append a list of exact Python ints that fit in i64 (and `None`s, as `none`, when it is given);
/// false (with `out` possibly extended) when an item is anything else, so the caller can take the
/// slow path that names the culprit.
fn extend_exact_ints(list: &Bound<'_, PyList>, none: Option<i64>, out: &mut Vec<i64>) -> bool {
    let n = list.len();
    out.reserve(n);
    let ptr = list.as_ptr();
    for j in 0..n {
        // SAFETY: we hold the GIL, `list` is a live list of length `n` that nothing mutates while
        // we read it (no Python code runs here), `j < n`, and the item is a borrowed reference
        // used only in this iteration.
        unsafe {
            let item = pyo3::ffi::PyList_GetItem(ptr, j as pyo3::ffi::Py_ssize_t);
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
    if item.is_instance_of::<PyBool>() && !bools {
        return PyTypeError::new_err(format!(
            "{at} is {item}: {name} must hold integers, not bools"
        ));
    }
    if item.is_instance_of::<PyInt>() {
        return PyOverflowError::new_err(format!(
            "{at} holds {item}, which does not fit in 64 bits"
        ));
    }
    if item.is_instance_of::<PyString>() && name == "input_ids" {
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
pub fn flatten_rows<'py>(
    py: Python<'py>,
    rows: &Bound<'py, PyList>,
    name: &str,
    none: Option<i64>,
    bools: bool,
) -> PyResult<ValuesAndLens<'py>> {
    let mut values: Vec<i64> = Vec::new();
    let mut lens: Vec<i64> = Vec::with_capacity(rows.len());
    let value = |i: usize, j: usize, item: &Bound<'py, PyAny>| match none {
        Some(v) if item.is_none() => Ok(v),
        _ if item.is_instance_of::<PyBool>() && !bools => Err(bad_item(name, i, j, item, bools)),
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

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(flatten_rows, m)?)?;
    m.add("TOKEN_ID_DTYPES", PyTuple::new(m.py(), TOKEN_ID_DTYPES)?)?;
    Ok(())
}
