"""Hostile input to `e2gan distill`: exit 2, one line naming the field or file and the fix,
nothing written, never a traceback. Run in-process through `main()` (`--check` stops
after validation), plus the issue's two crashes as real subprocesses."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2gan_api.load import MAX_BYTES, SpecError, load_spec_b64, load_spec_bytes
from trainers.cli import main

ROOT = Path(__file__).resolve().parents[2]
GOOD = "concept: pencil-sketch\nprompt: turn the photo into a pencil sketch\n"


def run_main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def refused(argv: list[str], *needles: str) -> str:
    code, out, err = run_main(*argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("e2gan: error: "), (code, out, err)
    assert "Traceback" not in err and out == ""
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def write(tmp_path: Path, content: str | bytes, name: str = "spec.yaml") -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ('suspend: "true"\n', ["suspend", '"true" is a string', "false"]),
        ("export:\n  onnx: 'yes'\n", ["export.onnx", "boolean"]),
        ("resources:\n  workers: true\n", ["resources.workers", "true is a boolean", "integer"]),
        ("data:\n  keepFraction: 1.5\n", ["data.keepFraction: 1.5 is above 1", "0.4"]),
        ("training:\n  steps: 300.5\n", ["training.steps", "300"]),
        ("colour: blue\n", ["colour: unknown field"]),
        ("teachr: {}\n", ["teachr: unknown field; did you mean teacher?"]),
        ("concept: winter\n", ['"concept" given twice', "line 3", "keep one"]),
    ],
)
def test_loose_types_and_duplicate_keys_are_refused(tmp_path, content, needles):
    refused(["distill", write(tmp_path, GOOD + content), "--check"], *needles)


@pytest.mark.parametrize(
    ("prompt", "needle"),
    [('""', "prompt"), ('"   "', "prompt: is blank"), ('"\\0\\e"', "U+0000"), ('"sketch \\u202e"', "U+202E")],
)
def test_bad_prompts_are_refused(tmp_path, prompt, needle):
    refused(["distill", write(tmp_path, f"concept: pencil-sketch\nprompt: {prompt}\n"), "--check"], needle)


def test_manifest_fields_beside_spec_are_refused(tmp_path):
    doc = {"apiVersion": "e2gan.dev/v1alpha1", "kind": "ConceptAdapter", "metadata": {"name": "p"},
           "spec": yaml.safe_load(GOOD), "sepc": {}}
    refused(["distill", write(tmp_path, yaml.safe_dump(doc)), "--check"], "sepc: unknown top-level field")
    doc.pop("sepc")
    assert run_main("distill", write(tmp_path, yaml.safe_dump(doc)), "--check")[0] == 0
    refused(["distill", write(tmp_path, yaml.safe_dump({**doc, "apiVersion": "v1"})), "--check"], "apiVersion")


def test_caps_encoding_and_paths(tmp_path):
    refused(["distill", write(tmp_path, "a: " + "[" * 5000 + "]" * 5000), "--check"], "nested deeper than 64")
    refused(["distill", write(tmp_path, GOOD + "#" * MAX_BYTES), "--check"], "larger than 1 MiB")
    refused(["distill", write(tmp_path, b"concept: caf\xe9\nprompt: x\n"), "--check"], "not UTF-8", "0xe9 on line 1")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True)
    )
    refused(["distill", write(tmp_path, bomb), "--check"], "aliases")
    refused(["distill", write(tmp_path, "a: &a [*a]\n"), "--check"], "spec.yaml")
    refused(["distill", str(tmp_path), "--check"], "is a folder")
    refused(["distill", "/dev/zero", "--check"], "/dev/zero", "not a regular file")
    refused(["distill", str(tmp_path / "missing.yaml"), "--check"], "no such spec file")
    refused(["distill", write(tmp_path, "concept: [unclosed\n"), "--check"], "not valid YAML", "line")
    refused(["distill", write(tmp_path, "- a\n- b\n"), "--check"], "mapping")
    refused(["distill", write(tmp_path, "---\na: 1\n---\nb: 2\n"), "--check"], "not valid YAML")


def test_deep_and_broken_spec_json_b64():
    deep = base64.b64encode(("[" * 5000 + "]" * 5000).encode()).decode()
    refused(["distill", "--spec-json-b64", deep, "--check"], "--spec-json-b64", "nested deeper than 64")
    refused(["distill", "--spec-json-b64", "not base64!", "--check"], "--spec-json-b64: not base64")
    duplicate = base64.b64encode(b'{"concept": "a", "concept": "b", "prompt": "p"}').decode()
    refused(["distill", "--spec-json-b64", duplicate, "--check"], '"concept" given twice')
    nan = base64.b64encode(b'{"concept": "a", "prompt": "p", "data": {"keepFraction": NaN}}').decode()
    refused(["distill", "--spec-json-b64", nan, "--check"], "NaN")


def test_weights_and_source_paths_are_checked(tmp_path):
    refused(["distill", write(tmp_path, GOOD + "base:\n  weights: /etc/passwd\n"), "--check"],
            "base.weights: /etc/passwd is not a safetensors file", ".safetensors")
    refused(["distill", write(tmp_path, GOOD + f"base:\n  weights: {tmp_path}\n"), "--check"], "base.weights", "folder")
    refused(["distill", write(tmp_path, GOOD + "base:\n  weights: /dev/null\n"), "--check"], "base.weights", "device")
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(2, dtype=np.float32)}, str(tmp_path / "other.safetensors"))
    refused(["distill", write(tmp_path, GOOD + f"base:\n  weights: {tmp_path / 'other.safetensors'}\n"), "--check"],
            "not an e2gan generator")
    refused(["distill", write(tmp_path, GOOD + "data:\n  source: /dev/null\n"), "--check"], "data.source", "device")
    refused(["distill", write(tmp_path, GOOD + "data:\n  source: builtin://base-mixx\n"), "--check"], "data.source",
            "builtin://base-mix")
    refused(["distill", write(tmp_path, GOOD), "--check", "--work-dir", "/etc/passwd"], "--work-dir")
    refused(["distill", write(tmp_path, GOOD), "--check", "--inception", str(tmp_path)], "--inception", "folder")


def test_nothing_is_written_on_refusal(tmp_path):
    spec = write(tmp_path, GOOD + "base:\n  weights: /etc/passwd\n")
    before = listing(tmp_path)
    refused(["distill", spec, "--catalog", str(tmp_path / "catalog"), "--work-dir", str(tmp_path / "work")])
    assert listing(tmp_path) == before


def test_stdin_is_capped_and_read_without_a_temp_file(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'suspend: "no"\n' + GOOD.encode())))
    refused(["distill", "-", "--check"], "suspend")


def test_help_shows_the_readme_commands():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["distill", "--help"])
    readme = (ROOT / "README.md").read_text()
    for command in ("e2gan distill examples/embedded/pencil-sketch.yaml --catalog ./adapter-catalog",
                    "e2gan catalog pull pencil-sketch ./adapter --catalog ./adapter-catalog"):
        assert command in out.getvalue() and command in readme


@pytest.mark.parametrize(
    "content",
    ["a: " + "[" * 5000 + "]" * 5000 + "\n", "concept: caf\xe9\n"],
    ids=["5000 levels", "latin-1"],
)
def test_the_reported_crashes_exit_2_in_a_real_process(tmp_path, content):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(content.encode("latin-1"))
    result = subprocess.run(
        [sys.executable, "-m", "trainers.cli", "distill", str(spec), "--catalog", str(tmp_path / "c")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "operator")])},
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "c").exists()


# --- fuzzing: random documents and bytes never end in an uncaught exception -------------------

KEYS = ["concept", "prompt", "base", "weights", "name", "teacher", "kind", "model", "data", "keepFraction",
        "heldOut", "pairs", "search", "ranks", "trials", "parallelTrials", "training", "steps", "resolution",
        "resources", "workers", "memoryPerWorker", "export", "onnx", "catalog", "uri", "suspend", "spec",
        "apiVersion", "kind", "metadata", "deletionPolicy", "<<", ""]
SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True)
           | st.text(max_size=20) | st.sampled_from(["pencil-sketch", "ConceptAdapter", "e2gan.dev/v1alpha1", "1.5"]))
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner,
                                                                max_size=5),
    max_leaves=30,
)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def one_line_or_success(load) -> None:
    try:
        load()
    except SpecError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message, repr(message)


@FUZZ
@given(DOCS)
def test_fuzz_documents(document):
    text = yaml.safe_dump(document)
    one_line_or_success(lambda: load_spec_bytes(text.encode()))
    encoded = base64.b64encode(json.dumps(document).encode()).decode()
    one_line_or_success(lambda: load_spec_b64(encoded))
    manifest = {"apiVersion": "e2gan.dev/v1alpha1", "kind": "ConceptAdapter", "spec": document}
    one_line_or_success(lambda: load_spec_bytes(yaml.safe_dump(manifest).encode()))


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_fuzz_bytes(data):
    one_line_or_success(lambda: load_spec_bytes(data))
    one_line_or_success(lambda: load_spec_b64(base64.b64encode(data).decode()))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(DOCS)
def test_fuzz_the_command_line(tmp_path, document):
    code, _, err = run_main("distill", write(tmp_path, yaml.safe_dump(document)), "--check")
    assert code == 0 or (code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err), err


def test_base_overrides_and_init_are_refused_in_one_line(tmp_path):
    """`e2gan base` flags are held to the spec's bounds, and --init to the spec's shape, before Ray starts."""
    from trainers.models.discriminator import PatchDiscriminator
    from trainers.models.generator import E2GANGenerator, GeneratorConfig
    from trainers.models.weights import discriminator_path, save_discriminator, save_generator

    out = tmp_path / "out" / "base.safetensors"
    common = ["base", "--out", str(out), "--storage", str(tmp_path / "runs")]
    refused([*common, "--steps", "-3"], "--steps", "greater than or equal to 1", "training.steps")
    refused([*common, "--steps", "2000000"], "--steps", "less than or equal to", "training.steps")
    refused([*common, "--minutes", "nan"], "--minutes", "finite")
    refused([*common, "--minutes", "1e9"], "--minutes", "training.max_seconds")
    refused([*common, "--checkpoint-every", "0"], "--checkpoint-every", "1 or more")
    refused([*common, "--init", "/etc/passwd"], "--init", ".safetensors")
    refused([*common, "--init", str(tmp_path / "missing.safetensors")], "--init", "no such base model file")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(b"\x10" * 100)
    refused([*common, "--init", str(truncated)], "--init", "not a readable safetensors file")
    narrow = save_generator(E2GANGenerator(GeneratorConfig(width=8)), tmp_path / "narrow.safetensors",
                            extra={"resolution": "64"})
    refused([*common, "--init", str(narrow)], "--init", "width 8", "width: 8")
    other_res = save_generator(E2GANGenerator(GeneratorConfig(width=32)), tmp_path / "res32.safetensors",
                               extra={"resolution": "32"})
    refused([*common, "--init", str(other_res)], "--init", "32 px", "training.resolution")
    fits = save_generator(E2GANGenerator(GeneratorConfig(width=32)), tmp_path / "fits.safetensors",
                          extra={"resolution": "64"})
    save_discriminator(PatchDiscriminator(ndf=8, n_layers=2), discriminator_path(fits))
    refused([*common, "--init", str(fits)], "--init", "discriminator", "move it aside")
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, needle", [
    (["base", "--steps", "1e3"], "--steps: invalid int value: '1e3'"),
    (["base", "--minutes", "-inf"], "--minutes: expected one argument"),
    (["distill", "--bogus"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice"),
])
def test_argparse_usage_errors_are_one_line(tmp_path, argv, needle):
    result = subprocess.run([sys.executable, "-m", "trainers.cli", *argv], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and needle in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []
