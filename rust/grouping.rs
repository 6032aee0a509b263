//! Cutting a stream of documents into fixed-size blocks (the "group texts" step of MLM
//! pretraining).
//!
//! The documents of one map batch form a stream: document 0, the separator (if any), document 1,
//! ... (empty documents contribute nothing, not even a separator). The stream is cut into pieces
//! of `content = block_size - prefix - suffix` tokens and each piece is wrapped as
//! `prefix ++ piece ++ suffix`, so every full block has exactly `block_size` tokens. The last,
//! shorter piece (the tail) is dropped, padded after the suffix to `block_size`, or kept short.
//!
//! Cutting is done once as a [`Plan`] (a list of [`Run`]s in output order, built from the
//! document offsets only) and then applied to each column, so aligned columns
//! (`attention_mask`, `token_type_ids`, ...) are cut exactly like `input_ids`.

use crate::error::KernelError;

/// What happens to the last, incomplete block of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    Drop,
    Pad,
    Keep,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub block_size: usize,
    /// Number of tokens put before each block's content (e.g. 1 for `[CLS]`).
    pub prefix: usize,
    /// Number of tokens put after each block's content (e.g. 1 for `[SEP]`).
    pub suffix: usize,
    /// Whether one separator token goes between consecutive non-empty documents.
    pub separator: bool,
    pub tail: Tail,
}

impl Layout {
    pub fn new(
        block_size: usize,
        prefix: usize,
        suffix: usize,
        separator: bool,
        tail: Tail,
    ) -> Result<Self, KernelError> {
        if block_size < 1 {
            return Err(KernelError::Config(format!(
                "block_size must be a positive integer, got {block_size}"
            )));
        }
        if prefix + suffix >= block_size {
            return Err(KernelError::Config(format!(
                "block_size {block_size} leaves no room for content after {} special tokens \
                 per block",
                prefix + suffix
            )));
        }
        Ok(Layout {
            block_size,
            prefix,
            suffix,
            separator,
            tail,
        })
    }

    /// Content tokens per full block.
    pub fn content(&self) -> usize {
        self.block_size - self.prefix - self.suffix
    }
}

/// One step of writing the output, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// `len` values of chunk `chunk` from position `start` (relative to the chunk's first value).
    Copy {
        chunk: usize,
        start: usize,
        len: usize,
    },
    Prefix,
    Suffix,
    Separator,
    Pad(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub layout: Layout,
    pub runs: Vec<Run>,
    /// Length of each output block.
    pub block_lens: Vec<usize>,
    /// Values per input chunk (each column's chunks must have these lengths).
    pub chunk_lens: Vec<usize>,
    /// Document tokens read.
    pub source_tokens: usize,
    /// Document and separator tokens that went into no block (tail="drop").
    pub dropped_tokens: usize,
    /// Total output values.
    pub out_len: usize,
}

/// List offsets as Arrow stores them: int32 (`list`) or int64 (`large_list`).
pub trait Offset: Copy + Send + Sync {
    fn get(self) -> i64;
}

impl Offset for i32 {
    #[inline(always)]
    fn get(self) -> i64 {
        self as i64
    }
}

impl Offset for i64 {
    #[inline(always)]
    fn get(self) -> i64 {
        self
    }
}

/// Check one chunk's list offsets and return its document lengths' total.
fn chunk_total<O: Offset>(chunk: usize, offsets: &[O]) -> Result<usize, KernelError> {
    let Some(first) = offsets.first().map(|o| o.get()) else {
        return Err(KernelError::Shape(format!(
            "chunk {chunk} has no offsets (a list array of n rows has n + 1)"
        )));
    };
    if first < 0 {
        return Err(KernelError::Shape(format!(
            "chunk {chunk} has a negative offset {first}"
        )));
    }
    for (row, w) in offsets.windows(2).enumerate() {
        if w[1].get() < w[0].get() {
            return Err(KernelError::Shape(format!(
                "chunk {chunk} offsets decrease at row {row} ({} -> {})",
                w[0].get(),
                w[1].get()
            )));
        }
    }
    Ok((offsets[offsets.len() - 1].get() - first) as usize)
}

struct Builder {
    layout: Layout,
    runs: Vec<Run>,
    block_lens: Vec<usize>,
    /// Content tokens in the block being filled.
    filled: usize,
    /// Index into `runs` where the block being filled starts.
    block_start: usize,
    out_len: usize,
}

