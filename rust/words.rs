//! Whole-word and span masking: word boundaries from token ids, selection of whole words (or
//! spans of whole words) and their replacement, in linear time and `O(L)` memory per row.
//!
//! # Algorithm
//!
//! Normative: a reimplementation (e.g. in torch) must follow it to get the same masks bit for bit.
//! `Lane`, `threshold(p) = round(p * 2^32)`, `below(v, t) = v < t` and
//! `index(v, n) = (v * n) >> 32` are those of `rng`; the row key is `collate::row_key`, exactly as
//! in token masking. Lanes of the row key: `SEL` = 1, `REP` = 2, `TOK` = 3 (as token masking),
//! `LEN` = 16, `PHASE` = 17.
//!
//! 1. **Row.** `t[0..n)` is the row's content without padding; position `j` counts from the first
//!    content token. `m[j]` (maskable) holds when `t[j]` is not special (vocabulary table), not
//!    flagged by the `special_tokens_mask` column and, when word ids are given, `wid[j] >= 0`.
//! 2. **Words.** A maskable `j` starts a word iff `j == 0`, or `!m[j-1]`, or
//!    * with word ids: `wid[j] != wid[j-1]`;
//!    * with tables: `cont[j] == 0 && e != 2 && (starts_word[t[j]] != 0 || e == 1)` with
//!      `e = ends_word[t[j-1]]` (1: the next token starts a word; 2: the next token continues this
//!      token's word, e.g. after a lone `▁`), where `cont` are the continuation flags set from
//!      reference positions (all zero without them).
//!
//!    A word runs from its start up to the next word start or non-maskable position. Words are
//!    numbered `k = 0..K` left to right; `s_k` is the first position of word `k` and `len_k` its
//!    number of tokens; `N = sum(len_k)`. Word `k` starts a *segment* iff `s_k == 0 || !m[s_k-1]`
//!    (segments are the runs of maskable tokens between special tokens). `u_k = SEL.at(s_k)`.
//! 3. **Units** are candidate runs of consecutive whole words of one segment, written
//!    `(first word, word count)`.
//!    * Word masking, bernoulli: the words with `below(u_k, threshold(p))`, one unit each.
//!    * Word masking, exact: every word, one unit each.
//!    * Span / n-gram masking use a length distribution `P(l)`, `l = 1..=M` (SpanBERT:
//!      `P(l) ~ g (1 - g)^(l-1)`, renormalised over `1..=M`; n-grams: `P(l) ~ 1 / l`). With
//!      `C_i = threshold(P(l <= i))` for `i = 1..M-1`, the length of word `k` is
//!      `l_k = 1 + #{i : LEN.at(s_k) >= C_i}`.
//!      - Bernoulli: a stationary renewal process over the words of each segment. With
//!        `mu = E[l]`, `S(r) = P(l > r)`, `q = p / (mu (1 - p) + p)`, `Q = threshold(q)`,
//!        `pi_0 = 1 / (1 - q + q mu)`, `pi_r = q S(r) pi_0` (`r = 1..M-1`) and
//!        `F_i = threshold(pi_0 + ... + pi_i)` (`i = 0..M-2`): at the first word `a` of a
//!        segment ending before word `b`, `r = #{i : PHASE.at(s_a) >= F_i}`; if `r > 0` a unit
//!        `(a, min(r, b - a))` covers the rest of a span that started before the segment, and the
//!        scan goes on at `k = a + r`, else at `k = a`. Then while `k < b`: if
//!        `below(u_k, Q)` a unit `(k, min(l_k, b - k))` is added and `k += l_k`, else `k += 1`.
//!        Every word is then covered with probability `p`, exactly up to the rounding of the
//!        thresholds (`pi` is the stationary law of "words left in the current span"), so the
//!        expected masked fraction is `p`, and span lengths follow `P(l)` (a span is cut only by
//!        the end of its segment).
//!      - Exact: one unit per word `k`: `(k, min(l_k, b - k))`, `b` the end of `k`'s segment.
//!
//!    The probabilities are computed in `f64`; `span_tables` (Python: `_core.span_tables`)
//!    returns the integers `Q`, `C` and `F`, so a reimplementation can reuse them as they are.
//! 4. **Budget.** Bernoulli without `max_predictions`: every unit is accepted whole. Otherwise
//!    the budget is `B = exact_count(N)` (exact: `floor(p N + 0.5)` clamped to `[1, N]`, at most
//!    `max_predictions`; 0 when `N = 0`) or `B = max_predictions` (bernoulli). Units are visited
//!    in ascending order of `(u_first, first)`; while `B > 0`, a unit's words are taken in order
//!    while the word is not already taken and `len <= B` (`B -= len`); a unit that took at least
//!    one word is accepted with those words. So a word that would overflow the budget is skipped
//!    (Google BERT) and later, shorter units may still fill it; an overflowing span keeps the
//!    words that fit.
//! 5. **Replacement**, for each accepted unit covering positions `[s, e)`: `labels[j] = t[j]` for
//!    `j` in `[s, e)`, then
//!    * per token: each `j` exactly as token masking (`v = REP.at(j)`: `[MASK]` if
//!      `below(v, mask)`, else `random_ids[index(TOK.at(j), |random_ids|)]` if `below(v, random)`,
//!      else unchanged);
//!    * per unit (default): one `v = REP.at(s)` decides for all of `[s, e)`: every token becomes
//!      `[MASK]`, or every token becomes its own `random_ids[index(TOK.at(j), |random_ids|)]`, or
//!      all stay unchanged.
//!
//! `mask` and `random` are `MaskSpec::mask_below` and `MaskSpec::random_below`.

use crate::error::KernelError;
use crate::masking::{replace, Count, MaskSpec, Vocab};
use crate::rng::{self, Lane, LANE_RANDOM_TOKEN, LANE_REPLACE, LANE_SELECT};

/// Lane of span lengths (lanes 4 to 15 are left to token-level purposes).
pub const LANE_SPAN_LENGTH: u32 = 16;
/// Lane of the renewal phase drawn at each segment start.
pub const LANE_SPAN_PHASE: u32 = 17;

/// Longest span / n-gram accepted (keeps the threshold tables small).
pub const MAX_SPAN_WORDS: usize = 512;

/// Where word boundaries come from, for the whole batch.
#[derive(Clone, Copy)]
pub enum Boundaries<'a> {
    /// Per-vocabulary tables, plus optional continuation flags aligned with the input values.
    Tables {
        starts_word: &'a [u8],
        ends_word: &'a [u8],
        continuation: Option<&'a [u8]>,
    },
    /// Word ids aligned with the input values; negative: the token belongs to no word.
    WordIds(&'a [i64]),
}

