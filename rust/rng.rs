//! Counter-based random numbers from 32-bit integer operations only.
//!
//! Every random value is a pure function of a key and a counter, so the same value can be
//! recomputed anywhere (another process, another batch order, a torch implementation on a GPU)
//! without carrying generator state. The algorithm, written out so it can be reimplemented:
//!
//! * `fmix32(h)`: murmur3's finaliser: `h ^= h >> 16; h *= 0x85EBCA6B; h ^= h >> 13;
//!   h *= 0xC2B2AE35; h ^= h >> 16` (all arithmetic modulo 2^32).
//! * `hash_words(seed, words)`: MurmurHash3_x86_32 of the words as little-endian bytes,
//!   i.e. for each word `k *= 0xCC9E2D51; k = rotl(k, 15); k *= 0x1B873593; h ^= k;
//!   h = rotl(h, 13); h = h * 5 + 0xE6546B64`, then `fmix32(h ^ (4 * len))`.
//! * A row's key is `hash_words(0, batch_words ++ row_words)` (see `RowKey`).
//! * A lane (one purpose: selection, replacement, random token, ...) has the key
//!   `lane_key = hash_words(row_key, [lane])`, and its `i`-th value is
//!   `fmix32(lane_key + i * 0x9E3779B9)`.
//! * A probability `p` is the integer threshold `round(p * 2^32)`; an event happens when the
//!   drawn value is below the threshold. An index in `[0, n)` is `(value * n) >> 32`.
//!
//! Lanes of a row's key: 1 selection, 2 replacement, 3 random token (`masking`), 4 the start of
//! the window a row longer than `max_length` is cropped to (`cropping`: value 0 of the lane, as
//! an index into the possible starts), 16 and 17 span lengths and phases (`words`).

pub const GOLDEN: u32 = 0x9E37_79B9;

/// Lanes: independent streams of one row.
pub const LANE_SELECT: u32 = 1;
pub const LANE_REPLACE: u32 = 2;
pub const LANE_RANDOM_TOKEN: u32 = 3;
/// Where a cropped row's window starts (`cropping`).
pub const LANE_CROP: u32 = 4;

#[inline(always)]
pub fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^= h >> 16;
    h
}

/// Streaming MurmurHash3_x86_32 over 32-bit words.
#[derive(Clone, Copy, Debug)]
pub struct Murmur {
    h: u32,
    len: u32,
}

impl Murmur {
    pub fn new(seed: u32) -> Self {
        Murmur { h: seed, len: 0 }
    }

    #[inline(always)]
    pub fn push(&mut self, word: u32) {
        let mut k = word.wrapping_mul(0xCC9E_2D51);
        k = k.rotate_left(15);
        k = k.wrapping_mul(0x1B87_3593);
        self.h ^= k;
        self.h = self.h.rotate_left(13);
        self.h = self.h.wrapping_mul(5).wrapping_add(0xE654_6B64);
        self.len = self.len.wrapping_add(1);
    }

    #[inline]
    pub fn finish(&self) -> u32 {
        fmix32(self.h ^ self.len.wrapping_mul(4))
    }
}

pub fn hash_words(seed: u32, words: &[u32]) -> u32 {
    let mut m = Murmur::new(seed);
    for &w in words {
        m.push(w);
    }
    m.finish()
}

/// One independent stream of values indexed by a counter.
#[derive(Clone, Copy, Debug)]
pub struct Lane {
    key: u32,
}

impl Lane {
    pub fn new(row_key: u32, lane: u32) -> Self {
        Lane {
            key: hash_words(row_key, &[lane]),
        }
    }

    #[inline(always)]
    pub fn at(&self, i: u32) -> u32 {
        fmix32(self.key.wrapping_add(i.wrapping_mul(GOLDEN)))
    }
}

/// `round(p * 2^32)`, the threshold a value must stay below for an event of probability `p`.
pub fn threshold(p: f64) -> u64 {
    let t = (p.clamp(0.0, 1.0) * 4_294_967_296.0).round();
    t as u64
}

#[inline(always)]
pub fn below(value: u32, threshold: u64) -> bool {
    (value as u64) < threshold
}

/// Index in `[0, n)` from a 32-bit value (multiply-shift; bias below n / 2^32).
#[inline(always)]
pub fn index(value: u32, n: usize) -> usize {
    ((value as u64 * n as u64) >> 32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_matches_reference_vectors() {
        // MurmurHash3_x86_32 reference values for 4-byte-aligned inputs.
        assert_eq!(hash_words(0, &[]), 0);
        assert_eq!(hash_words(1, &[]), 0x514E_28B7);
        assert_eq!(hash_words(0xFFFF_FFFF, &[]), 0x81F1_6F39);
        // "test" = bytes 74 65 73 74 = little-endian word 0x74736574.
        assert_eq!(hash_words(0, &[0x7473_6574]), 0xBA6B_D213);
        // 4 zero bytes.
        assert_eq!(hash_words(0, &[0]), 0x2362_F9DE);
    }

    #[test]
    fn fmix32_is_a_bijection_on_a_sample() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..100_000u32 {
            assert!(seen.insert(fmix32(i.wrapping_mul(7919))));
        }
    }

    #[test]
    fn lanes_are_uniform_enough() {
        // Mean of 1e6 draws scaled to [0, 1) is 0.5 within 5 sigma (sigma = 1/sqrt(12 n)).
        let lane = Lane::new(12345, LANE_SELECT);
        let n = 1_000_000u32;
        let mean: f64 = (0..n)
            .map(|i| lane.at(i) as f64 / 4_294_967_296.0)
            .sum::<f64>()
            / n as f64;
        let sigma = 1.0 / (12.0 * n as f64).sqrt();
        assert!((mean - 0.5).abs() < 5.0 * sigma, "mean {mean}");
        // Threshold events follow their probability.
        let t = threshold(0.15);
        let hits = (0..n).filter(|&i| below(lane.at(i), t)).count() as f64;
        let sd = (n as f64 * 0.15 * 0.85).sqrt();
        assert!((hits - 0.15 * n as f64).abs() < 5.0 * sd, "hits {hits}");
    }

    #[test]
    fn different_lanes_and_rows_differ() {
        let a = Lane::new(1, LANE_SELECT);
        let b = Lane::new(1, LANE_REPLACE);
        let c = Lane::new(2, LANE_SELECT);
        let same_ab = (0..1000).filter(|&i| a.at(i) == b.at(i)).count();
        let same_ac = (0..1000).filter(|&i| a.at(i) == c.at(i)).count();
        assert_eq!(same_ab, 0);
        assert_eq!(same_ac, 0);
    }

    #[test]
    fn threshold_and_index_edges() {
        assert_eq!(threshold(0.0), 0);
        assert_eq!(threshold(1.0), 1u64 << 32);
        assert!(below(u32::MAX, threshold(1.0)));
        assert!(!below(0, threshold(0.0)));
        assert_eq!(index(0, 10), 0);
        assert_eq!(index(u32::MAX, 10), 9);
    }
}
