//! Sentence-pair instances for next-sentence prediction (BERT) and sentence-order prediction
//! (ALBERT), following `create_instances_from_document` of Google's `create_pretraining_data.py`
//! over the documents of one map batch.
//!
//! Per document (its non-empty sentences in order):
//!
//! * `target = max_num_tokens`, or with probability `short_seq_prob` a uniform length in
//!   `[2, max_num_tokens]` (drawn once per document, as Google does);
//! * sentences are gathered into a chunk until it holds `>= target` tokens or the document
//!   ends; A is the first `a_end` sentences of the chunk (`a_end` uniform in `[1, m - 1]` for a
//!   chunk of `m >= 2` sentences, else 1), B is the rest;
//! * NSP: when `m == 1` or with probability `nsp_probability`, B is instead read from a random
//!   start sentence of another document of the batch until it holds `target - |A|` tokens, and the
//!   chunk's unused sentences are put back (the next chunk starts after A); label 1 = random;
//! * SOP: when `m == 1` B is random as above (ALBERT's reference code does the same); otherwise A
//!   and B are swapped with probability `nsp_probability`; label 1 = swapped or random;
//! * the pair is trimmed to `max_num_tokens` by removing a token from the front or the back
//!   (a fair coin) of the longer side (B on ties) until it fits.
//!
//! Differences from Google: the random document is drawn uniformly from the *other* documents of
//! the batch (Google tries 10 times to avoid its own); every draw comes from a counter-based
//! stream keyed by `(key words, pass, document content)` (see `rng`), so results are a pure
//! function of the seed and the batch (see `doc_key`). Each draw uses its own lane and counter:
//! `LANE_TARGET` (0: short?, 1: length), and per chunk `k`: `LANE_SPLIT`, `LANE_NEXT`,
//! `LANE_OTHER_DOC`, `LANE_OTHER_START`; `LANE_TRUNCATE` counts removed tokens across the document.

use crate::error::KernelError;
use crate::masking::check_probability;
use crate::padding::TokenId;
use crate::rng::{below, index, threshold, Lane, Murmur};

pub const LANE_TARGET: u32 = 16;
pub const LANE_SPLIT: u32 = 17;
pub const LANE_NEXT: u32 = 18;
pub const LANE_OTHER_DOC: u32 = 19;
pub const LANE_OTHER_START: u32 = 20;
pub const LANE_TRUNCATE: u32 = 21;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Nsp,
    Sop,
}

#[derive(Clone, Debug)]
pub struct PairSpec<'a> {
    /// Tokens of A plus B (`max_seq_length` minus the template's special tokens); at least 2.
    pub max_num_tokens: usize,
    /// Thresholds (see `rng::threshold`).
    pub short_seq: u64,
    pub random_next: u64,
    pub task: Task,
    pub key_words: &'a [u32],
    /// Passes over the batch with different randomness (Google's `dupe_factor`).
    pub dupe_factor: u32,
}

impl<'a> PairSpec<'a> {
    pub fn new(
        max_num_tokens: usize,
        short_seq_prob: f64,
        nsp_probability: f64,
        task: Task,
        key_words: &'a [u32],
        dupe_factor: u32,
    ) -> Result<Self, KernelError> {
        check_probability("short_seq_prob", short_seq_prob)?;
        check_probability("nsp_probability", nsp_probability)?;
        if max_num_tokens < 2 {
            return Err(KernelError::Config(format!(
                "max_seq_length leaves {max_num_tokens} tokens for A and B after the special \
                 tokens; at least 2 are needed"
            )));
        }
        Ok(PairSpec {
            max_num_tokens,
            short_seq: threshold(short_seq_prob),
            random_next: threshold(nsp_probability),
            task,
            key_words,
            dupe_factor,
        })
    }
}