/// One row's slice of the boundaries.
#[derive(Clone, Copy)]
pub enum RowBoundaries<'a> {
    Tables {
        starts_word: &'a [u8],
        ends_word: &'a [u8],
        continuation: Option<&'a [u8]>,
    },
    WordIds(&'a [i64]),
}

impl<'a> Boundaries<'a> {
    pub fn row(&self, start: usize, len: usize) -> RowBoundaries<'a> {
        match *self {
            Boundaries::Tables {
                starts_word,
                ends_word,
                continuation,
            } => RowBoundaries::Tables {
                starts_word,
                ends_word,
                continuation: continuation.map(|c| &c[start..start + len]),
            },
            Boundaries::WordIds(w) => RowBoundaries::WordIds(&w[start..start + len]),
        }
    }

    /// Check the buffers against the vocabulary size and the number of input values.
    pub fn check(&self, vocab_size: usize, values: usize) -> Result<(), KernelError> {
        let aligned = |name: &str, len: usize| {
            if len == values {
                Ok(())
            } else {
                Err(KernelError::Shape(format!(
                    "{name} holds {len} values but input_ids holds {values}"
                )))
            }
        };
        match self {
            Boundaries::Tables {
                starts_word,
                ends_word,
                continuation,
            } => {
                for (name, t) in [("starts_word", starts_word), ("ends_word", ends_word)] {
                    if t.len() != vocab_size {
                        return Err(KernelError::Shape(format!(
                            "{name} has {} entries but the vocabulary has {vocab_size}",
                            t.len()
                        )));
                    }
                }
                continuation.map_or(Ok(()), |c| aligned("continuation flags", c.len()))
            }
            Boundaries::WordIds(w) => aligned("word_ids", w.len()),
        }
    }
}

/// A distribution of span lengths in words, as integer thresholds.
#[derive(Clone, Debug)]
pub struct Lengths {
    /// `probs[l - 1] = P(l)`.
    pub probs: Vec<f64>,
    /// `cdf[i - 1] = threshold(P(l <= i))` for `i = 1..M-1`.
    pub cdf: Vec<u64>,
}

impl Lengths {
    fn from_weights(weights: Vec<f64>) -> Self {
        let total: f64 = weights.iter().sum();
        let probs: Vec<f64> = weights.iter().map(|w| w / total).collect();
        let mut acc = 0.0;
        let cdf = probs[..probs.len() - 1]
            .iter()
            .map(|p| {
                acc += p;
                rng::threshold(acc)
            })
            .collect();
        Lengths { probs, cdf }
    }

    fn check_max(name: &str, max: usize) -> Result<(), KernelError> {
        if !(1..=MAX_SPAN_WORDS).contains(&max) {
            return Err(KernelError::Config(format!(
                "{name} must be in [1, {MAX_SPAN_WORDS}], got {max}"
            )));
        }
        Ok(())
    }

    /// SpanBERT: `P(l) ~ g (1 - g)^(l - 1)` for `l = 1..=max`, renormalised.
    pub fn geometric(g: f64, max: usize) -> Result<Self, KernelError> {
        if !(g > 0.0 && g <= 1.0) {
            return Err(KernelError::Config(format!(
                "span_geometric_p must be in (0, 1], got {g}"
            )));
        }
        Self::check_max("max_span_length", max)?;
        Ok(Self::from_weights(
            (0..max).map(|i| g * (1.0 - g).powi(i as i32)).collect(),
        ))
    }

    /// Megatron n-grams: `P(n) ~ 1 / n` for `n = 1..=max`.
    pub fn harmonic(max: usize) -> Result<Self, KernelError> {
        Self::check_max("max_ngram", max)?;
        Ok(Self::from_weights(
            (1..=max).map(|n| 1.0 / n as f64).collect(),
        ))
    }

    pub fn max(&self) -> usize {
        self.probs.len()
    }

    pub fn mean(&self) -> f64 {
        self.probs
            .iter()
            .enumerate()
            .map(|(i, p)| (i + 1) as f64 * p)
            .sum()
    }

    /// `S(r) = P(l > r)` for `r = 0..M`, summed from the longest length down.
    pub fn survival(&self) -> Vec<f64> {
        let mut s = vec![0.0; self.max() + 1];
        for r in (0..self.max()).rev() {
            s[r] = s[r + 1] + self.probs[r];
        }
        s
    }

    #[inline]
    pub fn draw(&self, v: u32) -> usize {
        1 + self.cdf.partition_point(|&t| t <= v as u64)
    }
}

/// Span masking's thresholds for one masking probability (see the module documentation).
#[derive(Clone, Debug)]
pub struct SpanSpec {
    pub lengths: Lengths,
    /// `Q`: a free word starts a span when its selection draw is below this.
    pub start: u64,
    /// `F_0..F_{M-2}`: the phase at a segment start is the number of these at or below the draw.
    pub phase: Vec<u64>,
}

impl SpanSpec {
    pub fn new(lengths: Lengths, probability: f64) -> Result<Self, KernelError> {
        if !(0.0..=1.0).contains(&probability) {
            return Err(KernelError::Config(format!(
                "mlm_probability must be in [0, 1], got {probability}"
            )));
        }
        let mu = lengths.mean();
        let q = probability / (mu * (1.0 - probability) + probability); // mu >= 1: no 0/0
        let pi0 = 1.0 / (1.0 - q + q * mu);
        let survival = lengths.survival();
        let mut acc = pi0;
        let mut phase = Vec::with_capacity(lengths.max() - 1);
        for s in &survival[1..lengths.max()] {
            phase.push(rng::threshold(acc));
            acc += q * s * pi0;
        }
        Ok(SpanSpec {
            start: rng::threshold(q),
            phase,
            lengths,
        })
    }

    #[inline]
    fn phase_of(&self, v: u32) -> usize {
        self.phase.partition_point(|&t| t <= v as u64)
    }
}

/// What a unit of masking is.
#[derive(Clone, Debug)]
pub enum Units {
    Words,
    Spans(SpanSpec),
}

/// Who shares a replacement decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replace {
    /// One decision per accepted unit (word or span).
    PerUnit,
    /// One decision per token (Google BERT, Megatron).
    PerToken,
}

