"""Slow, obviously-correct plain-Python versions of the documented algorithms, used as test oracles
on small inputs (and `pairs` as the pure-Python baseline of benchmarks/test_bench_pairs.py):

* `rng`: the counter-based generator (`rust/rng.rs`), the only Python copy of it in the tests;
* `tokens`: token masking (`rust/masking.rs`);
* `words`: whole-word, span and n-gram masking (`rust/words.rs`);
* `pairs`: NSP/SOP sentence pairs (`rust/pairs.rs`) in the shape of Google's script.
"""
