"""Crops as sources: seeded, distinct, identified by (photo, box, flip), split-able by photo."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainers.sources import open_source
from trainers.sources.crops import Photo, check_scale, photo_crops


def _photos(folder: Path, count: int, size: tuple[int, int] = (96, 64)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for i in range(count):
        path = folder / f"photo{i:02d}.png"
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_ten_photos_give_160_distinct_crops_evenly(tmp_path: Path) -> None:
    paths = _photos(tmp_path, 10)
    src = open_source(str(tmp_path), 160, 32, seed=3)
    assert src.images.shape == (160, 32, 32, 3)
    assert len(set(src.hashes)) == 160
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    assert set(src.groups) == digests and src.photos == 10
    assert sorted(src.groups.count(d) for d in digests) == [16] * 10
    for record in src.boxes:
        x0, y0, x1, y1 = record["box"]
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 and isinstance(record["flip"], bool)
        # square in pixels on a 96x64 photo, between half and all of the short side
        assert (x1 - x0) * 96 == pytest.approx((y1 - y0) * 64, rel=1e-4)
        assert 0.5 * 64 - 1e-3 <= (y1 - y0) * 64 <= 64 + 1e-3
    assert any(r["flip"] for r in src.boxes) and not all(r["flip"] for r in src.boxes)


def test_crops_are_seeded_and_depend_only_on_the_photo(tmp_path: Path) -> None:
    _photos(tmp_path / "a", 3)
    one = open_source(str(tmp_path / "a"), 12, 32, seed=1)
    again = open_source(str(tmp_path / "a"), 12, 32, seed=1)
    other_seed = open_source(str(tmp_path / "a"), 12, 32, seed=2)
    np.testing.assert_array_equal(one.images, again.images)
    assert one.hashes != other_seed.hashes
    # Adding a photo to the folder keeps the first crops of every other photo.
    _photos(tmp_path / "b", 3)
    Image.new("RGB", (80, 80), (10, 200, 30)).save(tmp_path / "b" / "zz-new.png")
    grown = open_source(str(tmp_path / "b"), 16, 32, seed=1)
    for digest in set(one.groups):
        first = [h for h, g in zip(one.hashes, one.groups, strict=True) if g == digest][:3]
        assert first == [h for h, g in zip(grown.hashes, grown.groups, strict=True) if g == digest][:3]


def test_a_crop_shows_the_part_of_the_photo_its_box_names(tmp_path: Path) -> None:
    img = Image.new("RGB", (200, 100), (255, 0, 0))
    img.paste((0, 0, 255), (100, 0, 200, 100))  # left half red, right half blue
    img.save(tmp_path / "halves.png")
    src = open_source(str(tmp_path), 40, 16, seed=0, crop_scale=(0.5, 0.5))
    for image, record in zip(src.images, src.boxes, strict=True):
        x0, _, x1, _ = record["box"]
        if x1 <= 0.49:  # entirely in the red half
            assert image[..., 0].mean() > 200 and image[..., 2].mean() < 50
        if x0 >= 0.51:
            assert image[..., 2].mean() > 200 and image[..., 0].mean() < 50


def test_flip_mirrors_the_crop(tmp_path: Path) -> None:
    img = Image.new("RGB", (64, 64), (255, 0, 0))
    img.paste((0, 0, 255), (32, 0, 64, 64))
    data_path = tmp_path / "p.png"
    img.save(data_path)
    crops = photo_crops([Photo("p.png", data_path.read_bytes)], 30, 16, seed=0, scale=(1.0, 1.0))
    flips = {r["flip"] for r in crops.boxes}
    assert flips == {True, False}
    for image, record in zip(crops.images, crops.boxes, strict=True):
        left_red = image[:, :4, 0].mean() > 200
        assert left_red != record["flip"]


def test_unreadable_photos_are_skipped_and_their_share_goes_elsewhere(tmp_path: Path) -> None:
    _photos(tmp_path, 2)
    (tmp_path / "zz-broken.png").write_bytes(b"\x89PNG not really")
    src = open_source(str(tmp_path), 9, 32, seed=0)
    assert len(src.images) == 9 and src.skipped == 1 and src.photos == 2


@pytest.mark.parametrize("scale", [(0.0, 1.0), (0.5, 1.5), (0.8, 0.5), (-0.1, 0.5)])
def test_crop_scale_outside_0_1_is_refused(scale: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="crop scale"):
        check_scale(scale)


def test_builtin_photos_are_real_photographs_from_installed_packages() -> None:
    from trainers.sources.samples import sample_photo_paths

    assert len(sample_photo_paths()) >= 8  # scikit-learn's 2 + scikit-image's 6, declared dependencies
    src = open_source("builtin://photos", 32, 32, seed=0)
    assert src.images.shape == (32, 32, 32, 3) and src.photos >= 8 and len(set(src.hashes)) == 32
    # photographs, not flat procedural colour fields: plenty of distinct colours per crop
    assert min(len(np.unique(img.reshape(-1, 3), axis=0)) for img in src.images) > 100


def test_base_mix_is_half_scenes_half_photos_that_builtin_photos_never_uses() -> None:
    from trainers.sources.samples import BASE_PHOTOS, SAMPLE_PHOTOS, sample_photo_paths

    assert not {f for fs in BASE_PHOTOS.values() for f in fs} & {f for fs in SAMPLE_PHOTOS.values() for f in fs}
    photos = open_source("builtin://photos", 16, 32, seed=0)
    mix = open_source("builtin://base-mix", 20, 32, seed=0)
    assert mix.images.shape == (20, 32, 32, 3) and len(set(mix.hashes)) == 20
    names = [b["name"] for b in mix.boxes]
    assert names.count("builtin://scenes") == 10
    assert len(set(names) - {"builtin://scenes"}) == len(sample_photo_paths(BASE_PHOTOS))
    # the photos builtin://photos splits by never appear among the base's sources
    assert not set(mix.groups) & set(photos.groups)
    # a scene is a group of its own, so a split by photo never straddles one
    assert mix.photos == len(set(mix.groups))
    again = open_source("builtin://base-mix", 20, 32, seed=0)
    assert np.array_equal(again.images, mix.images)


def test_the_photo_base_example_is_the_built_in_base_on_base_mix() -> None:
    import yaml

    from e2gan_api.spec import ConceptBaseSpec
    from trainers.pipeline.base import HELD_OUT_CONCEPTS, default_base_spec

    root = Path(__file__).resolve().parents[3]
    doc = yaml.safe_load((root / "examples" / "concepts" / "builtin-base-photos.yaml").read_text())
    example = ConceptBaseSpec.model_validate(doc["spec"])
    builtin = default_base_spec()
    assert example.data.source == "builtin://base-mix" and builtin.data.source == "builtin://scenes"
    assert [(c.concept, c.prompt) for c in example.concepts] == [(c.concept, c.prompt) for c in builtin.concepts]
    assert example.training == builtin.training and example.width == builtin.width
    assert not {c.concept for c in example.concepts} & set(HELD_OUT_CONCEPTS)
