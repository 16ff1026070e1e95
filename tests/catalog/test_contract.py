"""The S3 contract, run unchanged against moto (auth on, conditional writes) and rclone serve s3
(lock mode), and where cheap against a local folder: versions are immutable and self-describing,
indexes are caches, keepVersions holds (gc beside 8 publishers: test_concurrency.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog import CatalogError
from catalog.errors import SeriesTaken
from catalog.samples import SAMPLE_BASE_DIGEST as BASE
from catalog.samples import make_adapter
from tests.catalog.conftest import Backend

CONCEPT = "pencil-sketch"
OTHER_BASE = "cd" * 32


def _bytes_of(backend: Backend, prefix: str) -> dict[str, bytes]:
    cat = backend.open()
    return {o.key: cat.store.read(o.key) for o in cat.store.list(prefix)}


def _listing(cat) -> list[tuple[str, str, str, str]]:  # noqa: ANN001 - catalog.Catalog
    return [(e.concept, e.version, e.digest, e.manifest_digest) for e in cat.index()]


def test_losing_every_index_loses_nothing(s3_backend: Backend, tmp_path: Path) -> None:
    cat = s3_backend.open()
    for seed in range(1, 4):
        make_adapter(tmp_path / f"a{seed}", seed=seed)
        cat.publish(tmp_path / f"a{seed}", base_digest=BASE, concept=CONCEPT)
    make_adapter(tmp_path / "ink", concept="ink", seed=1, base_digest=OTHER_BASE)
    cat.publish(tmp_path / "ink", base_digest=OTHER_BASE, concept="ink")
    before = _listing(cat)
    v1 = _bytes_of(s3_backend, f"adapters/{BASE[:16]}/{CONCEPT}/v1/")

    indexes = [k for k in s3_backend.objects() if k.endswith("/index.json")]
    assert len(indexes) == 2
    cat.store.delete(indexes)
    fresh = s3_backend.open()
    assert _listing(fresh) == before  # rebuilt from the version manifests
    cat.store.delete([k for k in s3_backend.objects() if k.endswith("/index.json")])
    assert fresh.reindex() == 4
    assert _listing(s3_backend.open()) == before

    cat.store.delete([k for k in s3_backend.objects() if k.endswith("/index.json")])
    make_adapter(tmp_path / "a4", seed=4)
    assert s3_backend.open().publish(tmp_path / "a4", base_digest=BASE, concept=CONCEPT).version == "v4"
    assert _bytes_of(s3_backend, f"adapters/{BASE[:16]}/{CONCEPT}/v1/") == v1  # never rewritten
    assert s3_backend.open().gc().orphans == []
    listed = _listing(s3_backend.open())
    assert [row[1] for row in listed if row[0] == CONCEPT] == ["v1", "v2", "v3", "v4"]


def test_a_stale_index_is_rebuilt(s3_backend: Backend, tmp_path: Path) -> None:
    cat = s3_backend.open()
    make_adapter(tmp_path / "a1", seed=1)
    make_adapter(tmp_path / "a2", seed=2)
    cat.publish(tmp_path / "a1", base_digest=BASE, concept=CONCEPT)
    key = s3_backend.series_key(CONCEPT, BASE[:16])
    stale = cat.store.read(key)
    cat.publish(tmp_path / "a2", base_digest=BASE, concept=CONCEPT)
    cat.store.write(key, stale)  # a publisher that died after committing v2, before the index
    reader = s3_backend.open()
    assert reader.show(CONCEPT).version == "v2"  # latest = the highest committed number
    assert json.loads(reader.store.read(key))["latest"] == 2


def test_keep_versions_holds_and_spares_versions_in_use(s3_backend: Backend, tmp_path: Path) -> None:
    cat = s3_backend.open()
    for seed in range(1, 4):
        make_adapter(tmp_path / f"a{seed}", seed=seed)
        cat.publish(tmp_path / f"a{seed}", base_digest=BASE, concept=CONCEPT, keep_versions=1, in_use={"v1"})
    assert [e.version for e in cat.versions(CONCEPT)] == ["v1", "v3"]
    assert cat.verify().ok


def test_ownership_of_a_series(tmp_path: Path) -> None:
    from catalog import open_catalog

    cat = open_catalog(tmp_path / "catalog")
    make_adapter(tmp_path / "a1", seed=1)
    make_adapter(tmp_path / "a2", seed=2)
    mine = "k8s:team-a/sketch/0f3c"
    entry = cat.publish(tmp_path / "a1", base_digest=BASE, concept=CONCEPT, owner=mine)
    assert entry.owner == mine and cat.series_owner(BASE, CONCEPT) == mine
    with pytest.raises(SeriesTaken, match=f"owned by {mine}") as info:
        cat.publish(tmp_path / "a2", base_digest=BASE, concept=CONCEPT, owner="cli:bob")
    assert info.value.owner == mine and info.value.series == f"{BASE[:16]}/{CONCEPT}"
    with pytest.raises(CatalogError, match="owned by k8s:team-a/sketch/0f3c, not cli:bob"):
        cat.delete(CONCEPT, version="v1", owner="cli:bob")
    assert [e.version for e in cat.delete(CONCEPT, version="v1", owner=mine)] == ["v1"]


def test_addressing(tmp_path: Path) -> None:
    from catalog import open_catalog

    cat = open_catalog(tmp_path / "catalog")
    make_adapter(tmp_path / "a", seed=1)
    make_adapter(tmp_path / "b", seed=2, base_digest=OTHER_BASE)
    a = cat.publish(tmp_path / "a", base_digest=BASE, concept=CONCEPT)
    b = cat.publish(tmp_path / "b", base_digest=OTHER_BASE, concept=CONCEPT)
    with pytest.raises(CatalogError, match=f"several bases \\({BASE[:16]}, {OTHER_BASE[:16]}\\): give --base"):
        cat.show(CONCEPT)
    assert cat.resolve(f"{BASE[:16]}/{CONCEPT}/v1") == a
    assert cat.resolve(f"{CONCEPT}@{b.manifest_digest}") == b
    with pytest.raises(CatalogError, match="version 'one' does not parse"):
        cat.show(CONCEPT, "one", BASE)
    with pytest.raises(CatalogError, match="does not parse: use sha256"):
        cat.resolve(f"{CONCEPT}@sha256:xyz")


def test_pull_refuses_a_manifest_that_disagrees_with_the_index(tmp_path: Path) -> None:
    import hashlib

    from catalog import open_catalog
    from e2gan_api.manifest import MANIFEST_NAME

    cat = open_catalog(tmp_path / "catalog")
    make_adapter(tmp_path / "a", seed=1)
    entry = cat.publish(tmp_path / "a", base_digest=BASE, concept=CONCEPT)
    # Behind the catalog's back: a stored manifest.json listing another weights digest, and a
    # version record whose sha256 for manifest.json matches those bytes.
    manifest = json.loads((tmp_path / "a" / MANIFEST_NAME).read_text())
    manifest["files"]["model.onnx"]["sha256"] = "0" * 64
    raw = json.dumps(manifest).encode()
    cat.store.write(f"{entry.key}/{MANIFEST_NAME}", raw)
    record = json.loads(cat.store.read(f"{entry.key}/version.json"))
    record["entry"]["files"][MANIFEST_NAME].update(sha256=hashlib.sha256(raw).hexdigest(), size=len(raw))
    cat.store.write(f"{entry.key}/version.json", json.dumps(record).encode())
    with pytest.raises(CatalogError, match=f"^{CONCEPT} v1: manifest.json disagrees with the index$"):
        cat.pull(CONCEPT, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_a_stale_index_entry_is_not_trusted_by_pull(tmp_path: Path) -> None:
    from catalog import open_catalog

    cat = open_catalog(tmp_path / "catalog")
    make_adapter(tmp_path / "a", seed=1)
    entry = cat.publish(tmp_path / "a", base_digest=BASE, concept=CONCEPT)
    key = f"adapters/{BASE[:16]}/{CONCEPT}/index.json"
    index_bytes = cat.store.read(key)
    cat.store.delete([f"{entry.key}/version.json"])  # a delete that died before the index update
    cat.store.write(key, index_bytes)
    with pytest.raises(CatalogError, match=f"no published adapter {CONCEPT} v1 .*deleted"):
        cat.pull(CONCEPT, tmp_path / "dest")
    assert cat.versions(CONCEPT) == []  # the entry is gone from the index


def test_pull_names_a_file_missing_from_the_catalog(s3_backend: Backend, tmp_path: Path) -> None:
    cat = s3_backend.open()
    make_adapter(tmp_path / "a", seed=1)
    entry = cat.publish(tmp_path / "a", base_digest=BASE, concept=CONCEPT)
    cat.store.delete([f"{entry.key}/model.onnx"])
    with pytest.raises(CatalogError, match=f"^{CONCEPT} v1: model.onnx is missing from the catalog$"):
        cat.pull(CONCEPT, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert [(p.file, p.problem) for p in cat.verify().problems] == [("model.onnx", "missing")]


@pytest.fixture
def moto_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    from tests.catalog.conftest import make_backend

    return make_backend("moto", request, tmp_path)


def test_a_retried_write_that_had_landed_is_recognised_not_reapplied(
    moto_backend: Backend, tmp_path: Path
) -> None:
    # Conditional mode only: there a lost response's retry answers 412 about our own write.
    from catalog.store import Exists

    s3_backend = moto_backend
    cat = s3_backend.open()
    make_adapter(tmp_path / "a", seed=1)
    make_adapter(tmp_path / "b", seed=2)
    cat.publish(tmp_path / "a", base_digest=BASE, concept=CONCEPT)
    create, create_file = cat.store.create, cat.store.create_file

    def landed_then_412(key: str, data: bytes) -> None:
        create(key, data)  # the write lands, the response is lost, the SDK's retry gets 412
        raise Exists(f"{key} already exists")

    def file_landed_then_412(key: str, path: Path) -> None:
        create_file(key, path)
        raise Exists(f"{key} already exists")

    cat.store.create, cat.store.create_file = landed_then_412, file_landed_then_412
    entry = cat.publish(tmp_path / "b", base_digest=BASE, concept=CONCEPT)
    assert entry.version == "v2"  # not v3: the claim's 412 was about our own landed create
    del cat.store.create, cat.store.create_file
    assert [e.version for e in s3_backend.open().versions(CONCEPT)] == ["v1", "v2"]
    assert not [k for k in s3_backend.objects() if "/v3/" in k]
    assert s3_backend.open().verify().ok
