"""Bad teacher settings through the CLI: one line naming the field, exit 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
GOOD = "concept: pencil-sketch\nprompt: turn the photo into a pencil sketch\n"


def _distill(spec_text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD + spec_text)
    return subprocess.run(
        [sys.executable, "-m", "trainers.cli", "distill", str(spec), "--catalog", str(tmp_path / "catalog")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'operator'}"},
    )


@pytest.mark.parametrize(
    ("teacher", "field"),
    [
        ("  scheduler: ddim\n", "teacher.scheduler"),
        ("  resolution: 300\n", "teacher.resolution"),
        ("  resolution: 2048\n", "teacher.resolution"),
        ("  scheduler: lcm\n  lcmLora: {missing}\n", "teacher.lcmLora"),
        ("  clipModel: {not_clip}\n", "teacher.clipModel"),
    ],
)
def test_bad_teacher_settings_are_refused_in_one_line(
    teacher: str, field: str, tiny_pipelines: dict[str, Path], tmp_path: Path
) -> None:
    text = f"teacher:\n  kind: sdedit\n  model: {tiny_pipelines['sdedit']}\n" + teacher.format(
        missing=tmp_path / "no-lcm", not_clip=tiny_pipelines["sdedit"]
    )
    result = _distill(text, tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("e2gan: error: ") and field in lines[0], result.stderr
    assert not (tmp_path / "catalog").exists()
