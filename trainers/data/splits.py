"""Train / validation / test splits by photo, never by crop and never by file order.

Crops of one photo are near-duplicates, so a photo whose crops are in the training split
must never be scored: whole photos go to the test split (the only source of published
metrics) and the validation split (scores search trials and early stopping) until each
holds its share of the held-out pairs; the rest train. Sources without photos (procedural
scenes) are each their own group, which makes this a plain seeded random split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MIN_PHOTOS = 3  # one each for test, validation and training


class SplitError(ValueError):
    """The source cannot be split as asked; one line saying what it needs."""


def held_out_sizes(held_out: int) -> tuple[int, int]:
    """(test, validation) pairs out of data.heldOut; the test split gets the odd one."""
    return held_out - held_out // 2, held_out // 2


def split_by_group(groups: Sequence[str], held_out: int, seed: int) -> tuple[list[int], list[int], list[int]]:
    """Indices of (test, validation, train): disjoint, seeded, whole groups per split."""
    distinct = list(dict.fromkeys(groups))
    if len(distinct) < MIN_PHOTOS:
        raise SplitError(
            f"data.source: {len(distinct)} photo(s); the test, validation and training splits need at least "
            f"{MIN_PHOTOS} different photos — add photos to the folder"
        )
    members: dict[str, list[int]] = {g: [] for g in distinct}
    for i, g in enumerate(groups):
        members[g].append(i)
    order = [distinct[i] for i in np.random.default_rng(seed).permutation(len(distinct))]
    want_test, want_val = held_out_sizes(held_out)
    test: list[int] = []
    val: list[int] = []
    train: list[int] = []
    for g in order:
        if len(test) < want_test:
            test.extend(members[g])
        elif len(val) < max(1, want_val):
            val.extend(members[g])
        else:
            train.extend(members[g])
    if not train:
        per_photo = len(groups) / len(distinct)
        need = int(np.ceil((want_test + want_val) / per_photo)) + 1
        raise SplitError(
            f"data.source: {len(distinct)} photos give no training photo once data.heldOut ({held_out}) pairs "
            f"are held out by photo — use at least {need} photos or a smaller data.heldOut"
        )
    return sorted(test), sorted(val), sorted(train)
