//! Placing variable-length rows into a padded, row-major output.

use crate::error::KernelError;

/// Integer types token ids may arrive in.
pub trait TokenId: Copy + Send + Sync {
    fn to_i64(self) -> i64;
}

macro_rules! token_id {
    ($($t:ty),*) => {$(
        impl TokenId for $t {
            #[inline(always)]
            fn to_i64(self) -> i64 {
                self as i64
            }
        }
    )*};
}
token_id!(i64, i32, i16, u32, u16, u8);

/// Rows as `[starts[i], starts[i] + lens[i])` ranges of one flat buffer.
#[derive(Clone, Copy)]
pub struct Rows<'a, T> {
    pub values: &'a [T],
    pub starts: &'a [usize],
    pub lens: &'a [usize],
}

impl<'a, T: TokenId> Rows<'a, T> {
    pub fn new(
        values: &'a [T],
        starts: &'a [usize],
        lens: &'a [usize],
    ) -> Result<Self, KernelError> {
        if starts.len() != lens.len() {
            return Err(KernelError::Shape(format!(
                "{} row starts but {} row lengths",
                starts.len(),
                lens.len()
            )));
        }
        for (row, (&s, &n)) in starts.iter().zip(lens).enumerate() {
            if s.checked_add(n).is_none_or(|end| end > values.len()) {
                return Err(KernelError::Shape(format!(
                    "row {row} spans [{s}, {s}+{n}) but the buffer holds {} values",
                    values.len()
                )));
            }
        }
        Ok(Rows {
            values,
            starts,
            lens,
        })
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    #[inline]
    pub fn row(&self, i: usize) -> &'a [T] {
        &self.values[self.starts[i]..self.starts[i] + self.lens[i]]
    }

    /// Width of the padded batch: the longest row, rounded up to a multiple.
    pub fn padded_width(&self, multiple: usize) -> usize {
        let longest = self.lens.iter().copied().max().unwrap_or(0);
        match multiple {
            0 | 1 => longest,
            m => longest.div_ceil(m) * m,
        }
    }
}

/// Where a row of `len` tokens starts inside an output row of `width`.
#[inline]
pub fn content_offset(len: usize, width: usize, left: bool) -> usize {
    if left {
        width - len
    } else {
        0
    }
}

/// Copy one row into its padded slot, checking ids against the vocabulary, and fill the
/// padding and the attention mask (1 on the row, 0 on padding). `pad_id` may be `None` only
/// when the row fills the slot.
#[inline]
pub fn pad_row<T: TokenId>(
    row_index: usize,
    src: &[T],
    vocab_size: usize,
    pad_id: Option<i64>,
    left: bool,
    ids: &mut [i64],
    attention: &mut [i64],
) -> Result<(), KernelError> {
    let width = ids.len();
    if src.len() > width {
        return Err(KernelError::RowTooLong {
            row: row_index,
            len: src.len(),
            width,
        });
    }
    let pad_id = match pad_id {
        Some(p) => p,
        None if src.len() == width => 0,
        None => {
            return Err(KernelError::Config(format!(
                "row {row_index} has {} tokens but the batch is {width} wide, and there is no \
                 pad token to pad it with",
                src.len()
            )))
        }
    };
    let off = content_offset(src.len(), width, left);
    let (before, rest) = ids.split_at_mut(off);
    let (content, after) = rest.split_at_mut(src.len());
    before.fill(pad_id);
    after.fill(pad_id);
    // Check first (a branch-free pass the compiler vectorises), locate the culprit only on error.
    let vocab = vocab_size as u64;
    if !src.iter().all(|&v| (v.to_i64() as u64) < vocab) {
        let col = src
            .iter()
            .position(|&v| (v.to_i64() as u64) >= vocab)
            .unwrap_or(0);
        return Err(KernelError::IdOutOfRange {
            row: row_index,
            col,
            id: src[col].to_i64(),
            vocab_size,
        });
    }
    for (dst, &v) in content.iter_mut().zip(src) {
        *dst = v.to_i64();
    }
    attention[..off].fill(0);
    attention[off..off + src.len()].fill(1);
    attention[off + src.len()..].fill(0);
    Ok(())
}

/// Copy an aligned per-token column (e.g. `token_type_ids`) into its padded slot.
pub fn pad_aligned<T: TokenId>(src: &[T], fill: i64, left: bool, out: &mut [i64]) {
    let off = content_offset(src.len(), out.len(), left);
    out[..off].fill(fill);
    for (dst, &v) in out[off..off + src.len()].iter_mut().zip(src) {
        *dst = v.to_i64();
    }
    out[off + src.len()..].fill(fill);
}

/// Which positions at the padding-side end of a row are surplus padding, left out of its content
/// (never out of the output: the batch keeps its width and every input position keeps its place).
#[derive(Clone, Copy)]
pub enum Trim<'a> {
    /// Nothing can be told apart from content (no pad token, or a pad id that is also another
    /// special token and no attention mask).
    Nothing,
    /// Tokens with the pad id, when that id is no other special token of the tokenizer.
    PadIds(i64),
    /// Tokens with the pad id whose given attention (aligned with the values) is 0.
    Unattended { pad_id: i64, attention: &'a [i64] },
}

impl Trim<'_> {
    #[inline]
    fn surplus<T: TokenId>(&self, values: &[T], k: usize) -> bool {
        match *self {
            Trim::Nothing => false,
            Trim::PadIds(pad) => values[k].to_i64() == pad,
            Trim::Unattended { pad_id, attention } => {
                attention[k] == 0 && values[k].to_i64() == pad_id
            }
        }
    }
}

