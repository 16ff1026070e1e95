from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainers.sources import SOURCE_OPENERS, open_source, source_hashes, synthetic_scenes


def test_builtin_scenes() -> None:
    src = open_source("builtin://scenes", 5, 32, seed=3)
    np.testing.assert_array_equal(src.images, synthetic_scenes(5, 32, seed=3))
    assert src.hashes == source_hashes(src.images) and src.skipped == 0 and len(src) == 5


def test_unknown_builtin() -> None:
    with pytest.raises(ValueError, match="builtin://scenes"):
        open_source("builtin://faces", 5, 32)


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_local_folder(tmp_path: Path, as_uri: bool) -> None:
    for i, img in enumerate(synthetic_scenes(3, 40, seed=0)):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
    (tmp_path / "bad.png").write_bytes(b"nope")
    uri = f"file://{tmp_path}" if as_uri else str(tmp_path)
    src = open_source(uri, 10, 32, seed=0)
    # data.pairs counts crops, not files: 10 distinct crops of the 3 readable photos.
    assert src.images.shape == (10, 32, 32, 3) and src.skipped == 1 and len(set(src.hashes)) == 10
    assert src.photos == 3 and len(set(src.groups)) == 3 and len(src.boxes) == 10


def test_empty_source_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no readable image"):
        open_source(str(tmp_path), 4, 32)


def test_s3_source_that_cannot_be_reached_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2GAN_S3_ENDPOINT", "http://127.0.0.1:1")
    monkeypatch.setenv("E2GAN_S3_RETRIES", "0")
    monkeypatch.setenv("E2GAN_S3_ACCESS_KEY", "test-access-key")
    monkeypatch.setenv("E2GAN_S3_SECRET_KEY", "test-secret-key")
    with pytest.raises(ValueError, match="127.0.0.1:1"):
        open_source("s3://bucket/prefix", 4, 32)


def test_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="unsupported source"):
        open_source("ftp://host/images", 4, 32)


def test_schemes_are_registered() -> None:
    assert {"builtin", "", "file", "s3"} <= set(SOURCE_OPENERS)
