import pytest

from trainers.models.crucial import CRUCIAL_LAYERS
from trainers.train.patterns import candidate_patterns, choose


def test_uniform_patterns_come_first_then_distinct_mixes():
    patterns = candidate_patterns([2, 4, 8], trials=6, seed=0)
    assert patterns[:3] == [dict.fromkeys(CRUCIAL_LAYERS, r) for r in (2, 4, 8)]
    assert len({tuple(p.values()) for p in patterns}) == 6


def test_patterns_are_reproducible_and_capped_by_the_space():
    assert candidate_patterns([2, 4], 5, seed=3) == candidate_patterns([2, 4], 5, seed=3)
    assert len(candidate_patterns([4], trials=10, seed=0)) == 1


def test_choose_takes_the_cheapest_within_tolerance():
    trials = [
        {"ranks": {"up": 8}, "psnr": 20.0, "trainable_params": 800},
        {"ranks": {"up": 4}, "psnr": 19.9, "trainable_params": 400},
        {"ranks": {"up": 2}, "psnr": 18.0, "trainable_params": 200},
    ]
    assert choose(trials, tolerance_db=0.25)["ranks"] == {"up": 4}
    assert choose(trials, tolerance_db=0.0)["ranks"] == {"up": 8}
    assert choose(trials, tolerance_db=5.0)["ranks"] == {"up": 2}


def test_choose_needs_a_score():
    with pytest.raises(RuntimeError, match="no trial"):
        choose([{"ranks": {}, "psnr": None, "trainable_params": 1}], 0.1)
