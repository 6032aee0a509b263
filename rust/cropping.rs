//! Cropping rows to a window of at most `max_length` tokens (short sequences first).
//!
//! `crop_rows` returns, for each row of a batch, the flat positions of the tokens its cropped
//! version keeps, row after row, so that every column aligned with the token ids is cut by one
//! gather. For row `i` of `n` tokens:
//!
//! * `n <= max_length`: every token, in order;
//! * `n > max_length` and the row starts with `prefix` and ends with `suffix` (the tokenizer's
//!   single-sequence special tokens, e.g. `[CLS]` / `[SEP]`): the prefix, a window of
//!   `m = max_length - |prefix| - |suffix|` consecutive tokens of the body between them, then the
//!   suffix, so `[CLS] ... [SEP]` stays `[CLS] window [SEP]`;
//! * any other longer row: a window of `m = max_length` consecutive tokens.
//!
//! The window starts at body offset `index(Lane::new(row_key, LANE_CROP).at(0), b - m + 1)`,
//! where `b` is the body's length (the whole row without a template) and `row_key` is the row's
//! key as the masks compute it (`collate::row_key` with the batch's key words: the row index in
//! seeded modes, the row's tokens, uncropped, in keyed mode). See `rng` for `Lane` and `index`.

use crate::collate::{row_key, KeyMode};
use crate::error::KernelError;
use crate::padding::{Rows, TokenId};
use crate::rng::{self, Lane, LANE_CROP};

pub struct Crop<'a> {
    pub max_length: usize,
    pub prefix: &'a [i64],
    pub suffix: &'a [i64],
    pub key_words: &'a [u32],
    pub key_mode: KeyMode,
}

/// Whether `row` begins with `prefix` and ends with `suffix`, as separate tokens.
fn carries<T: TokenId>(row: &[T], prefix: &[i64], suffix: &[i64]) -> bool {
    row.len() >= prefix.len() + suffix.len()
        && row.iter().zip(prefix).all(|(&t, &p)| t.to_i64() == p)
        && row[row.len() - suffix.len()..]
            .iter()
            .zip(suffix)
            .all(|(&t, &s)| t.to_i64() == s)
}

/// Where the window of a row of `body` tokens starts, for a window of `window` tokens.
pub fn window_start(key: u32, body: usize, window: usize) -> usize {
    rng::index(Lane::new(key, LANE_CROP).at(0), body - window + 1)
}

/// The rows after cropping, over the gathered values: `index` holds the input's flat positions
/// they keep, row after row; `starts`/`lens` are the rows (with the padding they keep) and
/// `content_starts`/`content_lens` their content.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cropped {
    pub index: Vec<i64>,
    pub starts: Vec<usize>,
    pub lens: Vec<usize>,
    pub content_starts: Vec<usize>,
    pub content_lens: Vec<usize>,
}

