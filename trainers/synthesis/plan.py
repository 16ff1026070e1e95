"""The work plan: every pair's seed, key and chunk, fixed before any teacher runs.

Chunks are cut from the index order of the whole source list (chunk c holds indices
[c*B, (c+1)*B)), never from what happens to be missing, so a chunk's images reach the
teacher together whatever the number of actors. Diffusion output can move by one grey
level when the batch composition changes; a fixed composition keeps runs bit-identical.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainers.data.pairs import pair_key, pair_seed


@dataclass(frozen=True)
class Chunk:
    """The pairs one teacher call makes: positions into the source list and their keys."""

    positions: tuple[int, ...]  # rows of the source array
    indices: tuple[int, ...]  # pair indices (start_index + position): what the seed is keyed on
    keys: tuple[str, ...]
    hashes: tuple[str, ...]

    @property
    def shard(self) -> str:
        """A name that depends only on the chunk's keys: a retried chunk writes the same shard."""
        return hashlib.sha256("\n".join(self.keys).encode()).hexdigest()[:32]

    def meta(self) -> str:
        """JSON of everything but the images (travels beside the image tensor in Ray Data)."""
        return json.dumps(
            {"indices": self.indices, "keys": self.keys, "hashes": self.hashes, "shard": self.shard}
        )


def plan_keys(
    hashes: Sequence[str], teacher_id: str, prompt: str, concept: str, start_index: int = 0
) -> list[str]:
    """The key of each source's pair, in source order (index start_index + i)."""
    return [
        pair_key(teacher_id, prompt, h, pair_seed(concept, h, start_index + i)) for i, h in enumerate(hashes)
    ]


def plan_chunks(
    keys: Sequence[str],
    hashes: Sequence[str],
    batch_size: int,
    skip: set[str],
    start_index: int = 0,
) -> list[Chunk]:
    """Chunks of the keys not in skip, grouped by position // batch_size."""
    if len(keys) != len(hashes):
        raise ValueError(f"{len(keys)} keys but {len(hashes)} hashes")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    chunks = []
    for start in range(0, len(keys), batch_size):
        todo = [p for p in range(start, min(start + batch_size, len(keys))) if keys[p] not in skip]
        if todo:
            chunks.append(
                Chunk(
                    positions=tuple(todo),
                    indices=tuple(start_index + p for p in todo),
                    keys=tuple(keys[p] for p in todo),
                    hashes=tuple(hashes[p] for p in todo),
                )
            )
    return chunks


def chunk_rows(chunks: Sequence[Chunk], images: np.ndarray) -> list[dict[str, object]]:
    """One Ray Data row per chunk: its images and its metadata as JSON."""
    return [{"meta": c.meta(), "images": images[list(c.positions)]} for c in chunks]
