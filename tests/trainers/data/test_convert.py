from __future__ import annotations

import numpy as np
import pytest
import torch

from trainers.data import to_tensor, to_uint8


def test_round_trip_is_exact() -> None:
    x = np.random.default_rng(0).integers(0, 256, (3, 8, 10, 3), dtype=np.uint8)
    t = to_tensor(x)
    assert t.shape == (3, 3, 8, 10) and t.dtype == torch.float32
    assert float(t.min()) >= -1.0 and float(t.max()) <= 1.0
    np.testing.assert_array_equal(to_uint8(t), x)


def test_range_end_points() -> None:
    x = np.array([[[[0, 255, 128]]]], dtype=np.uint8)
    assert to_tensor(x).flatten().tolist() == pytest.approx([-1.0, 1.0, 128 / 127.5 - 1], abs=1e-6)


def test_to_uint8_clamps_and_detaches() -> None:
    t = torch.tensor([-3.0, 0.0, 3.0]).reshape(1, 3, 1, 1).requires_grad_()
    assert to_uint8(t).reshape(-1).tolist() == [0, 128, 255]


@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 4, 4, 3), np.float32), np.zeros((4, 4, 3), np.uint8), np.zeros((1, 4, 4, 4), np.uint8)],
)
def test_to_tensor_rejects(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        to_tensor(bad)


def test_to_uint8_rejects_wrong_layout() -> None:
    with pytest.raises(ValueError):
        to_uint8(torch.zeros(1, 4, 4, 3))
