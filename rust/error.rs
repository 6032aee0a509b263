//! Errors the kernels report; the binding turns them into Python exceptions.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// A token id outside `[0, vocab_size)`.
    IdOutOfRange {
        row: usize,
        col: usize,
        id: i64,
        vocab_size: usize,
    },
    /// A row longer than the output width.
    RowTooLong {
        row: usize,
        len: usize,
        width: usize,
    },
    /// Buffers whose lengths do not agree.
    Shape(String),
    /// A configuration value out of range.
    Config(String),
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::IdOutOfRange {
                row,
                col,
                id,
                vocab_size,
            } => write!(
                f,
                "token id {id} at row {row}, position {col} is outside the vocabulary [0, {vocab_size})"
            ),
            KernelError::RowTooLong { row, len, width } => {
                write!(f, "row {row} has {len} tokens, more than the output width {width}")
            }
            KernelError::Shape(msg) | KernelError::Config(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for KernelError {}
