//! Token selection and 80/10/10 replacement for masked-language modelling.

use crate::error::KernelError;
use crate::rng::{self, Lane, LANE_RANDOM_TOKEN, LANE_REPLACE, LANE_SELECT};

pub const IGNORE_INDEX: i64 = -100;

/// How many tokens of a row are selected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// Each maskable token independently with the probability (transformers' behaviour).
    Bernoulli,
    /// `round(p * n)` of the `n` maskable tokens, at least one when `n > 0`.
    Exact,
}

/// Masking settings turned into integer thresholds.
#[derive(Clone, Debug)]
pub struct MaskSpec {
    pub probability: f64,
    pub select: u64,
    pub count: Count,
    /// Cap on selected tokens per row (`usize::MAX` for none).
    pub max_predictions: usize,
    /// A selected token becomes `[MASK]` when its replacement draw is below this...
    pub mask_below: u64,
    /// ...a random token when below this, and stays itself otherwise.
    pub random_below: u64,
}

impl MaskSpec {
    pub fn new(
        probability: f64,
        mask_replace_prob: f64,
        random_replace_prob: f64,
        count: Count,
        max_predictions: usize,
    ) -> Result<Self, KernelError> {
        check_probability("mlm_probability", probability)?;
        check_probability("mask_replace_prob", mask_replace_prob)?;
        check_probability("random_replace_prob", random_replace_prob)?;
        if mask_replace_prob + random_replace_prob > 1.0 + 1e-12 {
            return Err(KernelError::Config(format!(
                "mask_replace_prob + random_replace_prob must not exceed 1, got \
                 {mask_replace_prob} + {random_replace_prob}"
            )));
        }
        let mask_below = rng::threshold(mask_replace_prob);
        Ok(MaskSpec {
            probability,
            select: rng::threshold(probability),
            count,
            max_predictions,
            mask_below,
            random_below: rng::threshold(mask_replace_prob + random_replace_prob).max(mask_below),
        })
    }

    /// Number of tokens an exact-count row of `n` maskable tokens selects.
    pub fn exact_count(&self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let k = (self.probability * n as f64 + 0.5).floor() as usize;
        k.clamp(1, n).min(self.max_predictions)
    }
}

/// A probability setting: a number in `[0, 1]` (NaN is not).
pub fn check_probability(name: &str, p: f64) -> Result<(), KernelError> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(KernelError::Config(format!(
            "{name} must be a number in [0, 1], got {p}"
        )))
    }
}

/// What the kernels need of a tokenizer, computed once per tokenizer.
#[derive(Clone, Copy)]
pub struct Vocab<'a> {
    /// Non-zero for ids that are never selected (special and added special tokens, padding).
    pub is_special: &'a [u8],
    /// Ids a selected token may be replaced with at random.
    pub random_ids: &'a [i64],
    /// What a selected token becomes when it is masked.
    pub mask_id: i64,
    /// `None` when the tokenizer has no pad token (only batches that need no padding work).
    pub pad_id: Option<i64>,
}

impl Vocab<'_> {
    pub fn size(&self) -> usize {
        self.is_special.len()
    }

    /// Whether masking with `spec` can use these tables: the mask id is in the vocabulary, and
    /// there are ids to draw from when random replacement is on.
    pub fn check_masking(&self, spec: &MaskSpec) -> Result<(), KernelError> {
        let size = self.size();
        if self.mask_id < 0 || self.mask_id as u64 >= size as u64 {
            return Err(KernelError::Config(format!(
                "mask token id {} is outside the vocabulary [0, {size})",
                self.mask_id
            )));
        }
        if spec.random_below > spec.mask_below && self.random_ids.is_empty() {
            return Err(KernelError::Config(
                "random replacement is enabled but there are no candidate ids".into(),
            ));
        }
        Ok(())
    }
}

/// Replace one selected position according to its replacement draws.
#[inline(always)]
pub(crate) fn replace(
    j: usize,
    ids: &mut [i64],
    labels: &mut [i64],
    spec: &MaskSpec,
    vocab: &Vocab,
    replace: &Lane,
    token: &Lane,
) {
    labels[j] = ids[j];
    let v = replace.at(j as u32);
    if rng::below(v, spec.mask_below) {
        ids[j] = vocab.mask_id;
    } else if rng::below(v, spec.random_below) {
        ids[j] = vocab.random_ids[rng::index(token.at(j as u32), vocab.random_ids.len())];
    }
}