impl Builder {
    fn push(&mut self, run: Run, len: usize) {
        if self.filled == 0 {
            self.block_start = self.runs.len();
            if self.layout.prefix > 0 {
                self.runs.push(Run::Prefix);
            }
        }
        self.runs.push(run);
        self.filled += len;
        if self.filled == self.layout.content() {
            self.close(0);
        }
    }

    fn close(&mut self, pad: usize) {
        if self.layout.suffix > 0 {
            self.runs.push(Run::Suffix);
        }
        if pad > 0 {
            self.runs.push(Run::Pad(pad));
        }
        let len = self.layout.prefix + self.filled + self.layout.suffix + pad;
        self.block_lens.push(len);
        self.out_len += len;
        self.filled = 0;
    }

    /// Add `len` document tokens starting at `start` of `chunk`, split at block boundaries.
    fn tokens(&mut self, chunk: usize, mut start: usize, mut len: usize) {
        while len > 0 {
            let take = len.min(self.layout.content() - self.filled);
            self.push(
                Run::Copy {
                    chunk,
                    start,
                    len: take,
                },
                take,
            );
            start += take;
            len -= take;
        }
    }
}

/// Cut the documents given by each chunk's list offsets into blocks. A chunk's offsets may start
/// anywhere (a slice of a list array); positions in the plan are relative to its first offset.
pub fn plan<O: Offset>(layout: Layout, chunks: &[&[O]]) -> Result<Plan, KernelError> {
    let chunk_lens = chunks
        .iter()
        .enumerate()
        .map(|(i, o)| chunk_total(i, o))
        .collect::<Result<Vec<_>, _>>()?;
    let mut b = Builder {
        layout,
        runs: Vec::new(),
        block_lens: Vec::new(),
        filled: 0,
        block_start: 0,
        out_len: 0,
    };
    let mut source_tokens = 0usize;
    let mut any = false;
    for (c, offsets) in chunks.iter().enumerate() {
        let base = offsets[0].get();
        for w in offsets.windows(2) {
            let (start, end) = (w[0].get(), w[1].get());
            let len = (end - start) as usize;
            if len == 0 {
                continue;
            }
            if any && layout.separator {
                b.push(Run::Separator, 1);
            }
            any = true;
            b.tokens(c, (start - base) as usize, len);
            source_tokens += len;
        }
    }
    let mut dropped_tokens = 0;
    if b.filled > 0 {
        match layout.tail {
            Tail::Drop => {
                dropped_tokens = b.filled;
                b.runs.truncate(b.block_start);
                b.filled = 0;
            }
            Tail::Keep => b.close(0),
            Tail::Pad => {
                let pad = layout.content() - b.filled;
                b.close(pad);
            }
        }
    }
    Ok(Plan {
        layout,
        runs: b.runs,
        block_lens: b.block_lens,
        chunk_lens,
        source_tokens,
        dropped_tokens,
        out_len: b.out_len,
    })
}

/// Values a column takes where the plan inserts tokens.
#[derive(Clone, Debug)]
pub struct Fill<'a, T> {
    pub prefix: &'a [T],
    pub suffix: &'a [T],
    pub separator: T,
    pub pad: T,
}

/// Where a column's document values come from.
pub enum Source<'a, T> {
    /// One flat slice per input chunk, laid out like the plan's chunks.
    Chunks(Vec<&'a [T]>),
    /// A column that has no input (e.g. an attention mask made for padding): this value at
    /// every document position.
    Constant(T),
}

