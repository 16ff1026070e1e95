import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

import trainers.export.onnx as onnx_export
from trainers.export.onnx import count_macs, export_and_verify, export_onnx, ort_run
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


# -- the agreement check itself: onnxruntime's answer is perturbed, the export must refuse --------

def add_to_output(path: Path, offset: float) -> None:
    """Rewrite the saved graph so that its output is `offset` higher than what the model computes:
    a broken export, run by the real onnxruntime (the check must see the difference)."""
    model = onnx.load(str(path))
    graph = model.graph
    name = graph.output[0].name
    raw = f"{name}_before_offset"
    for node in graph.node:
        node.output[:] = [raw if out == name else out for out in node.output]
    graph.initializer.append(numpy_helper.from_array(np.array(offset, dtype=np.float32), "test_offset"))
    graph.node.append(helper.make_node("Add", [raw, "test_offset"], [name]))
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[ConceptGenerator, Path]:
    """A tiny generator and its real fp32 export, made once (torch.onnx.export is the slow part)."""
    torch.manual_seed(0)
    model = ConceptGenerator(E2GANGenerator(TINY).eval(), torch.randn(16)).eval()
    return model, export_onnx(model, tmp_path_factory.mktemp("onnx") / "model.onnx", 32)


def reuse_export(monkeypatch: pytest.MonkeyPatch, exported: tuple[ConceptGenerator, Path],
                 fp32_offset: float | None = None, fp16_offset: float | None = None) -> ConceptGenerator:
    """export_and_verify runs as usual, on a copy of the module's export; the fp32 file, or the fp16
    file once converted, has its output shifted by the given offset."""
    model, source = exported
    real_to_fp16 = onnx_export.to_fp16

    def export_copy(model_: torch.nn.Module, path: Path, resolution: int) -> Path:
        assert model_ is model and resolution == 32
        shutil.copyfile(source, path)
        if fp32_offset is not None:
            add_to_output(path, fp32_offset)
        return Path(path)

    def to_fp16(src: Path, dst: Path) -> Path:
        out = real_to_fp16(src, dst)
        if fp16_offset is not None:
            add_to_output(out, fp16_offset)
        return out

    monkeypatch.setattr(onnx_export, "export_onnx", export_copy)
    monkeypatch.setattr(onnx_export, "to_fp16", to_fp16)
    return model


Exported = tuple[ConceptGenerator, Path]


def test_fp32_export_is_refused_when_onnxruntime_disagrees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           exported: Exported) -> None:
    model = reuse_export(monkeypatch, exported, fp32_offset=1e-2)  # ten times the tolerance
    with pytest.raises(RuntimeError, match=r"^ONNX export disagrees with torch: max \|diff\| 1\.00e-02 > 1e-03"):
        export_and_verify(model, tmp_path, resolution=32, fp16=False)


def test_fp32_check_uses_its_tolerance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exported: Exported) -> None:
    model = reuse_export(monkeypatch, exported, fp32_offset=2e-4)  # within 1e-3: accepted, reported as it is
    report = export_and_verify(model, tmp_path, resolution=32, fp16=False)
    assert report.max_abs_diff == pytest.approx(2e-4, abs=5e-5)
    with pytest.raises(RuntimeError, match="ONNX export disagrees with torch"):
        export_and_verify(model, tmp_path, resolution=32, fp16=False, tolerance=1e-4)


def test_fp16_export_is_refused_when_onnxruntime_disagrees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           exported: Exported) -> None:
    # The fp32 model is intact: only the fp16 check can catch this.
    model = reuse_export(monkeypatch, exported, fp16_offset=0.5)
    with pytest.raises(RuntimeError, match=r"^fp16 ONNX export disagrees with torch: max \|diff\| 0\.50"):
        export_and_verify(model, tmp_path, resolution=32, fp16=True)


def test_fp16_rounding_is_tolerated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exported: Exported) -> None:
    model = reuse_export(monkeypatch, exported, fp16_offset=0.05)  # below the 0.1 that means a broken graph
    report = export_and_verify(model, tmp_path, resolution=32, fp16=True)
    assert report.fp16_max_abs_diff is not None and 0.04 < report.fp16_max_abs_diff < 0.1
    assert report.max_abs_diff < 1e-4