/// Special tokens and token types around A and B: `prefix A middle B suffix`.
#[derive(Clone, Debug)]
pub struct Template<'a> {
    pub prefix: &'a [i64],
    pub middle: &'a [i64],
    pub suffix: &'a [i64],
    pub prefix_types: &'a [u8],
    pub middle_types: &'a [u8],
    pub suffix_types: &'a [u8],
    pub a_type: u8,
    pub b_type: u8,
}

impl Template<'_> {
    pub fn specials(&self) -> usize {
        self.prefix.len() + self.middle.len() + self.suffix.len()
    }

    /// Every special token has its token type.
    pub fn check(&self) -> Result<(), KernelError> {
        if self.prefix_types.len() != self.prefix.len()
            || self.middle_types.len() != self.middle.len()
            || self.suffix_types.len() != self.suffix.len()
        {
            return Err(KernelError::Config(
                "template token types must match its special tokens".into(),
            ));
        }
        Ok(())
    }
}

/// Documents as `doc_offsets` (into sentences, `n_docs + 1` entries) and `sent_offsets`
/// (into `tokens`), both relative to the start of their buffers.
pub struct Docs<'a, T> {
    pub doc_offsets: &'a [usize],
    pub sent_offsets: &'a [usize],
    pub tokens: &'a [T],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instances<T> {
    pub ids: Vec<T>,
    pub types: Vec<u8>,
    /// `n + 1` offsets into `ids`/`types`.
    pub offsets: Vec<usize>,
    pub labels: Vec<u8>,
}

/// One side of a pair: a contiguous token range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: usize,
    len: usize,
}

fn check_offsets(name: &str, offsets: &[usize], end: usize) -> Result<(), KernelError> {
    if offsets.first() != Some(&0) {
        return Err(KernelError::Shape(format!("{name} must start at 0")));
    }
    for (i, w) in offsets.windows(2).enumerate() {
        if w[1] < w[0] {
            return Err(KernelError::Shape(format!(
                "{name} decrease at entry {i} ({} -> {})",
                w[0], w[1]
            )));
        }
    }
    if offsets[offsets.len() - 1] != end {
        return Err(KernelError::Shape(format!(
            "{name} end at {} but the buffer holds {end} entries",
            offsets[offsets.len() - 1]
        )));
    }
    Ok(())
}

/// Non-empty sentences of each document: `(start, len)` token ranges and per-document ranges
/// into them.
fn sentences<T>(docs: &Docs<T>) -> Result<(Vec<Span>, Vec<usize>), KernelError> {
    // Sentence offsets first: they are known to be non-empty below.
    check_offsets("sentence offsets", docs.sent_offsets, docs.tokens.len())?;
    let n_sentences = docs.sent_offsets.len() - 1;
    check_offsets("document offsets", docs.doc_offsets, n_sentences)?;
    let n_docs = docs.doc_offsets.len() - 1;
    let mut spans = Vec::with_capacity(n_sentences);
    let mut ranges = Vec::with_capacity(n_docs + 1);
    ranges.push(0);
    for d in 0..n_docs {
        for s in docs.doc_offsets[d]..docs.doc_offsets[d + 1] {
            let (a, b) = (docs.sent_offsets[s], docs.sent_offsets[s + 1]);
            if b > a {
                spans.push(Span {
                    start: a,
                    len: b - a,
                });
            }
        }
        if spans.len() == ranges[d] {
            let what = if docs.doc_offsets[d + 1] == docs.doc_offsets[d] {
                "has no sentences"
            } else {
                "has only empty sentences (no tokens)"
            };
            return Err(KernelError::Config(format!(
                "document {d} of the batch {what}; filter such rows out first"
            )));
        }
        ranges.push(spans.len());
    }
    Ok((spans, ranges))
}

/// Multiplier of the content sums in `doc_key`.
pub const CONTENT_MUL: u32 = 0x9E37_79B1;

