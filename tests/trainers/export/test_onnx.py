import numpy as np
import torch

from trainers.export.onnx import count_macs, export_and_verify, ort_run
from trainers.models import ConceptGenerator, E2GANGenerator, GeneratorConfig

TINY = GeneratorConfig(width=8, text_dim=16, context_tokens=2, heads=2)


def test_export_matches_torch_in_fp32_and_fp16(tmp_path):
    model = ConceptGenerator(E2GANGenerator(TINY).eval(), torch.randn(16)).eval()
    report = export_and_verify(model, tmp_path, resolution=32, fp16=True)
    assert report.max_abs_diff < 1e-4
    assert report.fp16_max_abs_diff is not None and report.fp16_max_abs_diff < 0.05
    assert (tmp_path / "model.onnx").is_file() and (tmp_path / "model_fp16.onnx").is_file()
    assert report.fp16_bytes < report.onnx_bytes
    # dynamic batch
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        assert np.abs(ort_run(tmp_path / "model.onnx", x) - model(torch.from_numpy(x)).numpy()).max() < 1e-4


def test_macs_count_convolutions():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    assert count_macs(conv, torch.zeros(1, 3, 8, 8)) == 4 * 8 * 8 * 27
