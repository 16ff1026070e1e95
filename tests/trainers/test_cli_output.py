"""What `e2gan distill` shows: plain lines off a terminal, one live display on one, nothing
but the JSON line with --json; the job's own output in WORK_DIR/logs. No Ray here: the
console is driven through `Progress` exactly as the pipeline drives it."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from e2gan_api.manifest import AdapterManifest
from trainers.pipeline.progress import (
    LiveConsole,
    PlainConsole,
    Progress,
    SilentConsole,
    console_for,
    train_callbacks,
    use_console,
)
from trainers.pipeline.quiet import job_output
from trainers.pipeline.summary import summary_lines

ROOT = Path(__file__).resolve().parents[2]


def drive(console) -> None:
    """The pipeline's sequence of stages and updates for a 4-trial search."""
    use_console(console)
    try:
        progress = Progress()
        progress.stage("Validating", "concept pencil-sketch")
        progress.stage("Synthesizing", "160 pairs")
        progress.stage("Selecting", "keep 50%")
        progress.stage("Searching", "4 rank patterns")
        progress.update(trialsDone=0, trialsTotal=4)
        for done, score in enumerate([20.5, 21.7, 19.0, 21.2], start=1):
            progress.update(trialsDone=done, lastTrial={"ranks": {"up": 2}, "psnr": score})
        progress.stage("Training", "600 steps")
        for step in (100, 200, 300, 400, 500, 600):
            console.update({**console.state, "stepsDone": step, "stepsTotal": 600})
        for name in ("Evaluating", "Exporting", "Publishing", "Done"):
            progress.stage(name)
    finally:
        console.finish()
        use_console(None)


def fake_result(tmp_path: Path, published: bool = True):
    manifest = AdapterManifest(
        concept="pencil-sketch", prompt="sketch", base_model_digest="0" * 64, ranks={"down": 2, "up": 4},
        metrics={"psnr": 21.534, "base_psnr": 6.44, "ssim": 0.695, "adapter_bytes": 128_000,
                 "test": {"psnr": 21.534, "psnr_ci95": [20.9, 22.1], "images": 16}},
        trainable_parameters=30258, spec={"data": {"heldOut": 32}, "training": {"steps": 600}},
        fine_tune={"checks": [[50, 20.1], [100, 21.0]], "best_step": 100, "best": 21.04, "last_step": 300,
                   "stopped_early": True, "since": 4, "patience": 4},
    )
    entry = SimpleNamespace(version="v1", uri="/cat/adapters/abc/pencil-sketch/v1") if published else None
    return SimpleNamespace(manifest=manifest, folder=tmp_path / "adapter", entry=entry)


def test_plain_console_prints_few_lines_and_no_redraws(tmp_path):
    stream = io.StringIO()
    console = PlainConsole(stream)
    drive(console)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()
    assert [line.split()[2].rstrip(":") for line in lines if "trials done" not in line and "Training: step" not in line] == [
        "Validating", "Synthesizing", "Selecting", "Searching", "Training", "Evaluating", "Exporting", "Publishing",
        "Done"]
    assert any(line.endswith("Searching: 4/4 trials done, best 21.70 dB") for line in lines), lines
    assert sum("Training: step" in line for line in lines) == 3  # quarters, not every report
    summary = summary_lines(fake_result(tmp_path), console, tmp_path / "logs" / "e2gan.log")
    assert len(lines) + len(summary) <= 30
    text = "\n".join(summary)
    for needle in ("21.53 dB (95% interval 20.90–22.10)", "on 16 test pairs", "down 2, up 4", "30 258 parameters",
                   "125 KiB", "stopped at step 300 of 600 on a validation plateau; best check at step 100 (21.04 dB",
                   "Searching", "preview.png", "e2gan.log", "/cat/adapters/abc/pencil-sketch/v1"):
        assert needle in text, text
    assert set(console.stage_seconds) == {"Validating", "Synthesizing", "Selecting", "Searching", "Training",
                                          "Evaluating", "Exporting", "Publishing"}


