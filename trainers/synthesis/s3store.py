"""Pairs on S3: s3://bucket/prefix/{sources/<hash>.png, targets/<key>.png, manifest/<shard>.jsonl}.

One manifest shard per chunk, written after the chunk's images: the shard is the commit.
Its name depends only on the chunk's keys, so a chunk retried after a crash rewrites the
same objects with the same bytes and never adds a second record. Objects go through the
catalog's S3Store (client construction, retries, region, error mapping); metadata lives in
files, never in object tags or headers (some S3 servers lose those).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from PIL import Image

from catalog.errors import CatalogError
from catalog.s3errors import s3_errors
from catalog.settings import S3Settings
from catalog.store import MissingObject
from catalog.uri import parse_uri
from trainers.data.pairs import Pair

if TYPE_CHECKING:
    from catalog.s3 import S3Store

THREADS = 8  # parallel requests per process: S3 latency, not bandwidth, bounds small objects
T = TypeVar("T")
R = TypeVar("R")


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)  # the PairStore setting
    return buf.getvalue()


def read_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def _parallel(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    items = list(items)
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(min(THREADS, len(items))) as pool:
        return list(pool.map(fn, items))


def open_s3_store(uri: str, settings: S3Settings | None = None) -> S3Store:
    """The catalog's S3Store for s3://bucket/prefix (settings from E2GAN_S3_* by default)."""
    from catalog.s3 import S3Store

    try:
        where = parse_uri(uri)
        return S3Store(where.bucket, where.prefix, settings or S3Settings.from_env())
    except CatalogError as exc:
        raise ValueError(f"{uri}: {exc}") from None


def object_exists(store: S3Store, key: str) -> bool:
    try:
        with s3_errors("checking", store.uri_of(key), store.settings.url):
            store.client.head_object(Bucket=store.bucket, Key=store._name(key))
        return True
    except MissingObject:
        return False


class S3PairSink:
    """Pair shards and their manifest under one S3 prefix."""

    def __init__(self, uri: str, settings: S3Settings | None = None) -> None:
        self._uri = uri.rstrip("/")
        self.objects = open_s3_store(uri, settings)

    @property
    def uri(self) -> str:
        return self._uri

    @staticmethod
    def _shard_key(shard: str) -> str:
        return f"manifest/{shard}.jsonl"

    def _read_shard(self, key: str) -> list[dict[str, Any]]:
        raw = self.objects.read(key)
        records = []
        for line in (raw or b"").decode("utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def manifest_records(self) -> list[dict[str, Any]]:
        shards = [o.key for o in self.objects.list("manifest/") if o.key.endswith(".jsonl")]
        return [r for records in _parallel(self._read_shard, sorted(shards)) for r in records]

    def _index(self) -> dict[str, dict[str, Any]]:
        return {r["key"]: r for r in self.manifest_records() if "key" in r}

    def known(self, keys: Sequence[str]) -> set[str]:
        index = self._index()
        return {k for k in keys if k in index}

    def recovered(self, keys: Sequence[str], shard: str) -> set[str]:
        committed = {r.get("key") for r in self._read_shard(self._shard_key(shard))}
        return {k for k in keys if k in committed}

    def commit(self, pairs: Sequence[Pair], shard: str) -> int:
        if not pairs or self.recovered([p.key for p in pairs], shard):
            return 0  # the shard is written whole, so one committed key means all are
        sources = {p.source_hash: p.source for p in pairs}

        def put_source(item: tuple[str, np.ndarray]) -> None:
            key = f"sources/{item[0]}.png"
            if not object_exists(self.objects, key):  # sources are shared by concepts: upload once
                self.objects.write(key, png_bytes(item[1]), content_type="image/png")

        def put_target(pair: Pair) -> None:
            self.objects.write(f"targets/{pair.key}.png", png_bytes(pair.target), content_type="image/png")

        _parallel(put_source, sources.items())
        _parallel(put_target, pairs)
        lines = "".join(json.dumps(_record(p, shard), ensure_ascii=False) + "\n" for p in pairs)
        self.objects.write(self._shard_key(shard), lines.encode("utf-8"), content_type="application/x-ndjson")
        return len(pairs)

    def load(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        if not keys:
            return np.empty((0, 0, 0, 3), np.uint8), np.empty((0, 0, 0, 3), np.uint8)
        index = self._index()
        missing = [k for k in keys if k not in index]
        if missing:
            raise KeyError(f"{len(missing)} pairs are not in {self.uri} (first: {missing[0]})")

        def fetch(name: str) -> np.ndarray:
            data = self.objects.read(name)
            if data is None:
                raise KeyError(f"{self.objects.uri_of(name)} is missing (manifest says it exists)")
            return read_png(data)

        sources = _parallel(fetch, [f"sources/{index[k]['source_hash']}.png" for k in keys])
        targets = _parallel(fetch, [f"targets/{k}.png" for k in keys])
        shapes = {s.shape for s in sources} | {t.shape for t in targets}
        if len(shapes) != 1:
            raise ValueError(f"stored pairs differ in size ({sorted(shapes)}); load one resolution at a time")
        return np.stack(sources), np.stack(targets)


def _record(pair: Pair, shard: str) -> dict[str, Any]:
    """The PairStore manifest record, plus the shard that holds it."""
    return {
        "key": pair.key,
        "teacher_id": pair.teacher_id,
        "prompt": pair.prompt,
        "seed": pair.seed,
        "source_hash": pair.source_hash,
        "concept": pair.concept,
        "index": pair.index,
        "source_size": list(pair.source.shape[:2]),
        "target_size": list(pair.target.shape[:2]),
        "shard": shard,
    }
