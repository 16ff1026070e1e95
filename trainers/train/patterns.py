"""Candidate rank patterns for the search: uniform ones first, then seeded mixes."""

from __future__ import annotations

import random

from trainers.models.crucial import CRUCIAL_LAYERS


def candidate_patterns(ranks: list[int], trials: int, seed: int, groups: list[str] | None = None) -> list[dict[str, int]]:
    """`trials` distinct per-group rank patterns.

    The uniform patterns (every group at rank r) come first so the search always
    compares against the "1×/4×" references of the paper's ablation; the rest are
    random mixes drawn with `seed`, so a rerun searches the same space.
    """
    groups = groups or list(CRUCIAL_LAYERS)
    ranks = sorted(set(ranks))
    out: list[dict[str, int]] = [dict.fromkeys(groups, r) for r in ranks][:trials]
    seen = {tuple(p.values()) for p in out}
    rng = random.Random(seed)
    space = len(ranks) ** len(groups)
    while len(out) < min(trials, space):
        pattern = {g: rng.choice(ranks) for g in groups}
        key = tuple(pattern.values())
        if key not in seen:
            seen.add(key)
            out.append(pattern)
    return out


def choose(trials: list[dict], tolerance_db: float) -> dict:
    """The cheapest trial (fewest trainable parameters) within `tolerance_db` of the best PSNR."""
    scored = [t for t in trials if t.get("psnr") is not None]
    if not scored:
        raise RuntimeError("rank search: no trial reported a score")
    best = max(t["psnr"] for t in scored)
    within = [t for t in scored if t["psnr"] >= best - tolerance_db]
    return min(within, key=lambda t: (t["trainable_params"], -t["psnr"]))