pub struct WordMasking<'a> {
    pub boundaries: Boundaries<'a>,
    pub units: Units,
    pub replace: Replace,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Word {
    pub start: u32,
    pub len: u32,
    /// First word of a segment (a run of maskable tokens).
    pub segment: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit {
    pub first: u32,
    pub count: u32,
}

/// Buffers reused from row to row.
#[derive(Default)]
pub struct Scratch {
    pub words: Vec<Word>,
    units: Vec<Unit>,
    accepted: Vec<Unit>,
    keys: Vec<u64>,
    sorted: Vec<u64>,
    taken: Vec<bool>,
    /// Starts of the selected words (`SelectedWords`).
    starts: Vec<u32>,
}

/// Split a row into words (step 2); `maskable` already covers vocabulary and column flags.
pub fn segment(
    ids: &[i64],
    maskable: impl Fn(usize) -> bool,
    b: RowBoundaries,
    words: &mut Vec<Word>,
) {
    words.clear();
    let mut prev = false;
    for j in 0..ids.len() {
        let here = maskable(j)
            && match b {
                RowBoundaries::WordIds(w) => w[j] >= 0,
                RowBoundaries::Tables { .. } => true,
            };
        if !here {
            prev = false;
            continue;
        }
        let starts = !prev
            || match b {
                RowBoundaries::WordIds(w) => w[j] != w[j - 1],
                RowBoundaries::Tables {
                    starts_word,
                    ends_word,
                    continuation,
                } => {
                    let e = ends_word[ids[j - 1] as usize];
                    continuation.is_none_or(|c| c[j] == 0)
                        && e != 2
                        && (starts_word[ids[j] as usize] != 0 || e == 1)
                }
            };
        if starts {
            words.push(Word {
                start: j as u32,
                len: 1,
                segment: !prev,
            });
        } else if let Some(w) = words.last_mut() {
            w.len += 1;
        }
        prev = true;
    }
}

/// Sort keys whose low 32 bits increase in input order by their high 32 bits, keeping that
/// order among equal high halves: the result is sorted by the whole key, in linear time.
fn sort_keys(keys: &mut Vec<u64>, tmp: &mut Vec<u64>) {
    if keys.len() <= 256 {
        keys.sort_unstable();
        return;
    }
    tmp.clear();
    tmp.resize(keys.len(), 0);
    for shift in [32u32, 40, 48, 56] {
        let mut counts = [0usize; 256];
        for &k in keys.iter() {
            counts[((k >> shift) & 0xFF) as usize] += 1;
        }
        let mut sum = 0;
        for c in counts.iter_mut() {
            let here = *c;
            *c = sum;
            sum += here;
        }
        for &k in keys.iter() {
            let b = ((k >> shift) & 0xFF) as usize;
            tmp[counts[b]] = k;
            counts[b] += 1;
        }
        std::mem::swap(keys, tmp);
    }
}

/// Renewal process of span starts over each segment (step 3, span masking, bernoulli).
fn renewal_units(
    words: &[Word],
    span: &SpanSpec,
    sel: &Lane,
    len: &Lane,
    phase: &Lane,
    out: &mut Vec<Unit>,
) {
    let mut a = 0;
    while a < words.len() {
        let b = a + 1 + words[a + 1..].iter().take_while(|w| !w.segment).count();
        let r = span.phase_of(phase.at(words[a].start));
        if r > 0 {
            out.push(Unit {
                first: a as u32,
                count: r.min(b - a) as u32,
            });
        }
        let mut k = a + r;
        while k < b {
            let s = words[k].start;
            if rng::below(sel.at(s), span.start) {
                let l = span.lengths.draw(len.at(s));
                out.push(Unit {
                    first: k as u32,
                    count: l.min(b - k) as u32,
                });
                k += l;
            } else {
                k += 1;
            }
        }
        a = b;
    }
}

/// One unit per word: the word and the next `l_k - 1` of its segment (step 3, exact).
fn span_candidates(words: &[Word], span: &SpanSpec, len: &Lane, out: &mut Vec<Unit>) {
    let mut seg_end = 0;
    for k in 0..words.len() {
        if k >= seg_end {
            seg_end = k + 1 + words[k + 1..].iter().take_while(|w| !w.segment).count();
        }
        let l = span.lengths.draw(len.at(words[k].start));
        out.push(Unit {
            first: k as u32,
            count: l.min(seg_end - k) as u32,
        });
    }
}

/// Step 4: accept units in (draw, position) order within a token budget.
fn fill_budget(words: &[Word], sel: &Lane, budget: usize, scratch: &mut Scratch) {
    let Scratch {
        units,
        accepted,
        keys,
        sorted,
        taken,
        ..
    } = scratch;
    keys.clear();
    keys.extend(
        units
            .iter()
            .enumerate()
            .map(|(i, u)| ((sel.at(words[u.first as usize].start) as u64) << 32) | i as u64),
    );
    sort_keys(keys, sorted);
    taken.clear();
    taken.resize(words.len(), false);
    let mut left = budget;
    for &key in keys.iter() {
        if left == 0 {
            break;
        }
        let u = units[(key & 0xFFFF_FFFF) as usize];
        let first = u.first as usize;
        let mut count = 0;
        for k in first..first + u.count as usize {
            let n = words[k].len as usize;
            if taken[k] || n > left {
                break;
            }
            taken[k] = true;
            left -= n;
            count += 1;
        }
        if count > 0 {
            accepted.push(Unit {
                first: u.first,
                count,
            });
        }
    }
}

/// Whole-word masking, bernoulli, without a cap (the default), without a word list. In that
/// mode every word whose start `s_k` has `below(SEL.at(s_k), threshold(p))` is an accepted unit
/// of its own (steps 3 and 4). So the selected words are the word starts among the maskable
/// positions whose draw is a hit: those candidates are found exactly as token masking selects
/// tokens (one branch-free pass, one table lookup and one draw per position), and the boundary
/// rule of step 2 is evaluated at the ~p of positions that are candidates, and along the selected
/// words to find their ends. Same result as `segment` + `select` + the replacement loop of
/// `mask_row`, at little more than the cost of token masking (see `bench` below).
struct SelectedWords<'a> {
    vocab: &'a Vocab<'a>,
    spec: &'a MaskSpec,
    replace: Replace,
    row_key: u32,
}

/// Optional per-position flags (the `special_tokens_mask` column, continuation flags).
trait Flags: Copy {
    fn set(&self, j: usize) -> bool;
}

#[derive(Clone, Copy)]
struct NoFlags;

impl Flags for NoFlags {
    #[inline(always)]
    fn set(&self, _: usize) -> bool {
        false
    }
}

impl Flags for &[u8] {
    #[inline(always)]
    fn set(&self, j: usize) -> bool {
        self[j] != 0
    }
}

/// Step 2 one position at a time, carrying what position `j` needs of `j - 1`.
trait WordStarts {
    type Carry: Copy;
    /// The carry of position -1 (not maskable).
    const BEFORE_ROW: Self::Carry;
    /// Step 1's `m[j]` from `j`'s carry.
    fn maskable_carry(carry: Self::Carry) -> bool;
    /// Step 1's `m[j]` alone.
    fn maskable_at(&self, j: usize, id: i64) -> bool;
    /// Whether `j` is maskable and starts a word, and `j`'s carry.
    fn step(&self, j: usize, id: i64, prev: Self::Carry) -> (bool, Self::Carry);
}

