"""Sinusoidal starting values for BERT's learned position embeddings.

BERT's position embeddings start as random vectors, so a model trained from scratch must first
learn which positions are neighbours before attention can use word order; for the small models
`mlmkit pretrain` trains in minutes this is a good part of the early "predict the most frequent
token" plateau. Starting from the sinusoids of "Attention Is All You Need", where the offset
between two positions is a fixed rotation, attention can find nearby tokens from the first
steps. The embeddings stay ordinary trainable parameters, so the model is a stock BERT.
"""

from __future__ import annotations

import math

import torch


def sinusoids(positions: int, dim: int) -> torch.Tensor:
    """`positions x dim`: sin at even and cos at odd dimensions, wavelengths 2π .. 10000·2π."""
    pos = torch.arange(positions, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    table = torch.zeros(positions, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


def init_sinusoidal_positions(embedding: torch.nn.Embedding, std: float) -> None:
    """Overwrite `embedding`'s weights with sinusoids scaled to a root mean square of `std` (a
    sinusoid's is 1/√2): the scale of BERT's other embeddings, drawn from N(0, std²)."""
    n, dim = embedding.weight.shape
    with torch.no_grad():
        embedding.weight.copy_(sinusoids(n, dim) * (std * math.sqrt(2.0)))
