//! One pass over a batch: pad each row into the output, then label it (copy its ids, or select
//! and replace its tokens for masked-language modelling).

use crate::error::KernelError;
use crate::masking::{mask_row, MaskSpec, Vocab, IGNORE_INDEX};
use crate::padding::{content_offset, pad_row, Rows, Side, TokenId};
use crate::rng::Murmur;
use crate::words::{self, Boundaries, WordMasking};

/// How each row's random stream is keyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyMode {
    /// `hash(batch_words ++ [row_index])`: a fresh stream per batch slot.
    RowIndex,
    /// `hash(batch_words ++ content token ids)`: the same row always gets the same masks.
    Content,
}

/// How a row's masked positions are chosen.
#[derive(Clone, Debug)]
pub enum Selection {
    /// Each token on its own (`masking::mask_row`).
    Tokens,
    /// Whole words or spans of whole words (`words::mask_row`).
    Words(WordMasking),
}

/// How the labels of a batch are made.
#[derive(Clone, Debug)]
pub enum Labels {
    /// The ids themselves, without the pad-id tokens (transformers' `mlm=False`).
    Copied,
    /// Masked-language modelling: the selected tokens, which are then replaced.
    Masked {
        spec: MaskSpec,
        selection: Selection,
    },
}

/// A collation's settings, fixed for a collator's configuration (each part validated when it
/// was built: `MaskSpec::new`, `words::Lengths`, `words::SpanSpec::new`).
#[derive(Clone, Debug)]
pub struct Collate {
    pub side: Side,
    pub key_mode: KeyMode,
    pub labels: Labels,
}

/// One batch: its rows (each row's content, without surplus padding) and the per-token columns
/// aligned with them (same flat offsets as the rows' values).
#[derive(Clone, Copy)]
pub struct Batch<'a, T> {
    pub rows: Rows<'a, T>,
    /// `special_tokens_mask`: non-zero tokens are never selected.
    pub special: Option<&'a [u8]>,
    /// The rows' own `attention_mask` (0 or 1), copied to the output on each row.
    pub attention: Option<&'a [i64]>,
    /// Word boundaries, for whole-word selection.
    pub boundaries: Option<Boundaries<'a>>,
    /// The batch's words of every row key (see `row_key`).
    pub key_words: &'a [u32],
}

pub struct Outputs<'a> {
    pub ids: &'a mut [i64],
    pub labels: &'a mut [i64],
    pub attention: &'a mut [i64],
    pub width: usize,
}

/// The key of one row's random streams (see `rng` for the algorithm).
pub fn row_key<T: TokenId>(
    key_words: &[u32],
    mode: KeyMode,
    row_index: usize,
    content: &[T],
) -> u32 {
    let mut m = Murmur::new(0);
    for &w in key_words {
        m.push(w);
    }
    match mode {
        KeyMode::RowIndex => m.push(row_index as u32),
        KeyMode::Content => content.iter().for_each(|&t| m.push(t.to_i64() as u32)),
    }
    m.finish()
}

/// `values` is a row's attention over its content (positions count from the content start).
fn check_attention(values: &[i64], row: usize) -> Result<(), KernelError> {
    match values.iter().position(|&a| a != 0 && a != 1) {
        None => Ok(()),
        Some(j) => Err(KernelError::Config(format!(
            "attention_mask row {row}, position {j} holds {}: an attention mask holds 0 and 1",
            values[j]
        ))),
    }
}

/// Check that the batch's buffers fit together, the outputs and the settings.
fn check<T: TokenId>(
    cfg: &Collate,
    vocab: &Vocab,
    batch: &Batch<T>,
    out: &Outputs,
) -> Result<(), KernelError> {
    let values = batch.rows.values.len();
    if let Labels::Masked { spec, selection } = &cfg.labels {
        vocab.check_masking(spec)?;
        if let Selection::Words(_) = selection {
            match &batch.boundaries {
                Some(b) => b.check(vocab.size(), values)?,
                None => {
                    return Err(KernelError::Config(
                        "word masking needs word_ids or both starts_word and ends_word".into(),
                    ))
                }
            }
        }
    }
    let (n, w) = (batch.rows.len(), out.width);
    for (name, len) in [
        ("input_ids", out.ids.len()),
        ("labels", out.labels.len()),
        ("attention_mask", out.attention.len()),
    ] {
        if len != n * w {
            return Err(KernelError::Shape(format!(
                "output {name} holds {len} values, expected {n} x {w}"
            )));
        }
    }
    for (name, len) in [
        ("special_tokens_mask", batch.special.map(<[u8]>::len)),
        ("attention_mask", batch.attention.map(<[i64]>::len)),
    ] {
        if let Some(len) = len.filter(|&l| l != values) {
            return Err(KernelError::Shape(format!(
                "{name} holds {len} values but input_ids holds {values}"
            )));
        }
    }
    Ok(())
}

