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
    /// `None` when the tokenizer has no pad token (only batches that need no padding work).
    pub pad_id: Option<i64>,
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

/// Per-token inputs aligned with the token ids (same flat offsets).
#[derive(Clone, Copy, Default)]
pub struct Aligned<'a> {
    /// `special_tokens_mask`: non-zero tokens are never selected.
    pub special: Option<&'a [u8]>,
    /// The rows' own `attention_mask` (0 or 1), copied to the output on each row.
    pub attention: Option<&'a [i64]>,
}

pub fn collate<T: TokenId>(
    rows: &Rows<T>,
    aligned: Aligned,
    cfg: &Collate,
    out: Outputs,
) -> Result<(), KernelError> {
    collate_with(rows, aligned, cfg, &Selection::Tokens, out)
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

pub fn collate_with<T: TokenId>(
    rows: &Rows<T>,
    aligned: Aligned,
    cfg: &Collate,
    selection: &Selection,
    out: Outputs,
) -> Result<(), KernelError> {
    let special = aligned.special;
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
    for (name, len) in [
        ("special_tokens_mask", special.map(<[u8]>::len)),
        ("attention_mask", aligned.attention.map(<[i64]>::len)),
    ] {
        if let Some(len) = len.filter(|&l| l != rows.values.len()) {
            return Err(KernelError::Shape(format!(
                "{name} holds {len} values but input_ids holds {}",
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
        if let Some(given) = aligned.attention {
            let given = &given[rows.starts[i]..rows.starts[i] + src.len()];
            check_attention(given, i)?;
            attention[range.clone()].copy_from_slice(given);
        }
        if !cfg.mlm {
            // As transformers: every pad-id token gets no label (with pad = eos, eos too).
            for (l, &id) in labels[range.clone()].iter_mut().zip(&ids[range]) {
                *l = if Some(id) == cfg.pad_id {
                    IGNORE_INDEX
                } else {
                    id
                };
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
            pad_id: Some(0),
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
            Aligned::default(),
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
            pad_id: Some(0),
            left: false,
            key_words: &[],
            key_mode: KeyMode::RowIndex,
        };
        let values = [5i64, 2000];
        let rows = Rows::new(&values, &[0], &[2]).unwrap();
        let (mut a, mut b, mut c) = (vec![0; 2], vec![0; 2], vec![0; 2]);
        let err = collate(
            &rows,
            Aligned::default(),
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
            Aligned::default(),
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

    #[test]
    fn given_attention_is_copied_and_checked() {
        let (sp, rnd) = tables();
        let cfg = Collate {
            vocab: Vocab {
                is_special: &sp,
                random_ids: &rnd,
            },
            spec: MaskSpec::new(0.0, 0.8, 0.1, Count::Bernoulli, usize::MAX, 3).unwrap(),
            mlm: false,
            pad_id: Some(2),
            left: true,
            key_words: &[],
            key_mode: KeyMode::RowIndex,
        };
        // pad id 2 doubles as [SEP]: an attended trailing 2 keeps attention and gets no label
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
        let aligned = Aligned {
            special: None,
            attention: Some(&given),
        };
        collate(&rows, aligned, &cfg, out).unwrap();
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
        let aligned = Aligned {
            special: None,
            attention: Some(&bad),
        };
        let err = collate(&rows, aligned, &cfg, out).unwrap_err();
        assert!(
            err.to_string().contains("row 0, position 1 holds 2"),
            "{err}"
        );
    }
}
