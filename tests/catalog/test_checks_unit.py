"""catalog.checks on its own: the exact limits of each input check, and refusals that name the input
(the mutants that survived `mutmut` on catalog/checks.py with the backend tests alone)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from catalog.checks import base_folder, check_adapter_folder, check_progress_key, check_safetensors
from catalog.errors import CatalogError
from catalog.samples import SAMPLE_BASE_DIGEST, make_adapter
from e2gan_api.manifest import MANIFEST_NAME


def test_progress_keys_have_at_most_eight_plain_segments() -> None:
    assert check_progress_key("/".join("abcdefgh")) == "a/b/c/d/e/f/g/h"
    for key in ("/".join("abcdefghi"), "", "ns/../etc", "ns/a..b", "ns/a$b", "ns//b"):
        with pytest.raises(CatalogError, match=r"^progress key .*: use '/'-separated names"):
            check_progress_key(key)
    with pytest.raises(CatalogError, match="^progress key None"):
        check_progress_key(None)  # type: ignore[arg-type]


def test_base_folder_names_a_bad_digest() -> None:
    assert base_folder("sha256:" + "ab" * 32) == "ab" * 8
    with pytest.raises(CatalogError, match=r"^base digest '' is not a hex sha256"):
        base_folder("")


def safetensors(path: Path, header: bytes, length: int | None = None, tail: bytes = b"") -> Path:
    path.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header + tail)
    return path


def test_safetensors_header_bounds(tmp_path: Path) -> None:
    check_safetensors(safetensors(tmp_path / "smallest.safetensors", b"{}"))  # 2 bytes, the whole file
    check_safetensors(safetensors(tmp_path / "data.safetensors", b"{}", tail=b"\x00" * 4))
    for file in (safetensors(tmp_path / "one.safetensors", b"{", length=1),  # below the 2-byte minimum
                 safetensors(tmp_path / "long.safetensors", b"{}", length=3)):  # past the end of the file
        with pytest.raises(CatalogError, match=r"\.safetensors: not a safetensors file \(bad header length\)$"):
            check_safetensors(file)

@pytest.mark.parametrize("content,why", [
    (b"\x01\x02", "too short"),
    (struct.pack("<Q", 4) + b"nope", "header is not JSON"),
    (struct.pack("<Q", 2) + b"[]", "header is not a mapping"),
], ids=["too short", "not JSON", "not a mapping"])
def test_safetensors_refusals_name_the_file_and_why(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "weights.safetensors"
    path.write_bytes(content)
    with pytest.raises(CatalogError, match=rf"^weights\.safetensors: not a safetensors file \({why}\)$"):
        check_safetensors(path)


def test_adapter_folder_refusals_name_what_is_wrong(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(CatalogError, match=rf"^adapter folder {missing} does not exist$"):
        check_adapter_folder(missing, base_digest=SAMPLE_BASE_DIGEST, concept="pencil-sketch")

    folder = tmp_path / "adapter"
    make_adapter(folder)
    (folder / "a.bin").write_bytes(b"x")
    (folder / "b.pt").write_bytes(b"x")
    with pytest.raises(CatalogError, match=r"^refusing pickle-based weights a\.bin, b\.pt: publish safetensors only$"):
        check_adapter_folder(folder, base_digest=SAMPLE_BASE_DIGEST, concept="pencil-sketch")
    (folder / "a.bin").unlink()
    (folder / "b.pt").unlink()

    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    (folder / MANIFEST_NAME).unlink()
    with pytest.raises(CatalogError, match=rf"^{folder}: no {MANIFEST_NAME}$"):
        check_adapter_folder(folder, base_digest=SAMPLE_BASE_DIGEST, concept="pencil-sketch")
    (folder / MANIFEST_NAME).write_text(json.dumps({**manifest, "ranks": {"up1": "four"}}))
    with pytest.raises(CatalogError, match=rf"^{MANIFEST_NAME}: ranks\.up1: Input should be a valid integer"):
        check_adapter_folder(folder, base_digest=SAMPLE_BASE_DIGEST, concept="pencil-sketch")


def test_a_sha256_prefix_on_either_side_is_the_same_base(tmp_path: Path) -> None:
    folder = tmp_path / "adapter"
    make_adapter(folder, base_digest="sha256:" + SAMPLE_BASE_DIGEST)
    assert check_adapter_folder(folder, base_digest=SAMPLE_BASE_DIGEST, concept="pencil-sketch").concept == "pencil-sketch"
    with pytest.raises(CatalogError, match=rf"^{MANIFEST_NAME} names another base model than"):
        check_adapter_folder(folder, base_digest="cd" * 32, concept="pencil-sketch")


def test_the_passed_base_digest_may_carry_the_prefix_and_the_refusal_quotes_it(tmp_path: Path) -> None:
    folder = tmp_path / "adapter"
    make_adapter(folder)  # the manifest names the bare digest
    prefixed = "sha256:" + SAMPLE_BASE_DIGEST.removeprefix("sha256:")
    assert check_adapter_folder(folder, base_digest=prefixed, concept="pencil-sketch").concept == "pencil-sketch"
    other = "sha256:" + "cd" * 32
    with pytest.raises(CatalogError) as refused:
        check_adapter_folder(folder, base_digest=other, concept="pencil-sketch")
    assert str(refused.value) == f"{MANIFEST_NAME} names another base model than {other[:23]}…"


def listing(folder: Path, name: str) -> None:
    """List one more file in the manifest (with its real size and digest)."""
    from e2gan_api.manifest import sha256_file

    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    path = folder / name
    manifest["files"][name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))


def test_listed_files_are_refused_by_name_and_by_content(tmp_path: Path) -> None:
    folder = tmp_path / "adapter"
    make_adapter(folder)
    check = lambda: check_adapter_folder(folder, base_digest=SAMPLE_BASE_DIGEST, concept="pencil-sketch")  # noqa: E731

    # Same size, other bytes: the digest alone catches it.
    weights = folder / "adapter_model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(CatalogError) as refused:
        check()
    assert str(refused.value) == f"adapter_model.safetensors does not match its sha256/size in {MANIFEST_NAME}"
    weights.write_bytes(original)

    (folder / "notes.md~").write_text("x")
    listing(folder, "notes.md~")
    with pytest.raises(CatalogError) as refused:
        check()
    assert str(refused.value) == f"{MANIFEST_NAME} lists an invalid file name 'notes.md~'"

    # A pickle listed in the manifest (not in the folder, so the folder scan cannot see it).
    (folder / "notes.md~").unlink()
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    del manifest["files"]["notes.md~"]
    manifest["files"]["extra.bin"] = {"sha256": "0" * 64, "size": 1}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(CatalogError) as refused:
        check()
    assert str(refused.value) == "refusing pickle-based weights extra.bin: publish safetensors only"
