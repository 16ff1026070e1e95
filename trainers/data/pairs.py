"""Teacher pairs: one pure function over a batch, and a content-addressed store.

A pair's seed comes from (concept, source hash, index) and its key from (teacher id,
prompt, source hash, seed), both through sha256, never Python's salted hash(): a rerun,
another process or another machine computes the same keys and reuses stored pairs.
synthesize_batch is the unit a distributed runner (Ray Data) maps over batches.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

if TYPE_CHECKING:  # the teachers package imports torch; pair writers need not
    from trainers.teachers.base import Teacher

MANIFEST = "manifest.jsonl"
STALE_TMP_SECONDS = 3600  # temp files older than this were left by a killed writer


def pair_seed(concept: str, source_hash: str, index: int) -> int:
    """A stable seed in [0, 2**31) for the pair at index."""
    digest = hashlib.sha256(json.dumps([concept, source_hash, int(index)]).encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFFFFFF


def pair_key(teacher_id: str, prompt: str, source_hash: str, seed: int) -> str:
    """The content address of a pair: what the teacher was asked, on what, with which noise."""
    payload = json.dumps([teacher_id, prompt, source_hash, int(seed)], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class Pair:
    """A source image, its teacher edit and where the edit came from."""

    key: str
    source: np.ndarray  # uint8 [H, W, 3]
    target: np.ndarray  # uint8 [H, W, 3]
    source_hash: str
    teacher_id: str
    prompt: str
    seed: int
    concept: str
    index: int


def synthesize_batch(
    sources: np.ndarray,
    source_hashes: Sequence[str],
    teacher: Teacher,
    prompt: str,
    concept: str,
    start_index: int = 0,
    indices: Sequence[int] | None = None,
) -> list[Pair]:
    """Edit a batch of sources into pairs; image i has index start_index + i (or indices[i])."""
    if len(sources) != len(source_hashes):
        raise ValueError(f"{len(sources)} sources but {len(source_hashes)} hashes")
    idx = [start_index + i for i in range(len(sources))] if indices is None else [int(i) for i in indices]
    if len(idx) != len(sources):
        raise ValueError(f"{len(sources)} sources but {len(idx)} indices")
    seeds = [pair_seed(concept, h, i) for h, i in zip(source_hashes, idx, strict=True)]
    targets = teacher.edit(sources, prompt, seeds)
    teacher_id = teacher.id
    return [
        Pair(
            key=pair_key(teacher_id, prompt, h, s),
            source=src,
            target=tgt,
            source_hash=h,
            teacher_id=teacher_id,
            prompt=prompt,
            seed=s,
            concept=concept,
            index=i,
        )
        for src, tgt, h, s, i in zip(sources, targets, source_hashes, seeds, idx, strict=True)
    ]


def _png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)  # fast; PNG is lossless anyway
    return buf.getvalue()


def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file and rename, so a killed writer never leaves half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _append_line(path: Path, line: bytes) -> None:
    """Append one manifest line under an exclusive lock (other processes may append too).

    A writer killed mid-line leaves a last line without its newline; the next writer ends
    it first, so the broken record stays alone on its line and is skipped when read.
    """
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        os.write(fd, line)
    finally:
        os.close(fd)  # closing releases the lock


def _batched(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class PairStore:
    """Pairs on disk, addressed by content.

    root/sources/<source_hash>.png, root/targets/<key>.png and root/manifest.jsonl (one
    JSON record per pair). A pair exists once its target and its manifest line exist;
    the line is appended last, under a file lock, so concurrent writers and killed runs
    leave a consistent store (a half-done pair is just made again).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.sources_dir = self.root / "sources"
        self.targets_dir = self.root / "targets"
        self.sources_dir.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.manifest_path = self.root / MANIFEST
        self._lock = threading.Lock()
        self._index: dict[str, dict[str, Any]] = {}
        self._remove_stale_tmp()
        self.refresh()

    def _remove_stale_tmp(self) -> None:
        cutoff = time.time() - STALE_TMP_SECONDS
        for folder in (self.sources_dir, self.targets_dir):
            for tmp in folder.glob(".*.tmp"):
                try:
                    if tmp.stat().st_mtime < cutoff:
                        tmp.unlink()
                except FileNotFoundError:
                    pass  # another process removed or renamed it

    def refresh(self) -> None:
        """Re-read the manifest (other processes may have added pairs)."""
        index: dict[str, dict[str, Any]] = {}
        if self.manifest_path.exists():
            with self.manifest_path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        record = json.loads(line)
                        index[record["key"]] = record
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue  # a line cut short by a killed writer
        with self._lock:
            self._index = index

    def __len__(self) -> int:
        return len(self._index)

    def records(self) -> list[dict[str, Any]]:
        """Manifest records of the stored pairs, in the order they were written."""
        with self._lock:
            return list(self._index.values())

    def record(self, key: str) -> dict[str, Any]:
        with self._lock:
            if key not in self._index:
                raise KeyError(f"pair {key} is not in the store at {self.root}")
            return self._index[key]

    def source_path(self, source_hash: str) -> Path:
        return self.sources_dir / f"{source_hash}.png"

    def target_path(self, key: str) -> Path:
        return self.targets_dir / f"{key}.png"

    def has(self, key: str) -> bool:
        with self._lock:
            known = key in self._index
        return known and self.target_path(key).is_file()

    def put(self, pair: Pair) -> None:
        src_path = self.source_path(pair.source_hash)
        if not src_path.is_file():
            _atomic_write(src_path, _png_bytes(pair.source))
        _atomic_write(self.target_path(pair.key), _png_bytes(pair.target))
        record = {
            "key": pair.key,
            "teacher_id": pair.teacher_id,
            "prompt": pair.prompt,
            "seed": pair.seed,
            "source_hash": pair.source_hash,
            "concept": pair.concept,
            "index": pair.index,
            "source_size": list(pair.source.shape[:2]),
            "target_size": list(pair.target.shape[:2]),
        }
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            _append_line(self.manifest_path, line)
            self._index[pair.key] = record

    def load(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(sources, targets) of keys as uint8 [N, H, W, 3], in the order of keys."""
        with self._lock:
            unknown = [k for k in keys if k not in self._index]
        if unknown:
            self.refresh()
        sources, targets = [], []
        for key in keys:
            record = self.record(key)
            sources.append(_read_png(self.source_path(record["source_hash"])))
            targets.append(_read_png(self.target_path(key)))
        if not keys:
            return np.empty((0, 0, 0, 3), np.uint8), np.empty((0, 0, 0, 3), np.uint8)
        shapes = {s.shape for s in sources} | {t.shape for t in targets}
        if len(shapes) != 1:
            raise ValueError(f"stored pairs differ in size ({sorted(shapes)}); load one resolution at a time")
        return np.stack(sources), np.stack(targets)

    def synthesize(
        self,
        sources: np.ndarray,
        source_hashes: Sequence[str],
        teacher: Teacher,
        prompt: str,
        concept: str,
        batch_size: int = 8,
        progress: bool = True,
        start_index: int = 0,
    ) -> list[str]:
        """Keys of the pairs of sources (index start_index + i), made where missing.

        Pairs already stored (same teacher id, prompt, source and seed) are reused, so a
        rerun after a crash only makes what is missing.
        """
        if len(sources) != len(source_hashes):
            raise ValueError(f"{len(sources)} sources but {len(source_hashes)} hashes")
        self.refresh()
        teacher_id = teacher.id
        keys = [
            pair_key(teacher_id, prompt, h, pair_seed(concept, h, start_index + i))
            for i, h in enumerate(source_hashes)
        ]
        todo = [i for i, k in enumerate(keys) if not self.has(k)]
        with tqdm(
            total=len(keys),
            initial=len(keys) - len(todo),
            disable=not progress,
            desc=f"pairs {concept}",
            unit="pair",
        ) as bar:
            for chunk in _batched(todo, max(1, batch_size)):
                pairs = synthesize_batch(
                    sources[chunk],
                    [source_hashes[i] for i in chunk],
                    teacher,
                    prompt,
                    concept,
                    indices=[start_index + i for i in chunk],
                )
                for pair in pairs:
                    self.put(pair)
                bar.update(len(chunk))
        return keys
