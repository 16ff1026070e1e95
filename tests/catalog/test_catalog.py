"""The catalog contract on every backend: local folder, moto (auth on) and rclone serve s3."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from catalog import CatalogError
from catalog.samples import SAMPLE_BASE_DIGEST as BASE
from catalog.samples import make_adapter
from e2gan_api.manifest import MANIFEST_NAME
from tests.catalog.conftest import Backend

FILES = {"adapter_config.json", "adapter_model.safetensors", "model.onnx", "preview.png", MANIFEST_NAME}


def test_publish_pull_verify_gc_cycle(backend: Backend, tmp_path: Path) -> None:
    cat = backend.open()
    assert cat.index() == []
    make_adapter(tmp_path / "a1", seed=1)
    make_adapter(tmp_path / "a2", seed=2)
    e1 = cat.publish(tmp_path / "a1", base_digest=BASE, concept="pencil-sketch")
    e2 = cat.publish(tmp_path / "a2", base_digest=BASE, concept="pencil-sketch")
    assert (e1.version, e2.version) == ("v1", "v2")
    assert e1.key == f"adapters/{BASE[:16]}/pencil-sketch/v1"
    assert set(e1.files) == FILES and e1.size == sum(f.size for f in e1.files.values())
    assert e1.metrics == {"psnr": 21.0} and e1.base_model_digest == BASE
    assert e1.uri.endswith("adapters/abababababababab/pencil-sketch/v1")

    # The series index other tools read: every entry with URIs and digests, and `latest`.
    index = json.loads(cat.store.read(backend.series_key("pencil-sketch", BASE[:16])))
    assert [a["version"] for a in index["versions"]] == ["v1", "v2"] and index["latest"] == 2
    assert (
        index["versions"][0]["files"]["adapter_model.safetensors"]["sha256"]
        == e1.files["adapter_model.safetensors"].sha256
    )
    # Each version describes itself: version.json names its catalog, series, owner and number.
    record = json.loads(cat.store.read(f"{e1.key}/version.json"))["entry"]
    assert (record["catalog_uri"], record["version"], record["concept"]) == (cat.uri, "v1", "pencil-sketch")
    assert record["owner"] == e1.owner and e1.owner.startswith(("cli:", "k8s:"))

    assert [e.version for e in cat.versions("pencil-sketch")] == ["v1", "v2"]
    assert cat.show("pencil-sketch").version == "v2"
    assert cat.show("pencil-sketch", "v1") == e1

    out = cat.pull("pencil-sketch", tmp_path / "pulled", version="v1")
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    for name in FILES:
        assert (out / name).read_bytes() == (tmp_path / "a1" / name).read_bytes()

    report = cat.verify()
    assert report.ok and report.versions == 2 and report.files == 10

    assert [e.version for e in cat.gc(keep=1).pruned] == ["v1"]
    assert [e.version for e in cat.index()] == ["v2"]
    # Only the claim stays, holding the number.
    assert [k for k in backend.objects() if "/v1/" in k] == [f"adapters/{BASE[:16]}/pencil-sketch/v1/claim.json"]
    with pytest.raises(CatalogError, match="no published adapter pencil-sketch v1"):
        cat.pull("pencil-sketch", tmp_path / "gone", version="v1")

    # Numbers are never reused, even after deletion.
    assert [e.version for e in cat.delete("pencil-sketch")] == ["v2"]
    assert cat.index() == []
    assert cat.publish(tmp_path / "a1", base_digest=BASE, concept="pencil-sketch").version == "v3"


def test_identical_content_is_a_noop(backend: Backend, tmp_path: Path) -> None:
    cat = backend.open()
    make_adapter(tmp_path / "a", concept="ink", seed=7)
    first = cat.publish(tmp_path / "a", base_digest=BASE, concept="ink")
    before = backend.objects()
    index_before = cat.store.read(backend.series_key("ink", BASE[:16]))
    again = cat.publish(tmp_path / "a", base_digest=BASE, concept="ink")
    assert again == first
    assert backend.objects() == before and cat.store.read(backend.series_key("ink", BASE[:16])) == index_before
    # Same bytes under another concept are another adapter.
    make_adapter(tmp_path / "b", concept="ink-2", seed=7)
    assert cat.publish(tmp_path / "b", base_digest=BASE, concept="ink-2").version == "v1"


def test_flipped_byte_is_refused_by_verify_and_pull(backend: Backend, tmp_path: Path) -> None:
    cat = backend.open()
    make_adapter(tmp_path / "a", concept="sketch", seed=3)
    entry = cat.publish(tmp_path / "a", base_digest=BASE, concept="sketch")
    backend.flip_byte(f"{entry.key}/adapter_model.safetensors")

    report = cat.verify()
    assert not report.ok
    assert [(p.file, p.problem) for p in report.problems] == [
        ("adapter_model.safetensors", "sha256 mismatch")
    ]
    with pytest.raises(CatalogError, match="adapter_model.safetensors does not match its sha256"):
        cat.pull("sketch", tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert not list(tmp_path.glob(".dest.partial-*"))


def test_refuses_bad_folders_before_writing(backend: Backend, tmp_path: Path) -> None:
    cat = backend.open()
    before = backend.objects()
    folder = tmp_path / "a"
    make_adapter(folder, seed=4)

    pickled = tmp_path / "pickled"
    shutil.copytree(folder, pickled)
    (pickled / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(CatalogError, match="refusing pickle-based weights adapter_model.bin"):
        cat.publish(pickled, base_digest=BASE, concept="pencil-sketch")

    fake = tmp_path / "fake"
    make_adapter(fake, seed=5)
    (fake / "adapter_model.safetensors").write_bytes(b"\x80\x04" + b"not safetensors at all" * 10)
    manifest = json.loads((fake / MANIFEST_NAME).read_text())
    from e2gan_api.manifest import digest_files

    manifest["files"] = {k: v.model_dump() for k, v in digest_files(fake).items()}
    (fake / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(CatalogError, match="not a safetensors file"):
        cat.publish(fake, base_digest=BASE, concept="pencil-sketch")

    tampered = tmp_path / "tampered"
    shutil.copytree(folder, tampered)
    (tampered / "model.onnx").write_bytes(b"changed after the manifest was written")
    with pytest.raises(CatalogError, match="model.onnx does not match"):
        cat.publish(tampered, base_digest=BASE, concept="pencil-sketch")

    with pytest.raises(CatalogError, match="not 'other'"):
        cat.publish(folder, base_digest=BASE, concept="other")
    with pytest.raises(CatalogError, match="another base model"):
        cat.publish(folder, base_digest="cd" * 32, concept="pencil-sketch")
    with pytest.raises(CatalogError, match="DNS label"):
        cat.publish(folder, base_digest=BASE, concept="../escape")
    assert backend.objects() == before


def test_progress_objects(backend: Backend) -> None:
    cat = backend.open()
    key = "team-a/pencil/3"
    assert cat.read_progress(key) is None
    cat.write_progress(key, {"phase": "search", "trial": 2})
    cat.write_progress(key, {"phase": "train", "step": 40})
    assert cat.read_progress(key) == {"phase": "train", "step": 40}
    assert f"progress/{key}.json" in backend.objects()
    with pytest.raises(CatalogError, match="progress key"):
        cat.write_progress("../../etc/passwd", {})


def test_readers_never_see_a_version_being_uploaded(backend: Backend, tmp_path: Path) -> None:
    cat, reader = backend.open(), backend.open()
    make_adapter(tmp_path / "a", seed=8)
    upload, seen = cat.store.create_file, []

    def upload_and_look(key: str, path: Path) -> None:
        upload(key, path)
        seen.append([e.version for e in reader.index()])
        with pytest.raises(CatalogError, match="no published adapter"):
            reader.pull("pencil-sketch", tmp_path / "early")

    cat.store.create_file = upload_and_look
    entry = cat.publish(tmp_path / "a", base_digest=BASE, concept="pencil-sketch")
    assert seen == [[]] * 5  # five files uploaded, none visible until version.json commits them
    assert [e.version for e in reader.index()] == [entry.version]
    assert not (tmp_path / "early").exists()


def test_pull_replaces_another_versions_files(tmp_path: Path) -> None:
    from catalog import open_catalog

    cat = open_catalog(tmp_path / "catalog")
    make_adapter(tmp_path / "a", seed=1)
    cat.publish(tmp_path / "a", base_digest=BASE, concept="pencil-sketch")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "model_fp16.onnx").write_bytes(b"from an older version")
    (dest / "notes.txt").write_text("the user's own file")
    cat.pull("pencil-sketch", dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted(FILES | {"notes.txt"})
