"""Bad teacher settings through the CLI: one line naming the field, exit 2, nothing written.

In-process (trainers.cli.main) to keep it fast; tests/trainers/test_cli_refusals.py covers
the subprocess path for the other fields.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trainers.cli import main

GOOD = "concept: pencil-sketch\nprompt: turn the photo into a pencil sketch\n"


@pytest.mark.parametrize(
    ("teacher", "field"),
    [
        ("  scheduler: ddim\n", "teacher.scheduler"),  # the other static refusals: test_gpu_shaped.py
        ("  resolution: 2048\n", "teacher.resolution"),
        ("  scheduler: lcm\n  lcmLora: {missing}\n", "teacher.lcmLora"),
        ("  clipModel: {not_clip}\n", "teacher.clipModel"),
    ],
)
def test_bad_teacher_settings_are_refused_in_one_line(
    teacher: str,
    field: str,
    tiny_pipelines: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        GOOD
        + f"teacher:\n  kind: sdedit\n  model: {tiny_pipelines['sdedit']}\n"
        + teacher.format(missing=tmp_path / "no-lcm", not_clip=tiny_pipelines["sdedit"])
    )
    code = main(["distill", str(spec), "--catalog", str(tmp_path / "catalog")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("e2gan: error: ") and field in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"], "nothing written"
