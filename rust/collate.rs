//! One pass over a batch: pad each row into the output, then select and replace its tokens.

use crate::error::KernelError;
use crate::masking::{mask_row, MaskSpec, Vocab, IGNORE_INDEX};
use crate::padding::{content_offset, pad_row, Rows, TokenId};
use crate::rng::Murmur;
use crate::words::{self, WordMasking};

/// How each row's random stream is keyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyMode {
    /// `hash(batch_words ++ [row_index])`: a fresh stream per batch slot.
    RowIndex,
    /// `hash(batch_words ++ content token ids)`: the same row always gets the same masks.
    Content,
}

pub struct Collate<'a> {
    pub vocab: Vocab<'a>,
    pub spec: MaskSpec,
    pub mlm: bool,
    pub pad_id: i64,
    pub left: bool,
    pub key_words: &'a [u32],
    pub key_mode: KeyMode,
}

pub struct Outputs<'a> {
    pub ids: &'a mut [i64],
    pub labels: &'a mut [i64],
    pub attention: &'a mut [i64],
    pub width: usize,
}

/// The key of one row's random streams (see `rng` for the algorithm).
pub fn row_key(key_words: &[u32], mode: KeyMode, row_index: usize, content: &[i64]) -> u32 {
    let mut m = Murmur::new(0);
    for &w in key_words {
        m.push(w);
    }
    match mode {
        KeyMode::RowIndex => m.push(row_index as u32),
        KeyMode::Content => content.iter().for_each(|&t| m.push(t as u32)),
    }
    m.finish()
}

impl Collate<'_> {
    fn check(&self) -> Result<(), KernelError> {
        let size = self.vocab.size();
        if self.mlm {
            if self.spec.mask_id < 0 || self.spec.mask_id as u64 >= size as u64 {
                return Err(KernelError::Config(format!(
                    "mask token id {} is outside the vocabulary [0, {size})",
                    self.spec.mask_id
                )));
            }
            if self.spec.random_below > self.spec.mask_below && self.vocab.random_ids.is_empty() {
                return Err(KernelError::Config(
                    "random replacement is enabled but there are no candidate ids".into(),
                ));
            }
        }
        Ok(())
    }
}

/// How a row's masked positions are chosen.
pub enum Selection<'a> {
    /// Each token on its own (`masking::mask_row`).
    Tokens,
    /// Whole words or spans of whole words (`words::mask_row`).
    Words(WordMasking<'a>),
}

pub fn collate<T: TokenId>(
    rows: &Rows<T>,
    special: Option<&[u8]>,
    cfg: &Collate,
    out: Outputs,
) -> Result<(), KernelError> {
    collate_with(rows, special, cfg, &Selection::Tokens, out)
}

