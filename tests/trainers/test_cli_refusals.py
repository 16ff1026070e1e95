"""Bad input: one line naming the field and the fix, exit code 2, nothing written to the catalog."""

import subprocess
import sys
from pathlib import Path

import pytest

GOOD = "concept: pencil-sketch\nprompt: turn the photo into a pencil sketch\n"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainers.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("colour: blue\n", "colour: unknown field"),
        ("training:\n  steps: many\n", "training.steps"),
        ("search:\n  ranks: [0, 4]\n", "search.ranks.0"),
        ("data:\n  keepFraction: 1.5\n", "data.keepFraction"),
        ("training:\n  resolution: 60\n", "training.resolution"),
        ("search:\n  trials: 2\n  parallelTrials: 3\n", "parallelTrials"),
        ("teacher:\n  kind: instruct-pix2pix\n", "teacher.model is required"),
    ],
)
def test_bad_specs_are_refused_in_one_line(tmp_path, extra, field):
    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD + extra)
    result = run_cli("distill", str(spec), "--catalog", str(tmp_path / "catalog"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("e2gan: error: ") and field in lines[0], result.stderr
    assert not (tmp_path / "catalog").exists()


def test_missing_images_and_missing_teacher_weights(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD + f"data:\n  source: {tmp_path / 'no-such-folder'}\n")
    result = run_cli("distill", str(spec), "--catalog", str(tmp_path / "catalog"), cwd=tmp_path)
    assert result.returncode == 2 and "data.source" in result.stderr, result.stderr
    spec.write_text(GOOD + f"teacher:\n  kind: instruct-pix2pix\n  model: {tmp_path / 'no-weights'}\n")
    result = run_cli("distill", str(spec), "--catalog", str(tmp_path / "catalog"), cwd=tmp_path)
    assert result.returncode == 2 and "teacher" in result.stderr and "model_index.json" in result.stderr, result.stderr
    assert not (tmp_path / "catalog").exists()


def test_missing_spec_file_and_help(tmp_path):
    result = run_cli("distill", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert result.returncode == 2 and "no such spec file" in result.stderr
    helped = run_cli("distill", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "pencil-sketch" in helped.stdout and "--catalog" in helped.stdout
