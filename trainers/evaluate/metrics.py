"""PSNR and SSIM (torchmetrics) against the teacher, a bootstrap interval, a sharpness check;
FID/KID only from Inception weights given by path.

Images are tensors in [-1, 1]; metrics are computed on [0, 1] in fp32. FID and KID need an
Inception network we cannot download here, so without `inception` they are reported
as unavailable (None plus a reason) and never estimated.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _unit(x: torch.Tensor) -> torch.Tensor:
    return ((x.float().clamp(-1, 1) + 1) / 2).clamp(0, 1)


def psnr_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR (dB, peak 1.0) of each image, [N]."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    return peak_signal_noise_ratio(_unit(pred), _unit(target), data_range=1.0, reduction="none", dim=(1, 2, 3))


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean PSNR (dB) over the batch, peak 1.0."""
    return float(psnr_per_image(pred, target).mean())


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004) with a Gaussian window, per channel."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    side = min(pred.shape[-1], pred.shape[-2])
    if side < window:  # tiny images: the largest odd window that fits, sigma scaled with it
        window = max(3, side - 1 + side % 2)
        sigma = sigma * window / 11
    value = structural_similarity_index_measure(_unit(pred), _unit(target), data_range=1.0, kernel_size=window, sigma=sigma)
    return float(value)


def bootstrap_ci(values: torch.Tensor | np.ndarray, resamples: int = 2000, level: float = 0.95, seed: int = 0) -> list[float]:
    """Percentile bootstrap interval of the mean over images: [lo, hi]."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return [float(v.mean()), float(v.mean())]
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), (resamples, len(v)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))]


_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)


def high_frequency_energy(x: torch.Tensor) -> float:
    """Mean squared Laplacian response of the grey image: what a blur removes first."""
    grey = _unit(x).mean(dim=1, keepdim=True)
    return float(F.conv2d(grey, _LAPLACIAN.to(grey)).pow(2).mean())


def sharpness_ratio(pred: torch.Tensor, target: torch.Tensor) -> float:
    """High-frequency energy of the output over the target's (≈1 sharp, ≪1 blurred)."""
    return high_frequency_energy(pred) / max(high_frequency_energy(target), 1e-12)


def split_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict:
    """The manifest's `metrics.test`."""
    scores = psnr_per_image(pred, target)
    return {
        "psnr": float(scores.mean()),
        "psnr_ci95": bootstrap_ci(scores.cpu()),
        "ssim": ssim(pred, target),
        "sharpness_ratio": sharpness_ratio(pred, target),
        "images": len(scores),
    }


class OnnxFeatures(torch.nn.Module):
    """An Inception feature extractor exported to ONNX (image [N, 3, 299, 299] in [0, 1] → features),
    as the module torchmetrics' FID and KID call in place of their own (downloaded) Inception."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x.float(), size=(299, 299), mode="bilinear", align_corners=False)
        out = self.session.run(None, {self.input_name: x.detach().cpu().numpy().astype(np.float32)})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32).reshape(len(x), -1))


def inception_metrics(pred: torch.Tensor, target: torch.Tensor, inception: str | Path | None) -> dict[str, float | str | None]:
    """FID and KID (torchmetrics) over the Inception features of an ONNX extractor given by path."""
    if not inception:
        reason = "unavailable: no Inception weights given (pass --inception PATH to an ONNX feature extractor)"
        return {"fid": None, "kid": None, "fid_status": reason}
    if len(pred) < 2:
        return {"fid": None, "kid": None, "fid_status": "unavailable: FID and KID need at least 2 test images"}
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    features = OnnxFeatures(inception)
    # KID's subsets: each the whole test split (it is small), so the estimate is the plain unbiased MMD².
    fid = FrechetInceptionDistance(feature=features, normalize=True)
    with warnings.catch_warnings():  # "saves all features in a buffer": a test split is small
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=features, normalize=True, subsets=1, subset_size=len(pred))
    for metric in (fid, kid):
        metric.update(_unit(target).cpu(), real=True)
        metric.update(_unit(pred).cpu(), real=False)
    return {"fid": float(fid.compute()), "kid": float(kid.compute()[0]), "fid_status": "computed"}
