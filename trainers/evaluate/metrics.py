"""PSNR and SSIM against the teacher; FID/KID only from Inception weights given by path.

Images are tensors in [-1, 1]; metrics are computed on [0, 1]. FID and KID need an
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


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean PSNR (dB) over the batch, peak 1.0."""
    mse = ((_unit(pred) - _unit(target)) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1.0 / mse)).mean())


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004) with a Gaussian window, per channel."""
    x, y = _unit(pred), _unit(target)
    window = min(window, x.shape[-1], x.shape[-2]) | 1
    coords = torch.arange(window, dtype=torch.float32) - window // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum()).to(x)
    kernel = (g[:, None] * g[None, :]).expand(x.shape[1], 1, window, window)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, kernel, groups=x.shape[1])

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


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
