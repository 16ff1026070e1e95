from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainers.sources import folder_images, list_images


def _write(path: Path, size: tuple[int, int], colour: tuple[int, ...], mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    _write(tmp_path / "a.png", (40, 20), (255, 0, 0))
    _write(tmp_path / "sub" / "b.jpg", (30, 60), (0, 255, 0))
    _write(tmp_path / "sub" / "deeper" / "c.PNG", (16, 16), (0, 0, 255))
    _write(tmp_path / "d.png", (32, 32), (0, 0, 0, 0), mode="RGBA")  # fully transparent
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "a.png").read_bytes()[:40])
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_recursive_crop_resize_and_skips(folder: Path) -> None:
    images, skipped = folder_images(folder, 24)
    assert images.shape == (4, 24, 24, 3) and images.dtype == np.uint8
    assert skipped == 2
    colours = {tuple(int(c) for c in img[12, 12]) for img in images}
    assert (255, 255, 255) in colours  # transparency composited on white, not black
    assert any(c[0] > 200 and c[1] < 50 for c in colours)  # the red PNG
    assert any(c[1] > 200 and c[0] < 50 for c in colours)  # the green JPEG (lossy)


def test_center_crop_keeps_the_middle(tmp_path: Path) -> None:
    img = Image.new("RGB", (90, 30), (0, 0, 255))
    img.paste((255, 255, 0), (30, 0, 60, 30))  # yellow middle third, blue sides
    img.save(tmp_path / "wide.png")
    images, _ = folder_images(tmp_path, 16)
    assert (images[0][:, 2:-2] == (255, 255, 0)).all()  # bicubic may tint the outer pixel columns
    assert images[0][..., 2].mean() < 40


def test_n_picks_a_seeded_subset(folder: Path) -> None:
    a, _ = folder_images(folder, 16, n=2, seed=1)
    b, _ = folder_images(folder, 16, n=2, seed=1)
    assert len(a) == 2
    np.testing.assert_array_equal(a, b)


def test_n_larger_than_folder(folder: Path) -> None:
    images, skipped = folder_images(folder, 16, n=100)
    assert len(images) == 4 and skipped == 2


def test_only_bad_files(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"junk")
    images, skipped = folder_images(tmp_path, 16)
    assert images.shape == (0, 16, 16, 3) and skipped == 1


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        folder_images(tmp_path / "nope", 16)


def test_list_images_is_sorted_and_filtered(folder: Path) -> None:
    names = [p.relative_to(folder).as_posix() for p in list_images(folder)]
    assert names == sorted(names) and "notes.txt" not in names and "sub/deeper/c.PNG" in names
