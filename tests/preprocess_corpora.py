"""Real text for the `mlmkit preprocess` tests, made offline: the running Python's standard
library documentation (the CLI's built-in corpus) and Korean prose recombined from a built-in
list of phrases with a fixed seed; plus helpers that read the output back."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

SUBJECTS = [
    "이순신은", "세종대왕은", "서울은", "부산은", "한강은", "우리 학교는", "그 도서관은",
    "작은 마을은", "나의 할머니는", "젊은 과학자들은", "시장 상인들은", "새로운 정부는",
    "그 소설가는", "많은 학생들은", "이 회사는", "제주도는", "경주의 박물관은", "어린 아이들은",
]  # fmt: skip
MIDDLES = [
    "오래전부터", "매일 아침", "겨울이 오면", "전쟁이 끝난 뒤", "비가 내리는 날에는",
    "사람들 앞에서", "조용한 밤에", "봄이 되면", "역사 속에서", "바다 근처에서",
    "새 학기가 시작되면", "많은 어려움 속에서도", "도시의 한가운데에서", "주말마다",
]  # fmt: skip
PREDICATES = [
    "조선 중기의 무신이다", "한글을 만들었다", "대한민국의 수도이다", "큰 항구 도시이다",
    "도시를 가로질러 흐른다", "오래된 책을 모은다", "전통 음식을 판다", "새로운 법을 만들었다",
    "긴 소설을 썼다", "열심히 공부한다", "좋은 제품을 만든다", "아름다운 섬이다",
    "신라의 유물을 보여 준다", "공원에서 뛰어논다", "이웃을 돕는다", "산책을 즐긴다",
    "기록을 남겼다", "노래를 부른다", "새 길을 열었다", "차를 마신다",
]  # fmt: skip


def korean_documents(n_bytes: int, seed: int = 13) -> list[list[str]]:
    """Documents (lists of sentences) of about `n_bytes` of UTF-8 Korean."""
    rng = random.Random(seed)
    docs, size = [], 0
    while size < n_bytes:
        doc = []
        for _ in range(rng.randint(2, 12)):
            s = f"{rng.choice(SUBJECTS)} {rng.choice(MIDDLES)} {rng.choice(PREDICATES)}."
            if rng.random() < 0.3:
                s = f"{rng.choice(MIDDLES)} {s}"
            doc.append(s)
            size += len(s.encode("utf-8")) + 1
        docs.append(doc)
    return docs


def stdlib_documents() -> list[list[str]]:
    from mlmkit.cli.stdlib_corpus import load_stdlib_corpus

    return load_stdlib_corpus(progress=False)


def write_documents(path: Path, docs: list[list[str]]) -> Path:
    """One sentence per line, a blank line between documents."""
    path.write_text("\n\n".join("\n".join(d) for d in docs) + "\n", encoding="utf-8")
    return path


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def content(out: Path) -> dict:
    """Everything in an output directory that must not depend on the engine: the manifest
    without its `run` section, and the bytes of every shard."""
    m = manifest(out)
    m.pop("run")
    m["tokenizer"].pop("source")
    shards = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob("*/*.parquet"))}
    return {"manifest": m, "shards": shards}


def rows(out: Path, split: str) -> dict[str, list]:
    """A split's examples, shard after shard."""
    tables = [pq.read_table(p) for p in sorted((out / split).glob("part-*.parquet"))]
    names = tables[0].column_names
    return {n: [r for t in tables for r in t.column(n).to_pylist()] for n in names}


def text_tokens(tokenizer, docs: list[list[str]]) -> Counter:
    """Multiset of the token ids of the documents' text (sentences joined by a space)."""
    texts = [" ".join(d) for d in docs]
    ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    return Counter(i for row in ids for i in row)