/// Shrink each row's range to leave out the surplus padding at its padding-side end (the
/// start with left padding, the end otherwise), so rows that arrive already padded
/// (`padding="max_length"`, a padded 2-D batch) are masked and keyed like unpadded ones.
pub fn trim_padding<T: TokenId>(
    values: &[T],
    starts: &mut [usize],
    lens: &mut [usize],
    trim: &Trim,
    left: bool,
) {
    if matches!(trim, Trim::Nothing) {
        return;
    }
    for (s, n) in starts.iter_mut().zip(lens.iter_mut()) {
        let range = *s..*s + *n;
        let cut = if left {
            range.take_while(|&k| trim.surplus(values, k)).count()
        } else {
            range.rev().take_while(|&k| trim.surplus(values, k)).count()
        };
        if left {
            *s += cut;
        }
        *n -= cut;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_right_and_left() {
        let src = [5i32, 6, 7];
        let mut ids = [9i64; 5];
        let mut att = [9i64; 5];
        pad_row(0, &src, 10, Some(0), false, &mut ids, &mut att).unwrap();
        assert_eq!(ids, [5, 6, 7, 0, 0]);
        assert_eq!(att, [1, 1, 1, 0, 0]);
        pad_row(0, &src, 10, Some(0), true, &mut ids, &mut att).unwrap();
        assert_eq!(ids, [0, 0, 5, 6, 7]);
        assert_eq!(att, [0, 0, 1, 1, 1]);
    }

    #[test]
    fn rejects_out_of_vocab_and_negative_ids() {
        let mut ids = [0i64; 3];
        let mut att = [0i64; 3];
        let err = pad_row(4, &[1i64, 10], 10, Some(0), false, &mut ids, &mut att).unwrap_err();
        assert_eq!(
            err,
            KernelError::IdOutOfRange {
                row: 4,
                col: 1,
                id: 10,
                vocab_size: 10
            }
        );
        let err = pad_row(0, &[-1i64], 10, Some(0), false, &mut ids, &mut att).unwrap_err();
        assert!(matches!(err, KernelError::IdOutOfRange { id: -1, .. }));
        let err = pad_row(0, &[1i64; 4], 10, Some(0), false, &mut ids, &mut att).unwrap_err();
        assert!(matches!(
            err,
            KernelError::RowTooLong {
                len: 4,
                width: 3,
                ..
            }
        ));
    }

    #[test]
    fn rows_check_their_ranges_and_width() {
        let v = [1u16, 2, 3, 4, 5];
        assert!(Rows::new(&v, &[0, 3], &[3, 3]).is_err());
        let rows = Rows::new(&v, &[0, 3], &[3, 2]).unwrap();
        assert_eq!(rows.row(1), &[4, 5]);
        assert_eq!(rows.padded_width(1), 3);
        assert_eq!(rows.padded_width(8), 8);
        assert!(Rows::new(&v, &[0], &[1, 2]).is_err());
    }

    #[test]
    fn trims_surplus_padding_on_the_padding_side_only() {
        let v = [0i64, 0, 5, 0, 6, 0, 7, 7, 0];
        let (mut starts, mut lens) = ([0, 6], [6, 3]);
        trim_padding(&v, &mut starts, &mut lens, &Trim::PadIds(0), false);
        assert_eq!((starts, lens), ([0, 6], [5, 2]));
        let (mut starts, mut lens) = ([0, 6], [6, 3]);
        trim_padding(&v, &mut starts, &mut lens, &Trim::PadIds(0), true);
        assert_eq!((starts, lens), ([2, 6], [4, 3]));
        let (mut starts, mut lens) = ([0, 6], [6, 3]);
        trim_padding(&v, &mut starts, &mut lens, &Trim::Nothing, false);
        assert_eq!((starts, lens), ([0, 6], [6, 3]));
    }

    #[test]
    fn attended_pad_ids_are_content() {
        // pad id 0 shared with a real token: only unattended pad ids are surplus.
        let v = [5i64, 0, 0, 0];
        let attention = [1i64, 1, 0, 0];
        let (mut starts, mut lens) = ([0], [4]);
        let trim = Trim::Unattended {
            pad_id: 0,
            attention: &attention,
        };
        trim_padding(&v, &mut starts, &mut lens, &trim, false);
        assert_eq!((starts, lens), ([0], [2]));
        // an unattended token that is not the pad id is content too
        let v = [5i64, 6, 0];
        let attention = [1i64, 0, 0];
        let (mut starts, mut lens) = ([0], [3]);
        let trim = Trim::Unattended {
            pad_id: 0,
            attention: &attention,
        };
        trim_padding(&v, &mut starts, &mut lens, &trim, false);
        assert_eq!((starts, lens), ([0], [2]));
    }

    #[test]
    fn missing_pad_token_is_an_error_only_when_padding() {
        let mut ids = [9i64; 3];
        let mut att = [9i64; 3];
        pad_row(0, &[1i64, 2, 3], 10, None, false, &mut ids, &mut att).unwrap();
        assert_eq!((ids, att), ([1, 2, 3], [1, 1, 1]));
        let err = pad_row(2, &[1i64, 2], 10, None, false, &mut ids, &mut att).unwrap_err();
        assert!(err.to_string().contains("row 2 has 2 tokens"));
    }

    #[test]
    fn aligned_columns_follow_the_padding_side() {
        let mut out = [7i64; 4];
        pad_aligned(&[1u8, 1], 0, true, &mut out);
        assert_eq!(out, [0, 0, 1, 1]);
    }
}