/// A document's key: MurmurHash3 of `key_words ++ [pass, n_sentences] ++ sentence lengths ++
/// [c0, c1, c2, c3]`, where `cj` folds the tokens at positions `i % 4 == j` of the document as
/// `cj = cj * CONTENT_MUL + token (mod 2^32)`, starting from `cj = j` (four independent chains
/// of one multiply-add per token: cheap next to the copying).
fn doc_key<T: TokenId>(key_words: &[u32], pass: u32, sents: &[Span], tokens: &[T]) -> u32 {
    let mut m = Murmur::new(0);
    key_words.iter().for_each(|&w| m.push(w));
    m.push(pass);
    m.push(sents.len() as u32);
    for s in sents {
        m.push(s.len as u32);
    }
    // Non-empty sentences of a document are contiguous in the token buffer.
    let (first, last) = (sents[0], sents[sents.len() - 1]);
    let content = &tokens[first.start..last.start + last.len];
    let mut c = [0u32, 1, 2, 3];
    let fold = |h: u32, t: T| h.wrapping_mul(CONTENT_MUL).wrapping_add(t.to_i64() as u32);
    let mut quads = content.chunks_exact(4);
    for q in &mut quads {
        c[0] = fold(c[0], q[0]);
        c[1] = fold(c[1], q[1]);
        c[2] = fold(c[2], q[2]);
        c[3] = fold(c[3], q[3]);
    }
    for (j, &t) in quads.remainder().iter().enumerate() {
        c[j] = fold(c[j], t);
    }
    c.iter().for_each(|&h| m.push(h));
    m.finish()
}

struct Lanes {
    target: Lane,
    split: Lane,
    next: Lane,
    other_doc: Lane,
    other_start: Lane,
    truncate: Lane,
}

impl Lanes {
    fn new(key: u32) -> Self {
        Lanes {
            target: Lane::new(key, LANE_TARGET),
            split: Lane::new(key, LANE_SPLIT),
            next: Lane::new(key, LANE_NEXT),
            other_doc: Lane::new(key, LANE_OTHER_DOC),
            other_start: Lane::new(key, LANE_OTHER_START),
            truncate: Lane::new(key, LANE_TRUNCATE),
        }
    }
}

/// Trim the longer side (B on ties) at a random end until both fit in `max` tokens: Google's
/// loop, one token per step, where step `t` removes the first token when draw `counter + t` of
/// the lane is below one half and the last one otherwise.
///
/// The side each step trims depends only on the lengths, so it is computed directly: first the
/// longer side alone until both are equal, then B, A, B, A, ... (B on ties); only the coins are
/// drawn, in a branch-free loop.
fn truncate_pair(a: &mut Span, b: &mut Span, max: usize, lane: &Lane, counter: &mut u32) {
    let excess = (a.len + b.len).saturating_sub(max);
    if excess == 0 {
        return;
    }
    let c = *counter;
    let fronts = |from: usize, n: usize, stride: usize| -> usize {
        (0..n)
            .map(|j| (lane.at(c.wrapping_add((from + j * stride) as u32)) >> 31 == 0) as usize)
            .sum()
    };
    let (mut cut_a, mut cut_b) = (0usize, 0usize);
    let (mut front_a, mut front_b) = (0usize, 0usize);
    let first = excess.min(a.len.abs_diff(b.len));
    if a.len > b.len {
        cut_a += first;
        front_a += fronts(0, first, 1);
    } else {
        cut_b += first;
        front_b += fronts(0, first, 1);
    }
    let rest = excess - first;
    let (steps_b, steps_a) = (rest.div_ceil(2), rest / 2);
    cut_b += steps_b;
    front_b += fronts(first, steps_b, 2);
    cut_a += steps_a;
    front_a += fronts(first + 1, steps_a, 2);
    a.start += front_a;
    a.len -= cut_a;
    b.start += front_b;
    b.len -= cut_b;
    *counter = c.wrapping_add(excess as u32);
}

/// Sentences of the batch: `spans[ranges[d]..ranges[d + 1]]` are document `d`'s.
struct Corpus<'a, T> {
    spans: &'a [Span],
    ranges: &'a [usize],
    tokens: &'a [T],
}