def test_live_console_is_one_display(tmp_path):
    stream = io.StringIO()
    console = LiveConsole(stream)
    drive(console)
    out = stream.getvalue()
    assert "Searching" in out and "best 21.70 dB" in out and "ETA" in out


def test_console_choice_and_silence(tmp_path):
    assert isinstance(console_for(io.StringIO(), json_only=False), PlainConsole)
    assert isinstance(console_for(io.StringIO(), json_only=True), SilentConsole)
    silent = SilentConsole()
    drive(silent)
    assert silent.best_psnr == 21.7 and "Training" in silent.stage_seconds


def test_fine_tune_steps_come_from_the_ray_train_callback(tmp_path):
    from trainers.pipeline.train_progress import StepFile, read_step

    assert train_callbacks() == []  # no console, no callback
    stream = io.StringIO()
    console = PlainConsole(stream)
    console.watch_steps(tmp_path / "steps.json", 600)
    use_console(console)
    try:
        (callback,) = train_callbacks()
        callback.after_report(None, [{"step": 300, "loss": 0.1}, {"step": 300, "loss": 0.2}], None)
        assert read_step(tmp_path / "steps.json") == 300
        Progress().stage("Training", "600 steps")
        import time

        deadline = time.monotonic() + 10
        while "step 300/600" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "Training: step 300/600" in stream.getvalue()
        assert isinstance(callback, StepFile)
    finally:
        console.finish()
        use_console(None)


def test_job_output_goes_to_the_log_and_the_console_to_the_terminal(tmp_path):
    """fds 1 and 2 (what Ray's C++ core, workers and warnings write to) land in the log."""
    script = (
        "import os, sys, warnings\n"
        "from pathlib import Path\n"
        "from trainers.pipeline.quiet import job_output\n"
        f"with job_output(Path({str(tmp_path)!r}) / 'logs', verbose=False) as t:\n"
        "    print('from python'); os.write(1, b'from fd 1\\n'); os.write(2, b'from fd 2\\n')\n"
        "    warnings.warn('a warning')\n"
        "    t.out.write('for the user\\n')\n"
        "print('after')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "for the user\nafter\n" and result.stderr == ""
    log = (tmp_path / "logs" / "e2gan.log").read_text()
    for needle in ("from python", "from fd 1", "from fd 2", "a warning"):
        assert needle in log


def test_verbose_leaves_output_alone(tmp_path):
    with job_output(tmp_path / "logs", verbose=True) as terminal:
        assert terminal.log_path is None and terminal.out is sys.stdout
    assert not (tmp_path / "logs").exists()


def test_verbose_json_keeps_stdout_for_the_json_line(tmp_path):
    """A RayJob's pod log: the job's output on stderr, nothing but JSON on stdout."""
    script = (
        "import os\n"
        "from pathlib import Path\n"
        "from trainers.pipeline.quiet import job_output\n"
        f"with job_output(Path({str(tmp_path)!r}), verbose=True, json_only=True) as t:\n"
        "    print('ray chatter'); os.write(1, b'core chatter\\n')\n"
        "    t.out.write('{\"psnr\": 21.5}\\n')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == '{"psnr": 21.5}\n'
    assert "ray chatter" in result.stderr and "core chatter" in result.stderr


def test_known_warnings_are_fixed_at_their_source(tmp_path):
    """Read-only arrays (Ray's object store) and the ONNX export of instance norm: no warning."""
    import warnings

    import numpy as np
    import torch

    from trainers.data.convert import to_tensor
    from trainers.export.onnx import export_onnx
    from trainers.models.generator import ConceptGenerator, E2GANGenerator, GeneratorConfig

    frozen = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    frozen.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert to_tensor(frozen).shape == (2, 3, 8, 8)
    model = E2GANGenerator(GeneratorConfig(width=8, text_dim=8, heads=2, res_blocks=2)).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_onnx(ConceptGenerator(model, torch.zeros(8)), tmp_path / "g.onnx", 16)
    shown = [w for w in caught if not issubclass(w.category, DeprecationWarning)]  # hidden by default
    assert shown == [], [str(w.message)[:120] for w in shown]
