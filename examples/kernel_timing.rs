use _core::collate::{collate, Collate, KeyMode, Outputs};
use _core::masking::{Count, MaskSpec, Vocab};
use _core::padding::Rows;
use std::time::Instant;

fn main() {
    let (b, l) = (32usize, 512usize);
    let mut sp = vec![0u8; 30522];
    for s in 0..5 {
        sp[s] = 1;
    }
    let rnd: Vec<i64> = (5..30522).collect();
    let mut x = 12345u64;
    let values: Vec<i64> = (0..b * l)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            5 + ((x >> 33) % 30000) as i64
        })
        .collect();
    let starts: Vec<usize> = (0..b).map(|i| i * l).collect();
    let lens = vec![l; b];
    let rows = Rows::new(&values, &starts, &lens).unwrap();
    let (mut ids, mut labels, mut att) = (vec![0i64; b * l], vec![0i64; b * l], vec![0i64; b * l]);
    for (mode, mlm, p) in [
        (KeyMode::RowIndex, false, 0.15),
        (KeyMode::RowIndex, true, 0.0),
        (KeyMode::RowIndex, true, 0.15),
        (KeyMode::Content, true, 0.15),
    ] {
        let cfg = Collate {
            vocab: Vocab {
                is_special: &sp,
                random_ids: &rnd,
            },
            spec: MaskSpec::new(p, 0.8, 0.1, Count::Bernoulli, usize::MAX, 4).unwrap(),
            mlm,
            pad_id: 0,
            left: false,
            key_words: &[1, 2, 3],
            key_mode: mode,
        };
        let n = 200;
        let mut best = f64::MAX;
        for _ in 0..15 {
            let t = Instant::now();
            for _ in 0..n {
                collate(
                    &rows,
                    None,
                    &cfg,
                    Outputs {
                        ids: &mut ids,
                        labels: &mut labels,
                        attention: &mut att,
                        width: l,
                    },
                )
                .unwrap();
            }
            best = best.min(t.elapsed().as_secs_f64() / n as f64);
        }
        let per = best;
        println!(
            "{mode:?} mlm={mlm} p={p}: {:.1} us/batch, {:.2} ns/token, {:.0} M tok/s",
            per * 1e6,
            per * 1e9 / (b * l) as f64,
            (b * l) as f64 / per / 1e6
        );
    }
}