/// Pad every row of `batch` into `out` and label it as `cfg` says.
pub fn collate<T: TokenId>(
    cfg: &Collate,
    vocab: &Vocab,
    batch: &Batch<T>,
    out: Outputs,
) -> Result<(), KernelError> {
    check(cfg, vocab, batch, &out)?;
    let rows = &batch.rows;
    let w = out.width;
    let mut scratch = Vec::new();
    let mut word_scratch = words::Scratch::default();
    let chunks = out
        .ids
        .chunks_exact_mut(w.max(1))
        .zip(out.labels.chunks_exact_mut(w.max(1)))
        .zip(out.attention.chunks_exact_mut(w.max(1)));
    for (i, ((ids, labels), attention)) in chunks.enumerate().take(rows.len()) {
        let src = rows.row(i);
        let start = rows.starts[i];
        pad_row(i, src, vocab.size(), vocab.pad_id, cfg.side, ids, attention)?;
        labels.fill(IGNORE_INDEX);
        let off = content_offset(src.len(), w, cfg.side);
        let range = off..off + src.len();
        if let Some(given) = batch.attention {
            let given = &given[start..start + src.len()];
            check_attention(given, i)?;
            attention[range.clone()].copy_from_slice(given);
        }
        let (spec, selection) = match &cfg.labels {
            Labels::Masked { spec, selection } => (spec, selection),
            Labels::Copied => {
                // As transformers: every pad-id token gets no label (with pad = eos, eos too).
                for (l, &id) in labels[range.clone()].iter_mut().zip(&ids[range]) {
                    *l = if Some(id) == vocab.pad_id {
                        IGNORE_INDEX
                    } else {
                        id
                    };
                }
                continue;
            }
        };
        let content = &mut ids[range.clone()];
        let key = row_key(batch.key_words, cfg.key_mode, i, content);
        let special = batch.special.map(|s| &s[start..start + src.len()]);
        // `check` made sure that word selection has boundaries.
        match (selection, &batch.boundaries) {
            (Selection::Words(wm), Some(b)) => words::mask_row(
                content,
                &mut labels[range],
                special,
                b.row(start, src.len()),
                vocab,
                spec,
                wm,
                key,
                &mut word_scratch,
            ),
            _ => mask_row(
                content,
                &mut labels[range],
                special,
                vocab,
                spec,
                key,
                &mut scratch,
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::Count;

    fn tables() -> (Vec<u8>, Vec<i64>) {
        let mut sp = vec![0u8; 1000];
        sp[0] = 1; // pad
        sp[1] = 1; // cls
        sp[2] = 1; // sep
        sp[3] = 1; // mask
        let rnd = (4..1000).collect();
        (sp, rnd)
    }

    fn vocab<'a>(sp: &'a [u8], rnd: &'a [i64], pad_id: i64) -> Vocab<'a> {
        Vocab {
            is_special: sp,
            random_ids: rnd,
            mask_id: 3,
            pad_id: Some(pad_id),
        }
    }

    fn masked(p: f64, side: Side, key_mode: KeyMode) -> Collate {
        Collate {
            side,
            key_mode,
            labels: Labels::Masked {
                spec: MaskSpec::new(p, 0.8, 0.1, Count::Bernoulli, usize::MAX).unwrap(),
                selection: Selection::Tokens,
            },
        }
    }

    fn batch<'a>(rows: Rows<'a, i64>, key_words: &'a [u32]) -> Batch<'a, i64> {
        Batch {
            rows,
            special: None,
            attention: None,
            boundaries: None,
            key_words,
        }
    }

    fn run(
        values: &[i64],
        starts: &[usize],
        lens: &[usize],
        width: usize,
        side: Side,
        mode: KeyMode,
        words: &[u32],
    ) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
        let (sp, rnd) = tables();
        let cfg = masked(0.3, side, mode);
        let n = starts.len();
        let (mut ids, mut labels, mut att) =
            (vec![0; n * width], vec![0; n * width], vec![0; n * width]);
        let rows = Rows::new(values, starts, lens).unwrap();
        let out = Outputs {
            ids: &mut ids,
            labels: &mut labels,
            attention: &mut att,
            width,
        };
        collate(&cfg, &vocab(&sp, &rnd, 0), &batch(rows, words), out).unwrap();
        (ids, labels, att)
    }

    #[test]
    fn content_keys_ignore_padding_side_and_batch_position() {
        let row: Vec<i64> = (10..60).collect();
        let other: Vec<i64> = (100..120).collect();
        let mut values = other.clone();
        values.extend(&row);
        let (ids_r, lab_r, _) = run(
            &values,
            &[0, 20],
            &[20, 50],
            64,
            Side::Right,
            KeyMode::Content,
            &[1, 2],
        );
        let (ids_l, lab_l, att_l) =
            run(&row, &[0], &[50], 50, Side::Left, KeyMode::Content, &[1, 2]);
        assert_eq!(&ids_r[64..64 + 50], &ids_l[..]);
        assert_eq!(&lab_r[64..64 + 50], &lab_l[..]);
        assert_eq!(&ids_r[64 + 50..], &[0; 14]);
        assert_eq!(&lab_r[64 + 50..], &[IGNORE_INDEX; 14]);
        assert!(att_l.iter().all(|&a| a == 1));
        // A different epoch/seed word changes the masks.
        let (_, lab_e, _) = run(&row, &[0], &[50], 50, Side::Left, KeyMode::Content, &[1, 3]);
        assert_ne!(lab_e, lab_l);
    }

    #[test]
    fn row_index_keys_differ_between_slots() {
        let row: Vec<i64> = (10..110).collect();
        let mut values = row.clone();
        values.extend(&row);
        let (_, labels, _) = run(
            &values,
            &[0, 100],
            &[100, 100],
            100,
            Side::Right,
            KeyMode::RowIndex,
            &[5],
        );
        assert_ne!(&labels[..100], &labels[100..]);
    }

    #[test]
    fn errors_name_the_problem() {
        let (sp, rnd) = tables();
        let cfg = masked(0.3, Side::Right, KeyMode::RowIndex);
        let values = [5i64, 2000];
        let rows = Rows::new(&values, &[0], &[2]).unwrap();
        let (mut a, mut b, mut c) = (vec![0; 2], vec![0; 2], vec![0; 2]);
        let mut run = |width: usize, vocab: &Vocab| {
            let out = Outputs {
                ids: &mut a,
                labels: &mut b,
                attention: &mut c,
                width,
            };
            collate(&cfg, vocab, &batch(rows, &[]), out).unwrap_err()
        };
        let err = run(2, &vocab(&sp, &rnd, 0));
        assert!(err
            .to_string()
            .contains("token id 2000 at row 0, position 1"));
        assert!(matches!(
            run(3, &vocab(&sp, &rnd, 0)),
            KernelError::Shape(_)
        ));
        let no_mask = Vocab {
            mask_id: 1000,
            ..vocab(&sp, &rnd, 0)
        };
        assert!(run(2, &no_mask)
            .to_string()
            .contains("mask token id 1000 is outside the vocabulary [0, 1000)"));
        let no_candidates = Vocab {
            random_ids: &[],
            ..vocab(&sp, &rnd, 0)
        };
        assert!(run(2, &no_candidates)
            .to_string()
            .contains("no candidate ids"));
    }

    #[test]
    fn word_selection_needs_boundaries() {
        let (sp, rnd) = tables();
        let cfg = Collate {
            labels: Labels::Masked {
                spec: MaskSpec::new(0.3, 0.8, 0.1, Count::Bernoulli, usize::MAX).unwrap(),
                selection: Selection::Words(WordMasking {
                    units: words::Units::Words,
                    replace: words::Replace::PerUnit,
                }),
            },
            ..masked(0.3, Side::Right, KeyMode::RowIndex)
        };
        let values = [5i64, 6];
        let rows = Rows::new(&values, &[0], &[2]).unwrap();
        let (mut a, mut b, mut c) = (vec![0; 2], vec![0; 2], vec![0; 2]);
        let out = Outputs {
            ids: &mut a,
            labels: &mut b,
            attention: &mut c,
            width: 2,
        };
        let err = collate(&cfg, &vocab(&sp, &rnd, 0), &batch(rows, &[]), out).unwrap_err();
        assert!(
            err.to_string().contains("word masking needs word_ids"),
            "{err}"
        );
    }

    #[test]
    fn given_attention_is_copied_and_checked() {
        let (sp, rnd) = tables();
        let cfg = Collate {
            side: Side::Left,
            key_mode: KeyMode::RowIndex,
            labels: Labels::Copied,
        };
        // pad id 2 doubles as [SEP]: an attended trailing 2 keeps attention and gets no label
        let vocab = vocab(&sp, &rnd, 2);
        let values = [10i64, 0, 11, 2, 12];
        let given = [1i64, 0, 1, 1, 1];
        let rows = Rows::new(&values, &[0, 3], &[3, 2]).unwrap();
        let (mut ids, mut labels, mut att) = (vec![0; 8], vec![0; 8], vec![0; 8]);
        let out = Outputs {
            ids: &mut ids,
            labels: &mut labels,
            attention: &mut att,
            width: 4,
        };
        let with_attention = |attention| Batch {
            attention: Some(attention),
            ..batch(rows, &[])
        };
        collate(&cfg, &vocab, &with_attention(&given), out).unwrap();
        assert_eq!(ids, [2, 10, 0, 11, 2, 2, 2, 12]);
        assert_eq!(att, [0, 1, 0, 1, 0, 0, 1, 1]);
        assert_eq!(
            labels,
            [
                IGNORE_INDEX,
                10,
                0,
                11,
                IGNORE_INDEX,
                IGNORE_INDEX,
                IGNORE_INDEX,
                12
            ]
        );
        let bad = [1i64, 2, 1, 1, 1];
        let out = Outputs {
            ids: &mut ids,
            labels: &mut labels,
            attention: &mut att,
            width: 4,
        };
        let err = collate(&cfg, &vocab, &with_attention(&bad), out).unwrap_err();
        assert!(
            err.to_string().contains("row 0, position 1 holds 2"),
            "{err}"
        );
    }
}
