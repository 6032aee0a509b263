"""The Rust masking kernels reimplemented with torch ops, so a padded batch can be masked on the
device it already lives on (a CUDA batch inside a training step, or CPU). Bit-identical to the
Rust path for the same key words and rows: each module mirrors kernels of `rust/`.

* `batch`: the entry point, `mask_batch` (what `DataCollatorForLanguageModeling.mask_tensor`
  calls): checks, content ranges (`rust/padding.rs`), row keys (`rust/collate.rs`), the tables
  on the batch's device, and the dispatch to
* `tokens`: token masking (`rust/masking.rs`) and the replacement step, or
* `words`: whole-word, span and n-gram masking (`rust/words.rs`),
* both drawing from `rng`: the counter-based generator (`rust/rng.rs`).
"""

from .batch import mask_batch
from .tokens import MaskSettings
from .words import WordSettings

__all__ = ["MaskSettings", "WordSettings", "mask_batch"]