/// Boundaries from the per-vocabulary tables; carries `(m[j], ends_word[t[j]])`.
struct TableStarts<'a, S, C> {
    is_special: &'a [u8],
    starts_word: &'a [u8],
    ends_word: &'a [u8],
    special: S,
    continuation: C,
}

impl<S: Flags, C: Flags> WordStarts for TableStarts<'_, S, C> {
    type Carry = (bool, u8);
    const BEFORE_ROW: (bool, u8) = (false, 0);

    #[inline(always)]
    fn maskable_carry(carry: (bool, u8)) -> bool {
        carry.0
    }

    #[inline(always)]
    fn maskable_at(&self, j: usize, id: i64) -> bool {
        (self.is_special[id as usize] == 0) & !self.special.set(j)
    }

    #[inline(always)]
    fn step(&self, j: usize, id: i64, (prev, e): (bool, u8)) -> (bool, (bool, u8)) {
        let i = id as usize;
        let here = (self.is_special[i] == 0) & !self.special.set(j);
        let joined = self.continuation.set(j) | (e == 2) | ((self.starts_word[i] == 0) & (e != 1));
        (here & !(prev & joined), (here, self.ends_word[i]))
    }
}

/// Boundaries from word ids; carries `(m[j], wid[j])`.
struct WordIdStarts<'a, S> {
    is_special: &'a [u8],
    word_ids: &'a [i64],
    special: S,
}

impl<S: Flags> WordStarts for WordIdStarts<'_, S> {
    type Carry = (bool, i64);
    const BEFORE_ROW: (bool, i64) = (false, 0);

    #[inline(always)]
    fn maskable_carry(carry: (bool, i64)) -> bool {
        carry.0
    }

    #[inline(always)]
    fn maskable_at(&self, j: usize, id: i64) -> bool {
        (self.is_special[id as usize] == 0) & !self.special.set(j) & (self.word_ids[j] >= 0)
    }

    #[inline(always)]
    fn step(&self, j: usize, id: i64, (prev, w): (bool, i64)) -> (bool, (bool, i64)) {
        let wid = self.word_ids[j];
        let here = (self.is_special[id as usize] == 0) & !self.special.set(j) & (wid >= 0);
        (here & !(prev & (wid == w)), (here, wid))
    }
}

impl SelectedWords<'_> {
    /// Monomorphise the pass for each kind of boundary and column flags.
    #[inline(always)]
    fn mask(
        &self,
        ids: &mut [i64],
        labels: &mut [i64],
        special: Option<&[u8]>,
        boundaries: RowBoundaries,
        starts: &mut Vec<u32>,
    ) {
        match special {
            None => self.with(ids, labels, NoFlags, boundaries, starts),
            Some(m) => {
                let m = &m[..ids.len()];
                self.with(ids, labels, m, boundaries, starts)
            }
        }
    }

    #[inline(always)]
    fn with(
        &self,
        ids: &mut [i64],
        labels: &mut [i64],
        special: impl Flags,
        boundaries: RowBoundaries,
        starts: &mut Vec<u32>,
    ) {
        // The tables have one length (checked with the boundaries): one bounds check serves
        // the three lookups of an id.
        let v = self.vocab.is_special.len();
        let is_special = &self.vocab.is_special[..v];
        match boundaries {
            RowBoundaries::WordIds(w) => {
                let starts_of = WordIdStarts {
                    is_special,
                    word_ids: &w[..ids.len()],
                    special,
                };
                self.run(ids, labels, &starts_of, starts)
            }
            RowBoundaries::Tables {
                starts_word,
                ends_word,
                continuation,
            } => {
                let (starts_word, ends_word) = (&starts_word[..v], &ends_word[..v]);
                match continuation {
                    None => {
                        let starts_of = TableStarts {
                            is_special,
                            starts_word,
                            ends_word,
                            special,
                            continuation: NoFlags,
                        };
                        self.run(ids, labels, &starts_of, starts)
                    }
                    Some(c) => {
                        let starts_of = TableStarts {
                            is_special,
                            starts_word,
                            ends_word,
                            special,
                            continuation: &c[..ids.len()],
                        };
                        self.run(ids, labels, &starts_of, starts)
                    }
                }
            }
        }
    }

    #[inline(always)]
    fn run<W: WordStarts>(
        &self,
        ids: &mut [i64],
        labels: &mut [i64],
        words: &W,
        starts: &mut Vec<u32>,
    ) {
        let spec = self.spec;
        let n = ids.len();
        let sel = Lane::new(self.row_key, LANE_SELECT);
        starts.clear();
        starts.resize(n, 0);
        let out = &mut starts[..n];
        // Maskable positions whose selection draw is a hit, exactly as token masking selects
        // (one table lookup and one draw per token)...
        let mut k = 0;
        for (j, &id) in ids.iter().enumerate() {
            out[k] = j as u32;
            k += (words.maskable_at(j, id) & rng::below(sel.at(j as u32), spec.select)) as usize;
        }
        // ...of which the word starts are the selected words (boundaries are looked up at the
        // ~p of positions that are candidates only).
        let mut kept = 0;
        for i in 0..k {
            let j = out[i] as usize;
            let prev = match j {
                0 => W::BEFORE_ROW,
                _ => words.step(j - 1, ids[j - 1], W::BEFORE_ROW).1,
            };
            out[kept] = j as u32;
            kept += words.step(j, ids[j], prev).0 as usize;
        }
        let k = kept;
        let rep = Lane::new(self.row_key, LANE_REPLACE);
        let tok = Lane::new(self.row_key, LANE_RANDOM_TOKEN);
        let random = self.vocab.random_ids;
        for &s in &out[..k] {
            // The word's end, read before any of its tokens is replaced (later words start at
            // or after it, so nothing read here was replaced yet).
            let s = s as usize;
            let (mut e, mut carry) = (s + 1, words.step(s, ids[s], W::BEFORE_ROW).1);
            while e < n {
                let (begins, next) = words.step(e, ids[e], carry);
                if begins || !W::maskable_carry(next) {
                    break;
                }
                (e, carry) = (e + 1, next);
            }
            match self.replace {
                Replace::PerToken => {
                    for j in s..e {
                        replace(j, ids, labels, spec, self.vocab, &rep, &tok);
                    }
                }
                Replace::PerUnit => {
                    // Plain loops: words are a token or two, too short for memcpy calls.
                    let v = rep.at(s as u32);
                    let (mask, random_token) = (
                        rng::below(v, spec.mask_below),
                        rng::below(v, spec.random_below),
                    );
                    for j in s..e {
                        labels[j] = ids[j];
                        if mask {
                            ids[j] = spec.mask_id;
                        } else if random_token {
                            ids[j] = random[rng::index(tok.at(j as u32), random.len())];
                        }
                    }
                }
            }
        }
    }
}

