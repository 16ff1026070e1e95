"""The exported ONNX model takes any height and width that are multiples of 8."""

import numpy as np
import torch

from trainers.export.onnx import export_and_verify, ort_run, verify_sizes
from trainers.models import ConceptGenerator, E2GANGenerator, GeneratorConfig

TINY = GeneratorConfig(width=8, text_dim=16, context_tokens=2, heads=2)


def test_export_is_checked_at_two_sizes_and_runs_at_others(tmp_path):
    assert len(set(verify_sizes(32))) == 2
    model = ConceptGenerator(E2GANGenerator(TINY).eval(), torch.randn(16)).eval()
    export_and_verify(model, tmp_path, resolution=32, fp16=False)
    for h, w in [(32, 32), (48, 80), (128, 64)]:
        x = np.random.default_rng(h + w).uniform(-1, 1, (1, 3, h, w)).astype(np.float32)
        y = ort_run(tmp_path / "model.onnx", x)
        assert y.shape == (1, 3, h, w)
        with torch.no_grad():
            assert np.abs(y - model(torch.from_numpy(x)).numpy()).max() < 1e-4
