import numpy as np
import pytest
import torch

from trainers.evaluate.grid import save_grid
from trainers.evaluate.metrics import inception_metrics, psnr, ssim


def test_psnr_known_value():
    a = torch.zeros(1, 3, 8, 8)  # 0.5 in [0, 1]
    b = torch.full((1, 3, 8, 8), 0.2)  # 0.6 in [0, 1] → mse 0.01 → 20 dB
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-3)


def test_ssim_is_one_for_identical_and_lower_for_noise():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-5)
    assert ssim(x, x + 0.5 * torch.randn_like(x)) < 0.9


def tiny_feature_extractor(path):
    """A random-weight stand-in for Inception, exported to ONNX as real weights would be given."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    torch.onnx.export(net, (torch.rand(2, 3, 299, 299),), str(path), input_names=["image"],
                      output_names=["features"], dynamic_axes={"image": {0: "n"}, "features": {0: "n"}},
                      dynamo=False)
    return path


def test_fid_and_kid_come_from_torchmetrics_over_the_given_extractor(tmp_path):
    extractor = tiny_feature_extractor(tmp_path / "inception.onnx")
    g = torch.Generator().manual_seed(0)
    target = torch.rand(16, 3, 32, 32, generator=g) * 2 - 1
    same = inception_metrics(target, target, extractor)
    noisy = inception_metrics((target + 0.1 * torch.randn(16, 3, 32, 32, generator=g)).clamp(-1, 1), target, extractor)
    other = inception_metrics(target * 0.3 + 0.7, target, extractor)  # washed out: far from the targets
    assert same["fid_status"] == noisy["fid_status"] == "computed"
    assert same["fid"] == pytest.approx(0.0, abs=1e-3) and abs(same["kid"]) < 1e-3
    assert 0 < noisy["fid"] < other["fid"] and noisy["kid"] < other["kid"]
    one = inception_metrics(target[:1], target[:1], extractor)
    assert one["fid"] is None and "at least 2" in one["fid_status"]


def test_fid_is_reported_unavailable_without_weights():
    x = torch.zeros(2, 3, 8, 8)
    out = inception_metrics(x, x, None)
    assert out["fid"] is None and out["kid"] is None and out["fid_status"].startswith("unavailable")


def test_grid_png(tmp_path):
    from PIL import Image

    cols = [torch.rand(3, 3, 16, 16) * 2 - 1 for _ in range(4)]
    path = save_grid(cols, tmp_path / "g.png", rows=2)
    w, h = Image.open(path).size
    assert (w, h) == (4 * 260 + 4, 2 * 260 + 4)  # 16 px tiles shown at 256 px, 4 px gaps
    grid = np.asarray(Image.open(path))
    tile = grid[4 : 4 + 256, 4 : 4 + 256]
    np.testing.assert_array_equal(tile[::16, ::16], ((cols[0][0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy())
    small = save_grid(cols, tmp_path / "s.png", rows=2, pad=2, min_tile=16)
    assert Image.open(small).size == (4 * 18 + 2, 2 * 18 + 2)


def test_split_metrics_have_a_bootstrap_interval_around_the_mean_and_a_sharpness_ratio():
    from trainers.evaluate.metrics import bootstrap_ci, sharpness_ratio, split_metrics

    g = torch.Generator().manual_seed(0)
    target = torch.rand(24, 3, 32, 32, generator=g) * 2 - 1
    pred = target + 0.1 * torch.randn(24, 3, 32, 32, generator=g)
    m = split_metrics(pred, target)
    lo, hi = m["psnr_ci95"]
    assert lo < m["psnr"] < hi and hi - lo < 2.0 and m["images"] == 24
    assert bootstrap_ci(np.array([3.0, 3.0, 3.0])) == [3.0, 3.0]
    blurred = torch.nn.functional.avg_pool2d(target, 3, stride=1, padding=1)
    assert sharpness_ratio(blurred, target) < 0.5 < sharpness_ratio(target, target) == pytest.approx(1.0)