/// Mask one row's whole words or spans in place (`ids`/`labels` as in `masking::mask_row`).
#[allow(clippy::too_many_arguments)]
pub fn mask_row(
    ids: &mut [i64],
    labels: &mut [i64],
    extra_special: Option<&[u8]>,
    boundaries: RowBoundaries,
    vocab: &Vocab,
    spec: &MaskSpec,
    wm: &WordMasking,
    row_key: u32,
    scratch: &mut Scratch,
) {
    if matches!(wm.units, Units::Words)
        && spec.count == Count::Bernoulli
        && spec.max_predictions == usize::MAX
    {
        let pass = SelectedWords {
            vocab,
            spec,
            replace: wm.replace,
            row_key,
        };
        pass.mask(ids, labels, extra_special, boundaries, &mut scratch.starts);
        return;
    }
    mask_row_with_word_list(
        ids,
        labels,
        extra_special,
        boundaries,
        vocab,
        spec,
        wm,
        row_key,
        scratch,
    );
}

/// Steps 2 to 5 as written: the row's word list, its units, the budget, the replacement.
#[allow(clippy::too_many_arguments)]
fn mask_row_with_word_list(
    ids: &mut [i64],
    labels: &mut [i64],
    extra_special: Option<&[u8]>,
    boundaries: RowBoundaries,
    vocab: &Vocab,
    spec: &MaskSpec,
    wm: &WordMasking,
    row_key: u32,
    scratch: &mut Scratch,
) {
    let maskable = |j: usize| -> bool {
        vocab.is_special[ids[j] as usize] == 0 && extra_special.is_none_or(|m| m[j] == 0)
    };
    segment(ids, maskable, boundaries, &mut scratch.words);
    select(spec, wm, row_key, scratch);
    let rep = Lane::new(row_key, LANE_REPLACE);
    let tok = Lane::new(row_key, LANE_RANDOM_TOKEN);
    let words = &scratch.words;
    for u in &scratch.accepted {
        let first = words[u.first as usize];
        let last = words[(u.first + u.count - 1) as usize];
        let (s, e) = (first.start as usize, (last.start + last.len) as usize);
        match wm.replace {
            Replace::PerToken => {
                for j in s..e {
                    replace(j, ids, labels, spec, vocab, &rep, &tok);
                }
            }
            Replace::PerUnit => {
                let v = rep.at(s as u32);
                labels[s..e].copy_from_slice(&ids[s..e]);
                if rng::below(v, spec.mask_below) {
                    ids[s..e].fill(spec.mask_id);
                } else if rng::below(v, spec.random_below) {
                    let r = vocab.random_ids;
                    for (j, id) in ids[s..e].iter_mut().enumerate() {
                        *id = r[rng::index(tok.at((s + j) as u32), r.len())];
                    }
                }
            }
        }
    }
}

/// Steps 3 and 4 on the words in `scratch`: leaves the accepted units in `scratch.accepted`.
pub fn select(spec: &MaskSpec, wm: &WordMasking, row_key: u32, scratch: &mut Scratch) {
    let sel = Lane::new(row_key, LANE_SELECT);
    let len = Lane::new(row_key, LANE_SPAN_LENGTH);
    scratch.units.clear();
    scratch.accepted.clear();
    let words = std::mem::take(&mut scratch.words);
    match (&wm.units, spec.count) {
        (Units::Words, Count::Bernoulli) => {
            scratch.units.extend(
                words
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| rng::below(sel.at(w.start), spec.select))
                    .map(|(k, _)| Unit {
                        first: k as u32,
                        count: 1,
                    }),
            );
        }
        (Units::Words, Count::Exact) => {
            scratch
                .units
                .extend((0..words.len() as u32).map(|k| Unit { first: k, count: 1 }));
        }
        (Units::Spans(span), Count::Bernoulli) => {
            let phase = Lane::new(row_key, LANE_SPAN_PHASE);
            renewal_units(&words, span, &sel, &len, &phase, &mut scratch.units);
        }
        (Units::Spans(span), Count::Exact) => {
            span_candidates(&words, span, &len, &mut scratch.units);
        }
    }
    match spec.count {
        Count::Bernoulli if spec.max_predictions == usize::MAX => {
            std::mem::swap(&mut scratch.units, &mut scratch.accepted);
        }
        Count::Bernoulli => fill_budget(&words, &sel, spec.max_predictions, scratch),
        Count::Exact => {
            let n = words.iter().map(|w| w.len as usize).sum();
            fill_budget(&words, &sel, spec.exact_count(n), scratch);
        }
    }
    scratch.words = words;
}

