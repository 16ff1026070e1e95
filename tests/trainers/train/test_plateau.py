"""The plateau rule that ends a concept fine-tune: the best check, and when to stop."""

import numpy as np
import torch

from trainers.models import E2GANGenerator, GeneratorConfig
from trainers.train.loop import PairArrays
from trainers.train.plateau import MIN_GAIN_DB, Plateau, validation_scores


def test_a_gain_under_the_minimum_counts_towards_the_patience_but_still_is_the_best():
    p = Plateau(patience=2)
    assert p.update(50, 20.0) and p.best_step == 50
    # noise, not progress: the patience counts it, yet these are the best weights so far
    assert p.update(100, 20.0 + MIN_GAIN_DB / 2) and p.best_step == 100 and p.since == 1 and not p.stop
    assert p.update(150, 20.2) and p.since == 0 and p.best_step == 150  # a real gain resets the count
    assert not p.update(200, 19.0) and not p.stop
    assert not p.update(250, 20.1) and p.stop
    assert p.best == 20.2 and p.checks == [[50, 20.0], [100, 20.025], [150, 20.2], [200, 19.0], [250, 20.1]]


def test_small_gains_in_a_row_end_the_run_at_the_highest_check():
    p = Plateau(patience=3)
    for step, score in [(1, 10.0), (2, 10.03), (3, 10.06), (4, 10.09)]:
        p.update(step, score)
    # 10.06 is 0.06 over the anchor 10.0: a real gain; 10.03 and 10.09 are not
    assert p.anchor == 10.06 and p.since == 1 and p.best_step == 4 and not p.stop


def test_patience_zero_never_stops_and_a_nan_check_is_no_gain():
    p = Plateau(patience=0)
    for step, score in enumerate([5.0, 4.0, 3.0, 2.0], start=1):
        p.update(step, score)
    assert not p.stop and p.best_step == 1
    q = Plateau(patience=1)
    q.update(1, 10.0)
    assert not q.update(2, float("nan")) and q.stop


def test_the_record_survives_a_checkpoint_with_how_the_run_ended():
    p = Plateau(patience=3)
    p.update(10, 12.5)
    p.update(20, 12.0)
    back = Plateau.from_dict(p.to_dict() | {"stopped_early": False, "last_step": 20})
    assert back == p


def test_validation_scores_are_per_image_and_leave_the_mode_as_it_was():
    model = E2GANGenerator(GeneratorConfig(width=8, text_dim=16, context_tokens=2, heads=2)).train()
    x = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    scores = validation_scores(model, PairArrays(x, x, torch.zeros(1, 16)), batch_size=2)
    assert scores.shape == (5,) and torch.isfinite(scores).all() and model.training