impl<T> Corpus<'_, T> {
    fn n_docs(&self) -> usize {
        self.ranges.len() - 1
    }

    fn doc(&self, d: usize) -> &[Span] {
        &self.spans[self.ranges[d]..self.ranges[d + 1]]
    }
}

/// The tokens from the first of `sents` to the end of the last.
fn covering(sents: &[Span]) -> Span {
    let (first, last) = (sents[0], sents[sents.len() - 1]);
    Span {
        start: first.start,
        len: last.start + last.len - first.start,
    }
}

struct Writer<'a, 't, T> {
    tpl: &'a Template<'t>,
    tokens: &'a [T],
    out: Instances<T>,
    prefix: Vec<T>,
    middle: Vec<T>,
    suffix: Vec<T>,
}

impl<'a, 't, T: TokenId + TryFrom<i64>> Writer<'a, 't, T> {
    fn new(tpl: &'a Template<'t>, tokens: &'a [T], expect: usize) -> Result<Self, KernelError> {
        let mut out = Instances {
            ids: Vec::with_capacity(expect),
            types: Vec::with_capacity(expect),
            offsets: vec![0],
            labels: Vec::new(),
        };
        out.offsets.reserve(expect / 4);
        Ok(Writer {
            tpl,
            tokens,
            out,
            prefix: convert(tpl.prefix)?,
            middle: convert(tpl.middle)?,
            suffix: convert(tpl.suffix)?,
        })
    }

    fn emit(&mut self, a: Span, b: Span, label: bool) {
        let o = &mut self.out;
        let t = self.tpl;
        o.ids.extend_from_slice(&self.prefix);
        o.ids
            .extend_from_slice(&self.tokens[a.start..a.start + a.len]);
        o.ids.extend_from_slice(&self.middle);
        o.ids
            .extend_from_slice(&self.tokens[b.start..b.start + b.len]);
        o.ids.extend_from_slice(&self.suffix);
        o.types.extend_from_slice(t.prefix_types);
        o.types.resize(o.types.len() + a.len, t.a_type);
        o.types.extend_from_slice(t.middle_types);
        o.types.resize(o.types.len() + b.len, t.b_type);
        o.types.extend_from_slice(t.suffix_types);
        o.offsets.push(o.ids.len());
        o.labels.push(label as u8);
    }
}

fn convert<T: TryFrom<i64>>(ids: &[i64]) -> Result<Vec<T>, KernelError> {
    ids.iter()
        .map(|&i| {
            T::try_from(i).map_err(|_| {
                KernelError::Config(format!(
                    "special token id {i} does not fit the token id type of the input"
                ))
            })
        })
        .collect()
}

/// The document's target length: `max`, or with probability `short_seq` a uniform length in
/// `[2, max]`.
fn target_length(lanes: &Lanes, spec: &PairSpec) -> usize {
    let max = spec.max_num_tokens;
    if below(lanes.target.at(0), spec.short_seq) {
        2 + index(lanes.target.at(1), max - 1)
    } else {
        max
    }
}

/// A random B for chunk `k` of document `d`: sentences of another document (`d` itself when the
/// batch has one) from a random start, until they hold `want` tokens or the document ends.
fn random_b<T>(corpus: &Corpus<T>, d: usize, lanes: &Lanes, k: u32, want: isize) -> Span {
    let n_docs = corpus.n_docs();
    let other = if n_docs > 1 {
        let r = index(lanes.other_doc.at(k), n_docs - 1);
        if r >= d {
            r + 1
        } else {
            r
        }
    } else {
        d
    };
    let sents = corpus.doc(other);
    let start = index(lanes.other_start.at(k), sents.len());
    let mut got = 0usize;
    let mut end = start;
    while end < sents.len() {
        got += sents[end].len;
        end += 1;
        if got as isize >= want {
            break;
        }
    }
    covering(&sents[start..end])
}