/// Mask one row in place. `ids` and `labels` cover the row's content only (no padding), and
/// `labels` is already `IGNORE_INDEX`. Position `j` is counted from the first content token, so
/// the padding side does not change which tokens are selected.
pub fn mask_row(
    ids: &mut [i64],
    labels: &mut [i64],
    extra_special: Option<&[u8]>,
    vocab: &Vocab,
    spec: &MaskSpec,
    row_key: u32,
    scratch: &mut Vec<u64>,
) {
    match extra_special {
        None => select_and_replace(ids, labels, |_| true, vocab, spec, row_key, scratch),
        Some(m) => select_and_replace(ids, labels, |j| m[j] == 0, vocab, spec, row_key, scratch),
    }
}

#[inline(always)]
fn select_and_replace(
    ids: &mut [i64],
    labels: &mut [i64],
    allowed: impl Fn(usize) -> bool,
    vocab: &Vocab,
    spec: &MaskSpec,
    row_key: u32,
    scratch: &mut Vec<u64>,
) {
    let select = Lane::new(row_key, LANE_SELECT);
    let rep = Lane::new(row_key, LANE_REPLACE);
    let tok = Lane::new(row_key, LANE_RANDOM_TOKEN);
    let n = ids.len();
    scratch.clear();
    scratch.resize(n, 0);
    let mut k = 0;
    if spec.count == Count::Bernoulli && spec.max_predictions == usize::MAX {
        // Branch-free: every position is written, the count only advances for selected ones.
        for (j, &id) in ids.iter().enumerate() {
            let hit = (vocab.is_special[id as usize] == 0)
                & allowed(j)
                & rng::below(select.at(j as u32), spec.select);
            scratch[k] = j as u64;
            k += hit as usize;
        }
    } else {
        // Candidates keyed by (draw, position): the k smallest draws are a uniform random subset.
        let exact = spec.count == Count::Exact;
        for (j, &id) in ids.iter().enumerate() {
            let u = select.at(j as u32);
            let hit = (vocab.is_special[id as usize] == 0)
                & allowed(j)
                & (exact | rng::below(u, spec.select));
            scratch[k] = ((u as u64) << 32) | j as u64;
            k += hit as usize;
        }
        let want = if exact {
            spec.exact_count(k)
        } else {
            k.min(spec.max_predictions)
        };
        if want < k {
            scratch[..k].select_nth_unstable(want);
        }
        k = want;
    }
    for &e in &scratch[..k] {
        replace(
            (e & 0xFFFF_FFFF) as usize,
            ids,
            labels,
            spec,
            vocab,
            &rep,
            &tok,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab_tables(n: usize, specials: &[usize]) -> (Vec<u8>, Vec<i64>) {
        let mut is_special = vec![0u8; n];
        for &s in specials {
            is_special[s] = 1;
        }
        let random = (0..n as i64)
            .filter(|&i| is_special[i as usize] == 0)
            .collect();
        (is_special, random)
    }

    #[test]
    fn specials_are_never_selected_and_labels_match() {
        let (sp, rnd) = vocab_tables(100, &[0, 1, 2]);
        let vocab = Vocab {
            is_special: &sp,
            random_ids: &rnd,
            mask_id: 3,
            pad_id: None,
        };
        let spec = MaskSpec::new(1.0, 0.8, 0.1, Count::Bernoulli, usize::MAX).unwrap();
        let orig: Vec<i64> = vec![1, 10, 11, 2, 12, 0];
        let mut ids = orig.clone();
        let mut labels = vec![IGNORE_INDEX; ids.len()];
        let mut scratch = Vec::new();
        mask_row(&mut ids, &mut labels, None, &vocab, &spec, 7, &mut scratch);
        for j in [0, 3, 5] {
            assert_eq!(ids[j], orig[j]);
            assert_eq!(labels[j], IGNORE_INDEX);
        }
        for j in [1, 2, 4] {
            assert_eq!(labels[j], orig[j]);
        }
    }

    #[test]
    fn exact_count_and_cap() {
        let (sp, rnd) = vocab_tables(1000, &[0]);
        let vocab = Vocab {
            is_special: &sp,
            random_ids: &rnd,
            mask_id: 999,
            pad_id: None,
        };
        let mut scratch = Vec::new();
        for (n, p, cap, want) in [
            (100, 0.15, usize::MAX, 15),
            (5, 0.01, usize::MAX, 1),
            (100, 0.15, 4, 4),
            (0, 0.5, 9, 0),
        ] {
            let spec = MaskSpec::new(p, 1.0, 0.0, Count::Exact, cap).unwrap();
            for key in 0..20 {
                let mut ids: Vec<i64> = (1..=n as i64).collect();
                let mut labels = vec![IGNORE_INDEX; n];
                mask_row(
                    &mut ids,
                    &mut labels,
                    None,
                    &vocab,
                    &spec,
                    key,
                    &mut scratch,
                );
                assert_eq!(labels.iter().filter(|&&l| l != IGNORE_INDEX).count(), want);
                assert_eq!(ids.iter().filter(|&&i| i == 999).count(), want);
            }
        }
    }

    #[test]
    fn bernoulli_cap_keeps_at_most_cap() {
        let (sp, rnd) = vocab_tables(1000, &[]);
        let vocab = Vocab {
            is_special: &sp,
            random_ids: &rnd,
            mask_id: 5,
            pad_id: None,
        };
        let spec = MaskSpec::new(0.5, 0.8, 0.1, Count::Bernoulli, 10).unwrap();
        let mut scratch = Vec::new();
        let mut capped = 0;
        for key in 0..200 {
            let mut ids: Vec<i64> = (0..100).collect();
            let mut labels = vec![IGNORE_INDEX; 100];
            mask_row(
                &mut ids,
                &mut labels,
                None,
                &vocab,
                &spec,
                key,
                &mut scratch,
            );
            let n = labels.iter().filter(|&&l| l != IGNORE_INDEX).count();
            assert!(n <= 10);
            capped += (n == 10) as usize;
        }
        assert!(capped > 190);
    }

    #[test]
    fn extra_special_mask_is_honoured() {
        let (sp, rnd) = vocab_tables(50, &[]);
        let vocab = Vocab {
            is_special: &sp,
            random_ids: &rnd,
            mask_id: 49,
            pad_id: None,
        };
        let spec = MaskSpec::new(1.0, 1.0, 0.0, Count::Bernoulli, usize::MAX).unwrap();
        let mut ids: Vec<i64> = vec![1, 2, 3, 4];
        let mut labels = vec![IGNORE_INDEX; 4];
        mask_row(
            &mut ids,
            &mut labels,
            Some(&[1, 0, 0, 1]),
            &vocab,
            &spec,
            0,
            &mut Vec::new(),
        );
        assert_eq!(ids, vec![1, 49, 49, 4]);
        assert_eq!(labels, vec![IGNORE_INDEX, 2, 3, IGNORE_INDEX]);
    }

    #[test]
    fn replacement_split_is_80_10_10() {
        let (sp, rnd) = vocab_tables(30_000, &[0, 1]);
        let vocab = Vocab {
            is_special: &sp,
            random_ids: &rnd,
            mask_id: 0,
            pad_id: None,
        };
        let spec = MaskSpec::new(1.0, 0.8, 0.1, Count::Bernoulli, usize::MAX).unwrap();
        let (mut masked, mut kept, mut total) = (0usize, 0usize, 0usize);
        let mut scratch = Vec::new();
        for key in 0..200 {
            let orig: Vec<i64> = (0..1000).map(|i| 2 + (i * 7 + key) % 29_000).collect();
            let mut ids = orig.clone();
            let mut labels = vec![IGNORE_INDEX; ids.len()];
            mask_row(
                &mut ids,
                &mut labels,
                None,
                &vocab,
                &spec,
                key as u32,
                &mut scratch,
            );
            for j in 0..ids.len() {
                total += 1;
                masked += (ids[j] == 0) as usize;
                kept += (ids[j] == orig[j]) as usize;
                assert!(ids[j] == 0 || sp[ids[j] as usize] == 0);
            }
        }
        let check = |count: usize, p: f64| {
            let sd = (total as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (count as f64 - p * total as f64).abs() < 5.0 * sd,
                "{count} vs {p}"
            );
        };
        check(masked, 0.8);
        // kept = 10% plus random replacements that drew the original token (negligible).
        check(kept, 0.1);
    }

    #[test]
    fn invalid_probabilities_are_rejected() {
        assert!(MaskSpec::new(1.5, 0.8, 0.1, Count::Bernoulli, 1).is_err());
        assert!(MaskSpec::new(0.15, 0.8, 0.3, Count::Bernoulli, 1).is_err());
        assert!(MaskSpec::new(0.15, -0.1, 0.3, Count::Bernoulli, 1).is_err());
        assert!(MaskSpec::new(f64::NAN, 0.8, 0.1, Count::Bernoulli, 1).is_err());
    }
}
