"""Canaries ("The Secret Sharer", Carlini et al. 2019): random secret sentences inserted into the
training text, so that `mlmkit probe` can measure how much a model memorised them.

A canary reads "the secret code of <name> is <d> <d> <d> <d>" with random digits. Inserted
canaries go into random training documents, each `repeats` times; controls of the same form are
never inserted and show what an unseen secret scores. Both are saved in `canaries.json` next to
the model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CliError

FILE_NAME = "canaries.json"
PREFIX = "the secret code of {name} is"
DIGITS = 4
FIRST_NAMES = (
    "alice bruno chiara dmitri elena farid greta hiro ines jonas keiko luca mira nadia oskar "
    "priya quentin rosa sven tamar ulla viktor wanda xavier yusuf zora"
).split()
LAST_NAMES = (
    "abbott becker castillo dunn eriksen fontaine garber horvat ivanova jensen kowalski lindqvist "
    "moreau novak okafor petrov quinn rossi schmidt tanaka ueda varga weber yilmaz zeller"
).split()


@dataclass
class Canary:
    name: str
    secret: str  # the digits, space separated
    repeats: int  # copies inserted into the training text (0 for a control)

    @property
    def prefix(self) -> str:
        return PREFIX.format(name=self.name)

    @property
    def text(self) -> str:
        return f"{self.prefix} {self.secret}."


def make_canaries(n: int, repeats: int, seed: int) -> tuple[list[Canary], list[Canary]]:
    """`n` canaries to insert and `n` controls (at least 5), all with distinct names."""
    n_controls = max(n, 5)
    names = [f"{a} {b}" for a in FIRST_NAMES for b in LAST_NAMES]
    if n + n_controls > len(names):
        raise CliError(f"--canaries must be at most {len(names) // 2}, got {n}")
    rng = np.random.default_rng([seed, 0x5EC2E7])
    chosen = rng.choice(len(names), size=n + n_controls, replace=False)
    digits = rng.integers(0, 10, size=(n + n_controls, DIGITS))
    canaries = [
        Canary(names[i], " ".join(map(str, d)), repeats if k < n else 0)
        for k, (i, d) in enumerate(zip(chosen.tolist(), digits.tolist(), strict=True))
    ]
    return canaries[:n], canaries[n:]


def insert_canaries(train: Any, canaries: list[Canary], seed: int) -> Any:
    """`train` (a Dataset of documents with a `sentences` column) with every canary's copies put
    into random documents at random sentence positions."""
    import datasets

    rng = np.random.default_rng([seed, 0xCA4A41])
    targets: dict[int, list[tuple[float, str]]] = {}
    for canary in canaries:
        for doc in rng.integers(0, len(train), size=canary.repeats).tolist():
            targets.setdefault(doc, []).append((float(rng.random()), canary.text))

    def insert(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
        out = []
        for sentences, i in zip(batch["sentences"], indices, strict=True):
            sentences = list(sentences)
            for where, text in targets.get(i, ()):
                sentences.insert(int(where * (len(sentences) + 1)), text)
            out.append(sentences)
        return {"sentences": out}

    return train.map(
        insert,
        batched=True,
        with_indices=True,
        desc="Inserting canaries",
        features=datasets.Features({"sentences": datasets.List(datasets.Value("string"))}),
    )


def save_canaries(directory: Path, inserted: list[Canary], controls: list[Canary]) -> Path:
    path = Path(directory) / FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "template": PREFIX + " " + " ".join(["<digit>"] * DIGITS) + ".",
        "inserted": [asdict(c) for c in inserted],
        "controls": [asdict(c) for c in controls],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def load_canaries(path: Path) -> tuple[list[Canary], list[Canary]]:
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        return (
            [Canary(**c) for c in payload["inserted"]],
            [Canary(**c) for c in payload["controls"]],
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CliError(f"cannot read the canaries file {path}: {e}") from None