/// The instances of document `d` in pass `pass` (see the module documentation).
fn document_instances<T: TokenId + TryFrom<i64>>(
    w: &mut Writer<T>,
    corpus: &Corpus<T>,
    d: usize,
    pass: u32,
    spec: &PairSpec,
) {
    let sents = corpus.doc(d);
    let lanes = Lanes::new(doc_key(spec.key_words, pass, sents, corpus.tokens));
    let target = target_length(&lanes, spec);
    let mut k = 0u32;
    let mut trunc = 0u32;
    let mut chunk_start = 0usize;
    let mut length = 0usize;
    let mut i = 0usize;
    while i < sents.len() {
        length += sents[i].len;
        if i == sents.len() - 1 || length >= target {
            let m = i - chunk_start + 1;
            let a_end = if m >= 2 {
                1 + index(lanes.split.at(k), m - 1)
            } else {
                1
            };
            let mut a = covering(&sents[chunk_start..chunk_start + a_end]);
            let coin = below(lanes.next.at(k), spec.random_next);
            let random_next = m == 1 || (spec.task == Task::Nsp && coin);
            let swap = spec.task == Task::Sop && m >= 2 && coin;
            let mut b = if random_next {
                // The chunk's sentences after A go back to the document.
                i -= m - a_end;
                random_b(corpus, d, &lanes, k, target as isize - a.len as isize)
            } else {
                covering(&sents[chunk_start + a_end..i + 1])
            };
            if swap {
                std::mem::swap(&mut a, &mut b);
            }
            truncate_pair(
                &mut a,
                &mut b,
                spec.max_num_tokens,
                &lanes.truncate,
                &mut trunc,
            );
            w.emit(a, b, random_next || swap);
            k += 1;
            chunk_start = i + 1;
            length = 0;
        }
        i += 1;
    }
}