/// Write one column through the plan.
pub fn apply<T: Copy>(
    plan: &Plan,
    source: &Source<T>,
    fill: &Fill<T>,
    column: &str,
) -> Result<Vec<T>, KernelError> {
    if fill.prefix.len() != plan.layout.prefix || fill.suffix.len() != plan.layout.suffix {
        return Err(KernelError::Config(format!(
            "column {column}: prefix/suffix fill has {}/{} values, the layout needs {}/{}",
            fill.prefix.len(),
            fill.suffix.len(),
            plan.layout.prefix,
            plan.layout.suffix
        )));
    }
    if let Source::Chunks(chunks) = source {
        if chunks.len() != plan.chunk_lens.len() {
            return Err(KernelError::Shape(format!(
                "column {column} has {} chunks but input_ids has {}",
                chunks.len(),
                plan.chunk_lens.len()
            )));
        }
        for (i, (c, &n)) in chunks.iter().zip(&plan.chunk_lens).enumerate() {
            if c.len() != n {
                return Err(KernelError::Shape(format!(
                    "column {column} chunk {i} holds {} values but input_ids holds {n}",
                    c.len()
                )));
            }
        }
    }
    let mut out = Vec::with_capacity(plan.out_len);
    for run in &plan.runs {
        match *run {
            Run::Copy { chunk, start, len } => match source {
                Source::Chunks(c) => out.extend_from_slice(&c[chunk][start..start + len]),
                Source::Constant(v) => out.resize(out.len() + len, *v),
            },
            Run::Prefix => out.extend_from_slice(fill.prefix),
            Run::Suffix => out.extend_from_slice(fill.suffix),
            Run::Separator => out.push(fill.separator),
            Run::Pad(n) => out.resize(out.len() + n, fill.pad),
        }
    }
    debug_assert_eq!(out.len(), plan.out_len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(lens: &[usize]) -> Vec<i64> {
        let mut o = vec![0i64];
        for &l in lens {
            o.push(o[o.len() - 1] + l as i64);
        }
        o
    }

    fn blocks(out: &[i64], plan: &Plan) -> Vec<Vec<i64>> {
        let mut res = Vec::new();
        let mut at = 0;
        for &l in &plan.block_lens {
            res.push(out[at..at + l].to_vec());
            at += l;
        }
        res
    }

    fn run(
        docs: &[&[i64]],
        layout: Layout,
        prefix: &[i64],
        suffix: &[i64],
    ) -> (Vec<Vec<i64>>, Plan) {
        let values: Vec<i64> = docs.iter().flat_map(|d| d.iter().copied()).collect();
        let lens: Vec<usize> = docs.iter().map(|d| d.len()).collect();
        let off = offsets(&lens);
        let plan = plan(layout, &[&off]).unwrap();
        let fill = Fill {
            prefix,
            suffix,
            separator: 99,
            pad: 0,
        };
        let out = apply(&plan, &Source::Chunks(vec![&values]), &fill, "input_ids").unwrap();
        (blocks(&out, &plan), plan)
    }

    #[test]
    fn plain_blocks_drop_the_tail() {
        let l = Layout::new(3, 0, 0, false, Tail::Drop).unwrap();
        let (b, p) = run(&[&[1, 2], &[3, 4, 5, 6], &[7, 8]], l, &[], &[]);
        assert_eq!(b, vec![vec![1, 2, 3], vec![4, 5, 6]]);
        assert_eq!((p.source_tokens, p.dropped_tokens), (8, 2));
    }

    #[test]
    fn separators_and_wrapping() {
        let l = Layout::new(5, 1, 1, true, Tail::Pad).unwrap();
        let (b, p) = run(&[&[1, 2], &[], &[3, 4, 5, 6], &[7]], l, &[101], &[102]);
        // stream: 1 2 S 3 4 5 6 S 7, content 3 per block
        assert_eq!(
            b,
            vec![
                vec![101, 1, 2, 99, 102],
                vec![101, 3, 4, 5, 102],
                vec![101, 6, 99, 7, 102],
            ]
        );
        assert_eq!(p.dropped_tokens, 0);
        let l = Layout::new(6, 1, 1, true, Tail::Pad).unwrap();
        let (b, _) = run(&[&[1, 2], &[3, 4, 5, 6, 7]], l, &[101], &[102]);
        assert_eq!(
            b,
            vec![vec![101, 1, 2, 99, 3, 102], vec![101, 4, 5, 6, 7, 102]]
        );
        let (b, _) = run(&[&[1, 2], &[3, 4, 5]], l, &[101], &[102]);
        assert_eq!(
            b,
            vec![vec![101, 1, 2, 99, 3, 102], vec![101, 4, 5, 102, 0, 0]]
        );
    }

    #[test]
    fn keep_tail_is_short() {
        let l = Layout::new(4, 1, 0, false, Tail::Keep).unwrap();
        let (b, p) = run(&[&[1, 2, 3, 4, 5]], l, &[7], &[]);
        assert_eq!(b, vec![vec![7, 1, 2, 3], vec![7, 4, 5]]);
        assert_eq!(p.out_len, 7);
    }

    #[test]
    fn empty_input_gives_no_blocks() {
        for tail in [Tail::Drop, Tail::Pad, Tail::Keep] {
            let l = Layout::new(4, 1, 1, true, tail).unwrap();
            let (b, p) = run(&[&[], &[]], l, &[1], &[2]);
            assert!(b.is_empty());
            assert_eq!(p.out_len, 0);
        }
    }

    #[test]
    fn several_chunks_with_offset_bases_form_one_stream() {
        let l = Layout::new(3, 0, 0, true, Tail::Keep).unwrap();
        let a = [0i64, 1, 2, 3, 4, 5];
        let b = [10i64, 11, 12];
        // chunk 0 is a slice of its values starting at offset 2: docs [2,3] and [4]
        let off_a = [2i32, 4, 5];
        let off_b = [0i32, 3];
        let plan = plan(l, &[&off_a, &off_b]).unwrap();
        let fill = Fill {
            prefix: &[],
            suffix: &[],
            separator: 99,
            pad: 0,
        };
        let out = apply(&plan, &Source::Chunks(vec![&a[2..5], &b]), &fill, "x").unwrap();
        assert_eq!(out, vec![2, 3, 99, 4, 99, 10, 11, 12]);
        assert_eq!(plan.block_lens, vec![3, 3, 2]);
        let ones = apply(
            &plan,
            &Source::Constant(1u8),
            &Fill {
                prefix: &[],
                suffix: &[],
                separator: 5,
                pad: 0,
            },
            "mask",
        )
        .unwrap();
        assert_eq!(ones, vec![1, 1, 5, 1, 5, 1, 1, 1]);
    }

    #[test]
    fn bad_layouts_and_shapes_are_errors() {
        assert!(Layout::new(0, 0, 0, false, Tail::Drop).is_err());
        assert!(Layout::new(2, 1, 1, false, Tail::Drop).is_err());
        let l = Layout::new(3, 0, 0, false, Tail::Drop).unwrap();
        assert!(plan(l, &[&[3i64, 2]]).is_err());
        assert!(plan::<i32>(l, &[&[]]).is_err());
        assert!(plan(l, &[&[-1i32, 2]]).is_err());
        let p = plan(l, &[&[0i64, 3]]).unwrap();
        let fill = Fill {
            prefix: &[],
            suffix: &[],
            separator: 0i32,
            pad: 0,
        };
        assert!(apply(&p, &Source::Chunks(vec![&[1, 2]]), &fill, "x").is_err());
        assert!(apply(&p, &Source::Chunks(vec![]), &fill, "x").is_err());
        let bad_fill = Fill {
            prefix: &[1],
            suffix: &[],
            separator: 0i32,
            pad: 0,
        };
        assert!(apply(&p, &Source::Chunks(vec![&[1, 2, 3]]), &bad_fill, "x").is_err());
    }

    #[test]
    fn every_full_block_has_the_block_size_and_content_is_preserved() {
        // A small exhaustive sweep over layouts and document lengths.
        let docs_lens: [&[usize]; 4] = [&[5, 0, 7, 1], &[1, 1, 1], &[20], &[3, 9, 2, 0, 4]];
        for lens in docs_lens {
            let mut next = 1i64;
            let docs: Vec<Vec<i64>> = lens
                .iter()
                .map(|&l| {
                    let d: Vec<i64> = (next..next + l as i64).collect();
                    next += l as i64;
                    d
                })
                .collect();
            let refs: Vec<&[i64]> = docs.iter().map(|d| d.as_slice()).collect();
            for bs in 3..9 {
                for (pre, suf) in [(0, 0), (1, 1), (1, 0), (0, 2)] {
                    for sep in [false, true] {
                        for tail in [Tail::Drop, Tail::Pad, Tail::Keep] {
                            let l = Layout::new(bs, pre, suf, sep, tail).unwrap();
                            let prefix = vec![-1i64; pre];
                            let suffix = vec![-2i64; suf];
                            let (b, p) = run(&refs, l, &prefix, &suffix);
                            let mut content = Vec::new();
                            for (i, blk) in b.iter().enumerate() {
                                let last = i + 1 == b.len();
                                if !(last && tail == Tail::Keep) {
                                    assert_eq!(blk.len(), bs);
                                }
                                assert_eq!(&blk[..pre], &prefix[..]);
                                let body: Vec<i64> =
                                    blk[pre..].iter().copied().filter(|&v| v > 0).collect();
                                content.extend(body);
                            }
                            let mut stream = Vec::new();
                            for d in refs.iter().filter(|d| !d.is_empty()) {
                                if sep && !stream.is_empty() {
                                    stream.push(99);
                                }
                                stream.extend_from_slice(d);
                            }
                            let kept = stream.len() - p.dropped_tokens;
                            assert_eq!(content, stream[..kept].to_vec());
                            assert!(p.dropped_tokens < l.content());
                        }
                    }
                }
            }
        }
    }
}