/// The accepted units of the last `select` call.
#[cfg(test)]
fn accepted(scratch: &Scratch) -> &[Unit] {
    &scratch.accepted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::IGNORE_INDEX;

    fn spec(p: f64, count: Count, cap: usize) -> MaskSpec {
        MaskSpec::new(p, 0.8, 0.1, count, cap, 3).unwrap()
    }

    /// Words of a row where every token starts a word except those listed as continuations.
    fn words_of(n: usize, continuations: &[usize], specials: &[usize]) -> Vec<Word> {
        let mut starts = vec![1u8; 100];
        let ends = vec![0u8; 100];
        starts[50] = 0; // id 50 is a continuation piece
        let ids: Vec<i64> = (0..n)
            .map(|j| {
                if specials.contains(&j) {
                    1
                } else if continuations.contains(&j) {
                    50
                } else {
                    10
                }
            })
            .collect();
        let mut words = Vec::new();
        segment(
            &ids,
            |j| ids[j] != 1,
            RowBoundaries::Tables {
                starts_word: &starts,
                ends_word: &ends,
                continuation: None,
            },
            &mut words,
        );
        words
    }

    #[test]
    fn segments_by_tables_specials_and_continuations() {
        let w = words_of(8, &[1, 2, 5], &[3]);
        let got: Vec<(u32, u32, bool)> = w.iter().map(|w| (w.start, w.len, w.segment)).collect();
        assert_eq!(
            got,
            vec![(0, 3, true), (4, 2, true), (6, 1, false), (7, 1, false)]
        );
        // A row that begins with a continuation piece still starts a word at 0.
        let w = words_of(3, &[0, 1], &[]);
        assert_eq!(
            w,
            vec![
                Word {
                    start: 0,
                    len: 2,
                    segment: true
                },
                Word {
                    start: 2,
                    len: 1,
                    segment: false
                }
            ]
        );
    }

    #[test]
    fn ends_word_and_continuation_flags() {
        let mut starts = vec![0u8; 10];
        let mut ends = vec![0u8; 10];
        starts[1] = 1;
        ends[2] = 1; // e.g. a punctuation token
        let ids = [1i64, 5, 2, 5, 5, 1, 5, 3, 1];
        ends[3] = 2; // e.g. a lone `▁`: the next token continues its word
        let word_starts = |cont: &[u8]| -> Vec<u32> {
            let mut words = Vec::new();
            segment(
                &ids,
                |_| true,
                RowBoundaries::Tables {
                    starts_word: &starts,
                    ends_word: &ends,
                    continuation: Some(cont),
                },
                &mut words,
            );
            words.iter().map(|w| w.start).collect()
        };
        assert_eq!(word_starts(&[0u8; 9]), vec![0, 3, 5]); // 8 is glued to 7
                                                           // A continuation flag merges a table boundary away (but never the row start).
        assert_eq!(word_starts(&[1u8, 0, 0, 1, 0, 0, 0, 0, 0]), vec![0, 5]);
    }

    #[test]
    fn word_ids_give_runs_and_negative_ids_are_outside_words() {
        let ids = [7i64; 7];
        let wid = [-1i64, 0, 0, 1, -1, 1, 1];
        let mut words = Vec::new();
        segment(&ids, |_| true, RowBoundaries::WordIds(&wid), &mut words);
        let got: Vec<(u32, u32, bool)> =
            words.iter().map(|w| (w.start, w.len, w.segment)).collect();
        assert_eq!(got, vec![(1, 2, true), (3, 1, false), (5, 2, true)]);
    }

    #[test]
    fn radix_sort_matches_comparison_sort() {
        let lane = Lane::new(9, 1);
        for n in [0usize, 5, 300, 5000] {
            let mut keys: Vec<u64> = (0..n as u32)
                .map(|i| ((lane.at(i) as u64 >> 20) << 32) | i as u64)
                .collect();
            let mut want = keys.clone();
            want.sort_unstable();
            sort_keys(&mut keys, &mut Vec::new());
            assert_eq!(keys, want);
        }
    }

    #[test]
    fn length_tables_follow_their_distributions() {
        let g = Lengths::geometric(0.2, 10).unwrap();
        let total: f64 = (0..10).map(|i| 0.2 * 0.8f64.powi(i)).sum();
        assert!((g.probs[0] - 0.2 / total).abs() < 1e-12);
        assert!((g.mean() - 3.7971).abs() < 1e-3, "{}", g.mean()); // SpanBERT: 3.8
        assert_eq!(g.draw(0), 1);
        assert_eq!(g.draw(u32::MAX), 10);
        let h = Lengths::harmonic(3).unwrap();
        assert!((h.probs[2] - (1.0 / 3.0) / (11.0 / 6.0)).abs() < 1e-12);
        // Drawn frequencies within 5 sigma.
        let lane = Lane::new(1, LANE_SPAN_LENGTH);
        let n = 200_000u32;
        let mut counts = [0usize; 10];
        for i in 0..n {
            counts[g.draw(lane.at(i)) - 1] += 1;
        }
        for (l, &c) in counts.iter().enumerate() {
            let p = g.probs[l];
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (c as f64 - n as f64 * p).abs() < 5.0 * sd,
                "length {} {c}",
                l + 1
            );
        }
        assert!(Lengths::geometric(0.0, 10).is_err());
        assert!(Lengths::geometric(1.5, 10).is_err());
        assert!(Lengths::geometric(0.2, 0).is_err());
        assert!(Lengths::harmonic(MAX_SPAN_WORDS + 1).is_err());
    }

    fn run_row(
        n: usize,
        p: f64,
        count: Count,
        cap: usize,
        units: Units,
        key: u32,
        scratch: &mut Scratch,
    ) -> Vec<Unit> {
        scratch.words = words_of(n, &[], &[]);
        let wm = WordMasking {
            boundaries: Boundaries::WordIds(&[]),
            units,
            replace: Replace::PerUnit,
        };
        select(&spec(p, count, cap), &wm, key, scratch);
        accepted(scratch).to_vec()
    }

    #[test]
    fn renewal_covers_p_of_words_and_spans_follow_the_lengths() {
        let span = SpanSpec::new(Lengths::geometric(0.2, 10).unwrap(), 0.15).unwrap();
        let mut scratch = Scratch::default();
        let (mut covered, mut total) = (0usize, 0usize);
        let mut counts = [0usize; 10];
        let n = 400;
        for key in 0..400 {
            let units = run_row(
                n,
                0.15,
                Count::Bernoulli,
                usize::MAX,
                Units::Spans(span.clone()),
                key,
                &mut scratch,
            );
            let mut seen = vec![false; n];
            for u in &units {
                for k in u.first..u.first + u.count {
                    assert!(!seen[k as usize], "spans overlap");
                    seen[k as usize] = true;
                }
                // Spans that started inside the row and end well before its end.
                if u.first > 0 && (u.first as usize) + 10 < n {
                    counts[u.count as usize - 1] += 1;
                }
            }
            covered += seen.iter().filter(|&&s| s).count();
            total += n;
        }
        // Coverage is clustered: compare with a generous 6-sigma band on the row means.
        let frac = covered as f64 / total as f64;
        assert!((frac - 0.15).abs() < 0.01, "{frac}");
        let spans: usize = counts.iter().sum();
        for (l, &c) in counts.iter().enumerate() {
            let p = span.lengths.probs[l];
            let sd = (spans as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (c as f64 - spans as f64 * p).abs() < 5.0 * sd,
                "length {}",
                l + 1
            );
        }
    }

    #[test]
    fn exact_budget_is_met_without_partial_words() {
        let mut scratch = Scratch::default();
        for key in 0..50 {
            let units = run_row(
                200,
                0.15,
                Count::Exact,
                usize::MAX,
                Units::Words,
                key,
                &mut scratch,
            );
            assert_eq!(units.len(), 30);
            let span = SpanSpec::new(Lengths::harmonic(3).unwrap(), 0.15).unwrap();
            let units = run_row(
                200,
                0.15,
                Count::Exact,
                20,
                Units::Spans(span),
                key,
                &mut scratch,
            );
            let words: u32 = units.iter().map(|u| u.count).sum();
            assert_eq!(words, 20);
        }
    }

    #[test]
    fn budget_skips_words_that_overflow() {
        // Words of 3 tokens each: a budget of 4 takes one word and skips the rest.
        let mut scratch = Scratch {
            words: (0..10)
                .map(|k| Word {
                    start: 3 * k,
                    len: 3,
                    segment: k == 0,
                })
                .collect(),
            ..Default::default()
        };
        let wm = WordMasking {
            boundaries: Boundaries::WordIds(&[]),
            units: Units::Words,
            replace: Replace::PerUnit,
        };
        select(&spec(1.0, Count::Bernoulli, 4), &wm, 5, &mut scratch);
        assert_eq!(accepted(&scratch).len(), 1);
    }

    #[test]
    fn per_unit_replacement_is_shared_by_the_unit() {
        let mut sp = vec![0u8; 1000];
        sp[1] = 1;
        let rnd: Vec<i64> = (4..1000).collect();
        let vocab = Vocab {
            is_special: &sp,
            random_ids: &rnd,
        };
        let starts: Vec<u8> = (0..1000).map(|i| (i % 3 == 0) as u8).collect();
        let ends = vec![0u8; 1000];
        let wm = WordMasking {
            boundaries: Boundaries::Tables {
                starts_word: &starts,
                ends_word: &ends,
                continuation: None,
            },
            units: Units::Words,
            replace: Replace::PerUnit,
        };
        let spec = MaskSpec::new(0.5, 0.5, 0.0, Count::Bernoulli, usize::MAX, 3).unwrap();
        let mut scratch = Scratch::default();
        let (mut masked_words, mut kept_words) = (0, 0);
        for key in 0..100 {
            let orig: Vec<i64> = (0..300).map(|j| [999, 502, 505][j % 3]).collect();
            let mut ids = orig.clone();
            let mut labels = vec![IGNORE_INDEX; ids.len()];
            let b = wm.boundaries.row(0, ids.len());
            mask_row(
                &mut ids,
                &mut labels,
                None,
                b,
                &vocab,
                &spec,
                &wm,
                key,
                &mut scratch,
            );
            for w in 0..100 {
                let r = 3 * w..3 * w + 3;
                let sel: Vec<bool> = labels[r.clone()]
                    .iter()
                    .map(|&l| l != IGNORE_INDEX)
                    .collect();
                assert!(sel.iter().all(|&s| s == sel[0]), "partial word");
                let masked: Vec<bool> = ids[r.clone()].iter().map(|&i| i == 3).collect();
                assert!(masked.iter().all(|&m| m == masked[0]), "split decision");
                if sel[0] {
                    masked_words += masked[0] as usize;
                    kept_words += (!masked[0]) as usize;
                    assert_eq!(&labels[r.clone()], &orig[r.clone()]);
                }
            }
        }
        assert!(masked_words > 2000 && kept_words > 2000);
    }

    #[test]
    fn one_pass_word_masking_equals_the_word_list_path() {
        // Random vocabulary tables (every `ends_word` value, specials), rows with continuation
        // flags, column flags and word ids (runs, repeats, negatives), every replacement mode.
        let lane = Lane::new(11, 77);
        let mut draw = {
            let mut i = 0u32;
            move |n: usize| {
                i += 1;
                rng::index(lane.at(i), n)
            }
        };
        let size = 40;
        let is_special: Vec<u8> = (0..size).map(|i| (i < 3) as u8).collect();
        let starts: Vec<u8> = (0..size).map(|_| (draw(4) != 0) as u8).collect();
        let ends: Vec<u8> = (0..size).map(|_| [0, 0, 1, 2, 5][draw(5)]).collect();
        let random: Vec<i64> = (3..size as i64).collect();
        let vocab = Vocab {
            is_special: &is_special,
            random_ids: &random,
        };
        let mut scratch = Scratch::default();
        let mut selected = 0;
        for case in 0..3000 {
            let n = draw(40);
            let orig: Vec<i64> = (0..n).map(|_| draw(size) as i64).collect();
            let flags: Vec<u8> = (0..n).map(|_| (draw(6) == 0) as u8).collect();
            let mut wid = Vec::with_capacity(n);
            for _ in 0..n {
                let w = match draw(5) {
                    0 => -1,
                    1 | 2 => *wid.last().unwrap_or(&0),
                    _ => draw(8) as i64,
                };
                wid.push(w);
            }
            let boundaries = match case % 3 {
                0 => Boundaries::WordIds(&wid),
                1 => Boundaries::Tables {
                    starts_word: &starts,
                    ends_word: &ends,
                    continuation: None,
                },
                _ => Boundaries::Tables {
                    starts_word: &starts,
                    ends_word: &ends,
                    continuation: Some(&flags),
                },
            };
            let p = [0.0, 0.15, 0.5, 1.0][case % 4];
            let spec = MaskSpec::new(p, 0.5, 0.3, Count::Bernoulli, usize::MAX, 2).unwrap();
            let extra = (case % 5 == 0).then_some(&flags[..]);
            let replace = [Replace::PerUnit, Replace::PerToken][case % 2];
            let wm = WordMasking {
                boundaries,
                units: Units::Words,
                replace,
            };
            let run = |list: bool, scratch: &mut Scratch| {
                let (mut ids, mut labels) = (orig.clone(), vec![IGNORE_INDEX; n]);
                let b = boundaries.row(0, n);
                let (ids_, labels_) = (&mut ids, &mut labels);
                let args = (extra, b, &vocab, &spec, &wm, case as u32);
                if list {
                    mask_row_with_word_list(
                        ids_, labels_, args.0, args.1, args.2, args.3, args.4, args.5, scratch,
                    );
                } else {
                    mask_row(
                        ids_, labels_, args.0, args.1, args.2, args.3, args.4, args.5, scratch,
                    );
                }
                (ids, labels)
            };
            let want = run(true, &mut scratch);
            assert_eq!(run(false, &mut scratch), want, "case {case}");
            selected += want.1.iter().filter(|&&l| l != IGNORE_INDEX).count();
        }
        assert!(selected > 10_000, "{selected}");
    }

    #[test]
    fn zero_probability_selects_nothing() {
        let mut scratch = Scratch::default();
        let span = SpanSpec::new(Lengths::geometric(0.2, 10).unwrap(), 0.0).unwrap();
        assert!(run_row(
            100,
            0.0,
            Count::Bernoulli,
            usize::MAX,
            Units::Spans(span),
            1,
            &mut scratch
        )
        .is_empty());
        assert!(run_row(
            100,
            0.0,
            Count::Bernoulli,
            usize::MAX,
            Units::Words,
            1,
            &mut scratch
        )
        .is_empty());
        let span = SpanSpec::new(Lengths::geometric(0.2, 10).unwrap(), 1.0).unwrap();
        let units = run_row(
            100,
            1.0,
            Count::Bernoulli,
            usize::MAX,
            Units::Spans(span),
            1,
            &mut scratch,
        );
        assert_eq!(units.iter().map(|u| u.count).sum::<u32>(), 100);
    }
}

/// Timing of whole-word against token masking on one batch, for profiling the kernel:
/// `cargo test --release bench_word_against_token -- --ignored --nocapture`.
#[cfg(test)]
mod bench {
    use super::*;
    use crate::collate::{collate_with, Aligned, Collate, KeyMode, Outputs, Selection};
    use crate::padding::Rows;
    use std::time::Instant;

    /// Ids with BERT-like statistics: [CLS] ... [SEP], Zipf-like frequencies (log-uniform ids),
    /// ~13% continuation pieces, ~20% tokens that end a word (punctuation).
    fn batch(rows: usize, len: usize) -> (Vec<i64>, Vec<u8>, Vec<u8>, Vec<u8>) {
        let vocab = 30_000;
        let mut special = vec![0u8; vocab];
        special[..4].fill(1);
        let starts: Vec<u8> = (0..vocab).map(|i| (i % 100 >= 13) as u8).collect();
        let ends: Vec<u8> = (0..vocab).map(|i| (i % 5 == 0) as u8).collect();
        let lane = Lane::new(7, 99);
        let mut ids = Vec::with_capacity(rows * len);
        for r in 0..rows {
            ids.push(1);
            for j in 1..len - 1 {
                let u = lane.at((r * len + j) as u32) as f64 / 4_294_967_296.0;
                ids.push(3 + ((vocab - 4) as f64).powf(u) as i64);
            }
            ids.push(2);
        }
        (ids, special, starts, ends)
    }