/// All instances of one batch of documents.
pub fn instances<T: TokenId + TryFrom<i64>>(
    docs: &Docs<T>,
    spec: &PairSpec,
    tpl: &Template,
) -> Result<Instances<T>, KernelError> {
    tpl.check()?;
    let (spans, ranges) = sentences(docs)?;
    let corpus = Corpus {
        spans: &spans,
        ranges: &ranges,
        tokens: docs.tokens,
    };
    // Random-next pairs reuse sentences, so the output is usually larger than the input.
    let expect = 2 * docs.tokens.len() * spec.dupe_factor as usize;
    let mut w = Writer::new(tpl, docs.tokens, expect)?;
    for pass in 0..spec.dupe_factor {
        for d in 0..corpus.n_docs() {
            document_instances(&mut w, &corpus, d, pass, spec);
        }
    }
    Ok(w.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BERT: Template<'static> = Template {
        prefix: &[101],
        middle: &[102],
        suffix: &[102],
        prefix_types: &[0],
        middle_types: &[0],
        suffix_types: &[1],
        a_type: 0,
        b_type: 1,
    };

    /// Documents whose token ids encode (document, sentence, position) as d*10000 + s*100 + p.
    fn corpus(shape: &[&[usize]]) -> (Vec<usize>, Vec<usize>, Vec<i64>) {
        let (mut docs, mut sents, mut toks) = (vec![0], vec![0], Vec::new());
        for (d, doc) in shape.iter().enumerate() {
            for (s, &n) in doc.iter().enumerate() {
                toks.extend((0..n).map(|p| (d * 10000 + s * 100 + p) as i64 + 1000));
                sents.push(toks.len());
            }
            docs.push(sents.len() - 1);
        }
        (docs, sents, toks)
    }

    fn spec(max: usize, task: Task, words: &[u32]) -> PairSpec<'_> {
        PairSpec::new(max, 0.1, 0.5, task, words, 1).unwrap()
    }

    fn split(inst: &Instances<i64>, i: usize) -> (Vec<i64>, Vec<i64>) {
        let row = &inst.ids[inst.offsets[i]..inst.offsets[i + 1]];
        let types = &inst.types[inst.offsets[i]..inst.offsets[i + 1]];
        assert_eq!(row[0], 101);
        assert_eq!(*row.last().unwrap(), 102);
        let sep = row.iter().position(|&t| t == 102).unwrap();
        assert!(types[..=sep].iter().all(|&t| t == 0));
        assert!(types[sep + 1..].iter().all(|&t| t == 1));
        (row[1..sep].to_vec(), row[sep + 1..row.len() - 1].to_vec())
    }

    #[test]
    fn pairs_fit_come_from_the_right_documents_and_are_reproducible() {
        let shape: Vec<Vec<usize>> = (0..30)
            .map(|d| (0..(d % 7 + 1)).map(|s| (d * 3 + s * 5) % 11 + 1).collect())
            .collect();
        let refs: Vec<&[usize]> = shape.iter().map(|v| v.as_slice()).collect();
        let (docs, sents, toks) = corpus(&refs);
        let input = Docs {
            doc_offsets: &docs,
            sent_offsets: &sents,
            tokens: &toks,
        };
        for task in [Task::Nsp, Task::Sop] {
            for max in [2usize, 5, 13, 40] {
                let words = [1u32, 2, 3];
                let s = spec(max, task, &words);
                let out = instances(&input, &s, &BERT).unwrap();
                assert_eq!(out, instances(&input, &s, &BERT).unwrap());
                assert!(!out.labels.is_empty());
                for i in 0..out.labels.len() {
                    let (a, b) = split(&out, i);
                    assert!(!a.is_empty() && !b.is_empty());
                    assert!(a.len() + b.len() <= max);
                    let doc = |t: i64| (t - 1000) / 10000;
                    // each side is contiguous in its document
                    for side in [&a, &b] {
                        assert!(side.iter().all(|&t| doc(t) == doc(side[0])));
                        for w in side.windows(2) {
                            let (x, y) = (w[0] - 1000, w[1] - 1000);
                            assert!(y == x + 1 || (y / 100 > x / 100 && y % 100 == 0));
                        }
                    }
                    let same = doc(a[0]) == doc(b[0]);
                    match (task, out.labels[i]) {
                        (Task::Nsp, 0) => assert!(same && a.last() < b.first()),
                        (Task::Nsp, _) => assert!(!same),
                        (Task::Sop, 0) => assert!(same && a.last() < b.first()),
                        (Task::Sop, _) => assert!(!same || a.first() > b.last()),
                    }
                }
            }
        }
    }

    #[test]
    fn a_single_document_pairs_with_itself_and_seeds_differ() {
        let (docs, sents, toks) = corpus(&[&[3, 3, 3, 3, 3, 3]]);
        let input = Docs {
            doc_offsets: &docs,
            sent_offsets: &sents,
            tokens: &toks,
        };
        let a = instances(&input, &spec(8, Task::Nsp, &[1]), &BERT).unwrap();
        let b = instances(&input, &spec(8, Task::Nsp, &[2]), &BERT).unwrap();
        assert!(!a.labels.is_empty());
        assert_ne!(a, b);
    }

    #[test]
    fn bad_input_is_an_error() {
        let (docs, sents, toks) = corpus(&[&[3, 3], &[]]);
        let input = Docs {
            doc_offsets: &docs,
            sent_offsets: &sents,
            tokens: &toks,
        };
        let err = instances(&input, &spec(8, Task::Nsp, &[1]), &BERT).unwrap_err();
        assert!(err.to_string().contains("document 1"), "{err}");
        let (docs, sents, toks) = corpus(&[&[3, 3], &[0, 0]]);
        let input = Docs {
            doc_offsets: &docs,
            sent_offsets: &sents,
            tokens: &toks,
        };
        let err = instances(&input, &spec(8, Task::Nsp, &[1]), &BERT).unwrap_err();
        assert!(err.to_string().contains("only empty"), "{err}");
        let (_, sents, toks) = corpus(&[&[3, 3]]);
        assert!(PairSpec::new(1, 0.1, 0.5, Task::Nsp, &[1], 1).is_err());
        assert!(PairSpec::new(8, 1.5, 0.5, Task::Nsp, &[1], 1).is_err());
        assert!(PairSpec::new(8, 0.1, f64::NAN, Task::Nsp, &[1], 1).is_err());
        let bad = Docs {
            doc_offsets: &[0, 3],
            sent_offsets: &sents,
            tokens: &toks,
        };
        assert!(instances(&bad, &spec(8, Task::Nsp, &[1]), &BERT).is_err());
        let no_sentence_offsets = Docs {
            doc_offsets: &[0],
            sent_offsets: &[],
            tokens: &toks,
        };
        assert!(instances(&no_sentence_offsets, &spec(8, Task::Nsp, &[1]), &BERT).is_err());
        let empty = Docs {
            doc_offsets: &[0],
            sent_offsets: &[0],
            tokens: &[] as &[i64],
        };
        let none = instances(&empty, &spec(8, Task::Nsp, &[1]), &BERT).unwrap();
        assert!(none.labels.is_empty() && none.offsets == vec![0]);
        let small: Vec<u8> = vec![1, 2, 3, 4];
        let u8docs = Docs {
            doc_offsets: &[0, 2],
            sent_offsets: &[0, 2, 4],
            tokens: &small,
        };
        // 101/102 fit in u8; 300 does not.
        let tpl = Template {
            prefix: &[300],
            ..BERT
        };
        assert!(instances(&u8docs, &spec(8, Task::Nsp, &[1]), &tpl).is_err());
        assert!(instances(&u8docs, &spec(8, Task::Nsp, &[1]), &BERT).is_ok());
    }

    #[test]
    fn truncation_matches_the_step_by_step_loop() {
        let lane = Lane::new(99, LANE_TRUNCATE);
        for la in 1..30usize {
            for lb in 1..30usize {
                for max in 2..40usize {
                    for c0 in [0u32, 5, u32::MAX - 3] {
                        let (mut a, mut b) = (
                            Span {
                                start: 100,
                                len: la,
                            },
                            Span {
                                start: 500,
                                len: lb,
                            },
                        );
                        let mut c = c0;
                        truncate_pair(&mut a, &mut b, max, &lane, &mut c);
                        let (mut ea, mut eb) = (
                            Span {
                                start: 100,
                                len: la,
                            },
                            Span {
                                start: 500,
                                len: lb,
                            },
                        );
                        let mut ec = c0;
                        while ea.len + eb.len > max {
                            let side = if ea.len > eb.len { &mut ea } else { &mut eb };
                            if below(lane.at(ec), 1 << 31) {
                                side.start += 1;
                            }
                            side.len -= 1;
                            ec = ec.wrapping_add(1);
                        }
                        assert_eq!((a, b, c), (ea, eb, ec), "{la} {lb} {max} {c0}");
                    }
                }
            }
        }
    }

    #[test]
    fn dupe_factor_repeats_the_batch_with_fresh_draws() {
        let (docs, sents, toks) = corpus(&[&[4, 4, 4, 4, 4], &[4, 4, 4, 4]]);
        let input = Docs {
            doc_offsets: &docs,
            sent_offsets: &sents,
            tokens: &toks,
        };
        let one = instances(&input, &spec(9, Task::Nsp, &[7]), &BERT).unwrap();
        let mut s = spec(9, Task::Nsp, &[7]);
        s.dupe_factor = 3;
        let three = instances(&input, &s, &BERT).unwrap();
        let n = one.labels.len();
        assert_eq!(three.labels[..n], one.labels[..]);
        assert_eq!(three.ids[..one.ids.len()], one.ids[..]);
        assert!(three.labels.len() > 2 * n - 2);
        assert_ne!(
            three.ids[one.ids.len()..],
            three.ids[..three.ids.len() - one.ids.len()]
        );
    }
}