/// Crop `rows` (as given) whose content (`content_starts`/`content_lens`: each row without
/// its surplus padding, absolute offsets) is described alongside. A row that fits, padding
/// included, is kept whole; a longer one loses its surplus padding and, if its content is still
/// longer than `max_length`, becomes a window.
pub fn crop_rows<T: TokenId>(
    rows: &Rows<T>,
    content_starts: &[usize],
    content_lens: &[usize],
    crop: &Crop,
) -> Result<Cropped, KernelError> {
    let limit = crop.max_length;
    if limit == 0 {
        return Err(KernelError::Config("max_length must be at least 1".into()));
    }
    let n_rows = rows.len();
    if content_starts.len() != n_rows || content_lens.len() != n_rows {
        return Err(KernelError::Shape(format!(
            "{n_rows} rows but {} content starts and {} content lengths",
            content_starts.len(),
            content_lens.len()
        )));
    }
    let (p, q) = (crop.prefix.len(), crop.suffix.len());
    let mut out = Cropped {
        index: Vec::with_capacity(rows.lens.iter().map(|&n| n.min(limit)).sum()),
        starts: Vec::with_capacity(n_rows),
        lens: Vec::with_capacity(n_rows),
        content_starts: Vec::with_capacity(n_rows),
        content_lens: Vec::with_capacity(n_rows),
    };
    for i in 0..n_rows {
        let (start, len) = (rows.starts[i], rows.lens[i]);
        let (cs, cl) = (content_starts[i], content_lens[i]);
        if cs < start || cs + cl > start + len {
            return Err(KernelError::Shape(format!(
                "the content of row {i} lies outside the row"
            )));
        }
        let at = out.index.len();
        out.starts.push(at);
        if len <= limit {
            out.index.extend((start..start + len).map(|k| k as i64));
            out.lens.push(len);
            out.content_starts.push(at + cs - start);
            out.content_lens.push(cl);
            continue;
        }
        out.content_starts.push(at);
        if cl <= limit {
            out.index.extend((cs..cs + cl).map(|k| k as i64));
            out.lens.push(cl);
            out.content_lens.push(cl);
            continue;
        }
        let row = &rows.values[cs..cs + cl];
        let wrapped = p + q > 0 && carries(row, crop.prefix, crop.suffix);
        if wrapped && limit <= p + q {
            return Err(KernelError::Config(format!(
                "max_length={limit} leaves no room for tokens between the {} special tokens of \
                 row {i}",
                p + q
            )));
        }
        let (head, tail) = if wrapped { (p, q) } else { (0, 0) };
        let body = cl - head - tail;
        let window = limit - head - tail;
        let key = row_key(crop.key_words, crop.key_mode, i, row);
        let from = cs + head + window_start(key, body, window);
        out.index.extend((cs..cs + head).map(|k| k as i64));
        out.index.extend((from..from + window).map(|k| k as i64));
        out.index
            .extend((cs + cl - tail..cs + cl).map(|k| k as i64));
        out.lens.push(limit);
        out.content_lens.push(limit);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crop_all(values: &[i64], starts: &[usize], lens: &[usize], crop: &Crop) -> Cropped {
        let rows = Rows::new(values, starts, lens).unwrap();
        crop_rows(&rows, starts, lens, crop).unwrap()
    }

    fn run(values: &[i64], starts: &[usize], lens: &[usize], crop: &Crop) -> Vec<Vec<i64>> {
        let out = crop_all(values, starts, lens, crop);
        out.starts
            .iter()
            .zip(&out.lens)
            .map(|(&s, &n)| {
                out.index[s..s + n]
                    .iter()
                    .map(|&k| values[k as usize])
                    .collect()
            })
            .collect()
    }

    fn spec<'a>(limit: usize, prefix: &'a [i64], suffix: &'a [i64], words: &'a [u32]) -> Crop<'a> {
        Crop {
            max_length: limit,
            prefix,
            suffix,
            key_words: words,
            key_mode: KeyMode::RowIndex,
        }
    }

    #[test]
    fn short_rows_are_kept_and_long_ones_become_windows() {
        // row 0: [CLS]=1 10..30 [SEP]=2 (22 tokens); row 1: 5 tokens; row 2: no template.
        let mut values: Vec<i64> = vec![1];
        values.extend(10..30);
        values.push(2);
        values.extend([7, 8, 9, 10, 11]);
        values.extend(100..120);
        let out = run(
            &values,
            &[0, 22, 27],
            &[22, 5, 20],
            &spec(8, &[1], &[2], &[3, 4]),
        );
        assert_eq!(out[1], vec![7, 8, 9, 10, 11]);
        let r0 = &out[0];
        assert_eq!(r0.len(), 8);
        assert_eq!((r0[0], r0[7]), (1, 2));
        assert!(r0[1..7].windows(2).all(|w| w[1] == w[0] + 1) && r0[1] >= 10 && r0[6] < 30);
        let r2 = &out[2];
        assert_eq!(r2.len(), 8);
        assert!(r2.windows(2).all(|w| w[1] == w[0] + 1) && r2[0] >= 100 && r2[7] < 120);
    }

    #[test]
    fn the_start_is_the_documented_draw() {
        let values: Vec<i64> = (0..50).collect();
        let words = [9u32, 9, 9];
        let out = run(&values, &[0], &[50], &spec(10, &[], &[], &words));
        let key = row_key(&words, KeyMode::RowIndex, 0, &values[..]);
        let expect = rng::index(Lane::new(key, LANE_CROP).at(0), 41) as i64;
        assert_eq!(out[0][0], expect);
        // keyed: the key follows the row's tokens, not its index
        let mut doubled = values.clone();
        doubled.extend(&values);
        let keyed = Crop {
            key_mode: KeyMode::Content,
            ..spec(10, &[], &[], &words)
        };
        let out = crop_all(&doubled, &[0, 50], &[50, 50], &keyed);
        assert_eq!(out.index[0] + 50, out.index[10]);
    }

    #[test]
    fn every_start_is_reachable_and_roughly_uniform() {
        let values: Vec<i64> = (0..12).collect();
        let mut counts = [0usize; 5];
        for b in 0..5000u32 {
            let out = run(&values, &[0], &[12], &spec(8, &[], &[], &[b]));
            counts[out[0][0] as usize] += 1;
        }
        // 5000 draws over 5 starts: 1000 each, sd ~28
        assert!(
            counts.iter().all(|&c| (850..1150).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn a_row_without_the_template_is_cut_plainly_and_no_room_is_an_error() {
        let values: Vec<i64> = vec![1, 5, 6, 7, 8, 9];
        let out = run(&values, &[0], &[6], &spec(3, &[1], &[2], &[0]));
        assert!(values.windows(3).any(|w| w == &out[0][..]), "{:?}", out[0]);
        let values: Vec<i64> = vec![1, 5, 6, 7, 2];
        let rows = Rows::new(&values[..], &[0], &[5]).unwrap();
        let err = crop_rows(&rows, &[0], &[5], &spec(2, &[1], &[2], &[0])).unwrap_err();
        assert!(
            err.to_string().contains("max_length=2 leaves no room"),
            "{err}"
        );
    }

    #[test]
    fn surplus_padding_goes_before_a_crop_and_rows_that_fit_keep_it() {
        // rows of 6 with content [0, 3) (padding 0 0 0 after it) and [0, 6)
        let values: Vec<i64> = vec![5, 6, 7, 0, 0, 0, 1, 20, 21, 22, 23, 2];
        let rows = Rows::new(&values[..], &[0, 6], &[6, 6]).unwrap();
        let crop = spec(4, &[1], &[2], &[0]);
        let out = crop_rows(&rows, &[0, 6], &[3, 6], &crop).unwrap();
        assert_eq!(out.lens, vec![3, 4]);
        assert_eq!(&out.index[..3], &[0, 1, 2]);
        assert_eq!((out.index[3], out.index[6]), (6, 11));
        assert_eq!(out.starts, vec![0, 3]);
        assert_eq!(
            (out.content_starts, out.content_lens),
            (vec![0, 3], vec![3, 4])
        );
        // a row that fits with its padding keeps it, and its content keeps its offset
        let wide = spec(6, &[1], &[2], &[0]);
        let out = crop_rows(&rows, &[0, 6], &[3, 6], &wide).unwrap();
        assert_eq!(out.index, (0..12).collect::<Vec<i64>>());
        assert_eq!(
            (out.content_starts, out.content_lens),
            (vec![0, 6], vec![3, 6])
        );
        let err = crop_rows(&rows, &[4, 6], &[3, 6], &wide).unwrap_err();
        assert!(err.to_string().contains("outside the row"));
    }
}