    /// For each case, the fastest of 301 rounds of 10 calls, in ns per call. Rounds are short
    /// and alternate between the cases, so that on a shared machine some rounds of each run
    /// undisturbed by other processes, and the minimum is one of those.
    fn min_ns(cases: &mut [&mut dyn FnMut()]) -> Vec<f64> {
        let mut best = vec![f64::INFINITY; cases.len()];
        for _ in 0..301 {
            for (case, b) in cases.iter_mut().zip(&mut best) {
                let t = Instant::now();
                for _ in 0..10 {
                    case();
                }
                *b = b.min(t.elapsed().as_nanos() as f64 / 10.0);
            }
        }
        best
    }

    struct Case<'a> {
        name: &'static str,
        cfg: Collate<'a>,
        selection: Selection<'a>,
    }

    #[test]
    #[ignore = "timing, run by hand in release mode"]
    fn bench_word_against_token() {
        let (rows, len) = (32, 512);
        let (values, special, starts_word, ends_word) = batch(rows, len);
        let random: Vec<i64> = (4..30_000).collect();
        let row_starts: Vec<usize> = (0..rows).map(|r| r * len).collect();
        let lens = vec![len; rows];
        let batch_rows = Rows::new(&values, &row_starts, &lens).unwrap();
        let cfg = |mlm| Collate {
            vocab: Vocab {
                is_special: &special,
                random_ids: &random,
            },
            spec: MaskSpec::new(0.15, 0.8, 0.1, Count::Bernoulli, usize::MAX, 3).unwrap(),
            mlm,
            pad_id: Some(0),
            left: false,
            key_words: &[1, 2, 3],
            key_mode: KeyMode::RowIndex,
        };
        let tables = Boundaries::Tables {
            starts_word: &starts_word,
            ends_word: &ends_word,
            continuation: None,
        };
        let words = |units, replace| {
            Selection::Words(WordMasking {
                boundaries: tables,
                units,
                replace,
            })
        };
        let spans =
            || Units::Spans(SpanSpec::new(Lengths::geometric(0.2, 10).unwrap(), 0.15).unwrap());
        let cases = [
            Case {
                name: "padding only",
                cfg: cfg(false),
                selection: Selection::Tokens,
            },
            Case {
                name: "token",
                cfg: cfg(true),
                selection: Selection::Tokens,
            },
            Case {
                name: "word",
                cfg: cfg(true),
                selection: words(Units::Words, Replace::PerUnit),
            },
            Case {
                name: "word, per token",
                cfg: cfg(true),
                selection: words(Units::Words, Replace::PerToken),
            },
            Case {
                name: "span",
                cfg: cfg(true),
                selection: words(spans(), Replace::PerUnit),
            },
        ];
        let n = rows * len;
        let mut outputs: Vec<_> = cases
            .iter()
            .map(|_| (vec![0; n], vec![0; n], vec![0; n]))
            .collect();
        let mut runs: Vec<Box<dyn FnMut()>> = cases
            .iter()
            .zip(outputs.iter_mut())
            .map(|(case, (a, b, c))| {
                let rows = &batch_rows;
                Box::new(move || {
                    let out = Outputs {
                        ids: a,
                        labels: b,
                        attention: c,
                        width: len,
                    };
                    collate_with(rows, Aligned::default(), &case.cfg, &case.selection, out).unwrap()
                }) as Box<dyn FnMut()>
            })
            .collect();
        let mut refs: Vec<&mut dyn FnMut()> = runs
            .iter_mut()
            .map(|r| &mut **r as &mut dyn FnMut())
            .collect();
        let ns = min_ns(&mut refs);
        for (case, t) in cases.iter().zip(&ns) {
            println!(
                "{:>16}: {:7.1} us per {rows}x{len} batch, {:.2}x token",
                case.name,
                t / 1e3,
                t / ns[1]
            );
        }
    }

    /// The masking alone (no padding), row by row, of the one-pass word path against the
    /// word-list path it replaces in the default mode: `cargo test --release bench_one_pass --
    /// --ignored --nocapture`.
    #[test]
    #[ignore = "timing, run by hand in release mode"]
    fn bench_one_pass_against_word_list() {
        let (rows, len) = (32, 512);
        let (values, special, starts_word, ends_word) = batch(rows, len);
        let random: Vec<i64> = (4..30_000).collect();
        let vocab = Vocab {
            is_special: &special,
            random_ids: &random,
        };
        let spec = MaskSpec::new(0.15, 0.8, 0.1, Count::Bernoulli, usize::MAX, 3).unwrap();
        let wm = WordMasking {
            boundaries: Boundaries::Tables {
                starts_word: &starts_word,
                ends_word: &ends_word,
                continuation: None,
            },
            units: Units::Words,
            replace: Replace::PerUnit,
        };
        let (vocab, spec, wm, values) = (&vocab, &spec, &wm, &values);
        // Each case masks its own copy of the batch, restored from `values` first.
        let case = |list: bool| {
            let (mut ids, mut labels) = (values.clone(), vec![0i64; values.len()]);
            let mut scratch = Scratch::default();
            move || {
                ids.copy_from_slice(values);
                labels.fill(crate::masking::IGNORE_INDEX);
                let rows = ids.chunks_mut(len).zip(labels.chunks_mut(len));
                for (r, (row, lab)) in rows.enumerate() {
                    let b = wm.boundaries.row(r * len, len);
                    let f = if list {
                        mask_row_with_word_list
                    } else {
                        mask_row
                    };
                    f(row, lab, None, b, vocab, spec, wm, r as u32, &mut scratch);
                }
            }
        };
        let (mut one_pass, mut word_list) = (case(false), case(true));
        let ns = min_ns(&mut [&mut one_pass, &mut word_list]);
        println!(
            "masking a {rows}x{len} batch (rows restored first): one pass {:.1} us, word list \
             {:.1} us ({:.2}x)",
            ns[0] / 1e3,
            ns[1] / 1e3,
            ns[1] / ns[0]
        );
    }
}
