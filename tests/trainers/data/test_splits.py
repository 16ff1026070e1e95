"""Splits by photo: disjoint, seeded, whole photos only, clear refusals."""

import pytest

from trainers.data.splits import SplitError, split_by_group


def photos(n_photos: int, per_photo: int) -> list[str]:
    return [f"photo{p}" for p in range(n_photos) for _ in range(per_photo)]


def test_ten_photos_160_pairs_32_held_out():
    groups = photos(10, 16)
    test, val, train = split_by_group(groups, 32, seed=0)
    assert len(test) == 16 and len(val) == 16 and len(train) == 128
    assert set(test).isdisjoint(val) and set(test).isdisjoint(train) and set(val).isdisjoint(train)
    by = lambda idx: {groups[i] for i in idx}  # noqa: E731
    assert by(test).isdisjoint(by(train)) and by(val).isdisjoint(by(train)) and by(test).isdisjoint(by(val))
    assert split_by_group(groups, 32, seed=0) == (test, val, train)
    assert split_by_group(groups, 32, seed=1) != (test, val, train)


def test_not_by_file_order():
    groups = photos(20, 1)
    test, _, _ = split_by_group(groups, 4, seed=0)
    assert test != [0, 1]


def test_unique_groups_are_a_plain_random_split():
    groups = [f"scene{i}" for i in range(24)]
    test, val, train = split_by_group(groups, 6, seed=3)
    assert (len(test), len(val), len(train)) == (3, 3, 18)


def test_too_few_photos_says_how_many_are_needed():
    with pytest.raises(SplitError, match="2 photo.*need at least 3 different photos"):
        split_by_group(photos(2, 50), 10, seed=0)
    with pytest.raises(SplitError, match=r"3 photos give no training photo .* use at least \d+ photos"):
        split_by_group(photos(3, 4), 10, seed=0)