pub fn collate_with<T: TokenId>(
    rows: &Rows<T>,
    special: Option<&[u8]>,
    cfg: &Collate,
    selection: &Selection,
    out: Outputs,
) -> Result<(), KernelError> {
    cfg.check()?;
    if let Selection::Words(w) = selection {
        w.boundaries.check(cfg.vocab.size(), rows.values.len())?;
    }
    let (n, w) = (rows.len(), out.width);
    for (name, buf) in [
        ("input_ids", &out.ids),
        ("labels", &out.labels),
        ("attention_mask", &out.attention),
    ] {
        if buf.len() != n * w {
            return Err(KernelError::Shape(format!(
                "output {name} holds {} values, expected {n} x {w}",
                buf.len()
            )));
        }
    }
    if let Some(s) = special {
        if s.len() != rows.values.len() {
            return Err(KernelError::Shape(format!(
                "special_tokens_mask holds {} values but input_ids holds {}",
                s.len(),
                rows.values.len()
            )));
        }
    }
    let mut scratch = Vec::new();
    let mut word_scratch = words::Scratch::default();
    let chunks = out
        .ids
        .chunks_exact_mut(w.max(1))
        .zip(out.labels.chunks_exact_mut(w.max(1)))
        .zip(out.attention.chunks_exact_mut(w.max(1)));
    for (i, ((ids, labels), attention)) in chunks.enumerate().take(n) {
        let src = rows.row(i);
        pad_row(
            i,
            src,
            cfg.vocab.size(),
            cfg.pad_id,
            cfg.left,
            ids,
            attention,
        )?;
        labels.fill(IGNORE_INDEX);
        let off = content_offset(src.len(), w, cfg.left);
        let range = off..off + src.len();
        if !cfg.mlm {
            for (l, &id) in labels[range.clone()].iter_mut().zip(&ids[range]) {
                *l = if id == cfg.pad_id { IGNORE_INDEX } else { id };
            }
            continue;
        }
        let content = &mut ids[range.clone()];
        let key = row_key(cfg.key_words, cfg.key_mode, i, content);
        let extra = special.map(|s| &s[rows.starts[i]..rows.starts[i] + src.len()]);
        match selection {
            Selection::Tokens => mask_row(
                content,
                &mut labels[range],
                extra,
                &cfg.vocab,
                &cfg.spec,
                key,
                &mut scratch,
            ),
            Selection::Words(w) => words::mask_row(
                content,
                &mut labels[range],
                extra,
                w.boundaries.row(rows.starts[i], src.len()),
                &cfg.vocab,
                &cfg.spec,
                w,
                key,
                &mut word_scratch,
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

    fn run(
        values: &[i64],
        starts: &[usize],
        lens: &[usize],
        width: usize,
        left: bool,
        mode: KeyMode,
        words: &[u32],
    ) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
        let (sp, rnd) = tables();
        let cfg = Collate {
            vocab: Vocab {
                is_special: &sp,
                random_ids: &rnd,
            },
            spec: MaskSpec::new(0.3, 0.8, 0.1, Count::Bernoulli, usize::MAX, 3).unwrap(),
            mlm: true,
            pad_id: 0,
            left,
            key_words: words,
            key_mode: mode,
        };
        let n = starts.len();
        let (mut ids, mut labels, mut att) =
            (vec![0; n * width], vec![0; n * width], vec![0; n * width]);
        let rows = Rows::new(values, starts, lens).unwrap();
        collate(
            &rows,
            None,
            &cfg,
            Outputs {
                ids: &mut ids,
                labels: &mut labels,
                attention: &mut att,
                width,
            },
        )
        .unwrap();
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
            false,
            KeyMode::Content,
            &[1, 2],
        );
        let (ids_l, lab_l, att_l) = run(&row, &[0], &[50], 50, true, KeyMode::Content, &[1, 2]);
        assert_eq!(&ids_r[64..64 + 50], &ids_l[..]);
        assert_eq!(&lab_r[64..64 + 50], &lab_l[..]);
        assert_eq!(&ids_r[64 + 50..], &[0; 14]);
        assert_eq!(&lab_r[64 + 50..], &[IGNORE_INDEX; 14]);
        assert!(att_l.iter().all(|&a| a == 1));
        // A different epoch/seed word changes the masks.
        let (_, lab_e, _) = run(&row, &[0], &[50], 50, true, KeyMode::Content, &[1, 3]);
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
            false,
            KeyMode::RowIndex,
            &[5],
        );
        assert_ne!(&labels[..100], &labels[100..]);
    }

    #[test]
    fn errors_name_the_problem() {
        let (sp, rnd) = tables();
        let cfg = Collate {
            vocab: Vocab {
                is_special: &sp,
                random_ids: &rnd,
            },
            spec: MaskSpec::new(0.3, 0.8, 0.1, Count::Bernoulli, usize::MAX, 3).unwrap(),
            mlm: true,
            pad_id: 0,
            left: false,
            key_words: &[],
            key_mode: KeyMode::RowIndex,
        };
        let values = [5i64, 2000];
        let rows = Rows::new(&values, &[0], &[2]).unwrap();
        let (mut a, mut b, mut c) = (vec![0; 2], vec![0; 2], vec![0; 2]);
        let err = collate(
            &rows,
            None,
            &cfg,
            Outputs {
                ids: &mut a,
                labels: &mut b,
                attention: &mut c,
                width: 2,
            },
        )
        .unwrap_err();
        assert!(err
            .to_string()
            .contains("token id 2000 at row 0, position 1"));
        let err = collate(
            &rows,
            None,
            &cfg,
            Outputs {
                ids: &mut a,
                labels: &mut b,
                attention: &mut c,
                width: 3,
            },
        )
        .unwrap_err();
        assert!(matches!(err, KernelError::Shape(_)));
    }
}
