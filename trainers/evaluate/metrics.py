"""PSNR and SSIM (torchmetrics) against the teacher, a bootstrap interval, a sharpness check;
FID/KID only from Inception weights given by path.

Images are tensors in [-1, 1]; metrics are computed on [0, 1] in fp32. FID and KID need an
Inception network we cannot download here, so without `inception` they are reported
as unavailable (None plus a reason) and never estimated.
"""

from __future__ import annotations

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


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def kernel_inception_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD² with the cubic polynomial kernel (Bińkowski et al.)."""
    d = a.shape[1]

    def k(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (x @ y.T / d + 1) ** 3

    m, n = len(a), len(b)
    kaa, kbb, kab = k(a, a), k(b, b), k(a, b)
    return float(
        (kaa.sum() - np.trace(kaa)) / (m * (m - 1)) + (kbb.sum() - np.trace(kbb)) / (n * (n - 1)) - 2 * kab.mean()
    )


def inception_metrics(pred: torch.Tensor, target: torch.Tensor, inception: str | Path | None) -> dict[str, float | str | None]:
    """FID/KID from an Inception feature extractor given as an ONNX file (image [N,3,299,299] → features)."""
    if not inception:
        reason = "unavailable: no Inception weights given (pass --inception PATH to an ONNX feature extractor)"
        return {"fid": None, "kid": None, "fid_status": reason}
    import onnxruntime as ort

    session = ort.InferenceSession(str(inception), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def features(x: torch.Tensor) -> np.ndarray:
        x = F.interpolate(_unit(x), size=(299, 299), mode="bilinear", align_corners=False)
        return session.run(None, {name: x.numpy().astype(np.float32)})[0].reshape(len(x), -1).astype(np.float64)

    fa, fb = features(pred), features(target)
    return {"fid": frechet_distance(fa, fb), "kid": kernel_inception_distance(fa, fb), "fid_status": "computed"}
