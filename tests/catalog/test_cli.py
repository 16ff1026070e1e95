"""`e2gan catalog …` / `python -m catalog …` on a local folder and on S3."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from catalog import open_catalog
from catalog.cli import add_parser, main
from catalog.samples import SAMPLE_BASE_DIGEST as BASE
from catalog.samples import make_adapter
from tests.catalog.conftest import S3Server

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("E2GAN_", "AWS_"))}
    return subprocess.run(
        [sys.executable, "-m", "catalog", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**base, "PYTHONPATH": str(ROOT), **(env or {})},
        timeout=60,
    )


@pytest.fixture
def published(tmp_path: Path) -> str:
    uri = str(tmp_path / "catalog")
    cat = open_catalog(uri)
    for seed in (1, 2):
        make_adapter(tmp_path / f"a{seed}", seed=seed)
        cat.publish(tmp_path / f"a{seed}", base_digest=BASE, concept="pencil-sketch")
    return uri


def test_ls_show_pull_verify_rm_gc(
    published: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def cli(*args: str) -> tuple[int, str, str]:
        code = main(["--catalog", published, *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = cli("ls")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["CONCEPT", "VERSION", "BASE", "SIZE", "CREATED", "DIGEST"]
    assert [line.split()[:2] for line in lines[1:]] == [["pencil-sketch", "v1"], ["pencil-sketch", "v2"]]
    code, out, _ = cli("ls", "--json")
    assert [e["version"] for e in json.loads(out)] == ["v1", "v2"]

    code, out, _ = cli("show", "pencil-sketch", "--version", "v1")
    assert code == 0 and json.loads(out)["version"] == "v1"

    code, out, _ = cli("pull", "pencil-sketch", str(tmp_path / "dest"))
    assert code == 0 and (tmp_path / "dest" / "adapter_model.safetensors").is_file()
    assert json.loads((tmp_path / "dest" / "manifest.json").read_text())["metrics"] == {"psnr": 22.0}

    code, out, _ = cli("verify")
    assert code == 0 and out.strip().endswith("ok")

    code, _, err = cli("rm", "pencil-sketch")
    assert code == 2 and err.count("\n") == 1 and "--all" in err
    code, out, _ = cli("rm", "pencil-sketch", "--version", "v1")
    assert code == 0 and out.strip() == "removed pencil-sketch v1"
    code, _, err = cli("rm", "pencil-sketch", "--version", "v1")
    assert code == 2 and "no published adapter pencil-sketch v1" in err

    code, out, _ = cli("gc", "--keep", "1")
    assert code == 0 and out.startswith("pruned 0 versions")

    # Damage at rest: verify exits 1 and names the file.
    weights = Path(published) / "adapters" / BASE[:16] / "pencil-sketch" / "v2" / "model.onnx"
    weights.write_bytes(b"x" + weights.read_bytes()[1:])
    code, out, _ = cli("verify")
    assert code == 1 and "BAD pencil-sketch v2 model.onnx: sha256 mismatch" in out
    code, _, err = cli("pull", "pencil-sketch", str(tmp_path / "dest2"))
    assert code == 2 and "does not match its sha256" in err and not (tmp_path / "dest2").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--catalog", "http://x/y", "ls"], "unsupported scheme"),
        (["show", "missing"], "no published adapter missing"),
        (["frobnicate"], "invalid choice"),
        (["gc", "--keep", "0"], "--keep must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_wires_into_a_parent_cli(published: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="e2gan")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["catalog", "--catalog", published, "ls", "pencil-sketch"])
    assert args.handler(args) == 0
    assert "pencil-sketch" in capsys.readouterr().out


def test_python_m_catalog_on_s3(moto_s3: S3Server, tmp_path: Path) -> None:
    bucket = moto_s3.new_bucket()
    make_adapter(tmp_path / "a")
    env = moto_s3.env()
    from catalog.settings import S3Settings

    open_catalog(f"s3://{bucket}/team", settings=S3Settings.from_env(env)).publish(
        tmp_path / "a", base_digest=BASE, concept="pencil-sketch"
    )
    listed = _run("--catalog", f"s3://{bucket}/team", "ls", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["uri"] == f"s3://{bucket}/team/adapters/{BASE[:16]}/pencil-sketch/v1"
    verified = _run("--catalog", f"s3://{bucket}/team", "verify", env=env)
    assert verified.returncode == 0 and "1 versions, 5 files" in verified.stdout
    refused = _run(
        "--catalog", f"s3://{bucket}/team", "ls", env={**env, "E2GAN_S3_SECRET_KEY": "wrong-secret-xyz"}
    )
    assert (
        refused.returncode == 2 and refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1
    )
    assert "access refused" in refused.stderr
    for text in (listed.stdout, listed.stderr, refused.stderr):
        assert moto_s3.secret_key not in text and "wrong-secret-xyz" not in text


def test_catalog_option_works_after_the_action_too(published: str) -> None:
    before = main(["--catalog", published, "ls", "--json"])
    after = main(["ls", "--json", "--catalog", published])
    assert before == after == 0
    result = _run("ls", "--json", "--catalog", published)
    assert result.returncode == 0 and json.loads(result.stdout), result.stderr


def test_init_push_pull_by_digest_and_missing_bucket(
    moto_s3: S3Server, tmp_path: Path, s3_env, capsys: pytest.CaptureFixture[str]
) -> None:
    s3_env(moto_s3)

    def cli(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    bucket = f"t-new-{os.getpid()}-{len(moto_s3.buckets)}"
    uri = f"s3://{bucket}/team"
    # Only init creates a bucket: any other command on a missing one is one line, exit 2.
    for args in (["ls"], ["gc"], ["rm", "pencil-sketch", "--all"], ["push", str(tmp_path)]):
        code, _, err = cli("--catalog", uri, *args)
        assert code == 2 and err.count("\n") == 1 and "does not exist" in err and "catalog init" in err, err
    assert bucket not in [b.name for b in moto_s3.client().list_buckets()]
    code, out, _ = cli("--catalog", uri, "init")
    assert code == 0 and "guard conditional" in out
    assert json.loads(moto_s3.client().get_object(bucket, "team/catalog.json").read())["guard"] == "conditional"

    make_adapter(tmp_path / "a", seed=1)
    code, out, err = cli("--catalog", uri, "push", str(tmp_path / "a"))
    assert code == 0 and out.startswith("PUBLISHED pencil-sketch v1 "), err
    digest = out.split()[-1]
    code, out, _ = cli("--catalog", uri, "pull", f"pencil-sketch@{digest}", str(tmp_path / "pulled"))
    assert code == 0 and (tmp_path / "pulled" / "adapter_model.safetensors").is_file()
    code, out, _ = cli("--catalog", uri, "pull", f"{BASE[:16]}/pencil-sketch/v1", str(tmp_path / "by-id"))
    assert code == 0 and (tmp_path / "by-id" / "manifest.json").is_file()
    for address, message in (
        (f"pencil-sketch@sha256:{'0' * 64}", "no version of pencil-sketch has manifest digest"),
        ("pencil-sketch@sha256:zz", "does not parse: use sha256"),
    ):
        code, _, err = cli("--catalog", uri, "pull", address, str(tmp_path / "refused"))
        assert code == 2 and message in err and err.count("\n") == 1
        assert not (tmp_path / "refused").exists()
    code, _, err = cli("--catalog", uri, "show", "pencil-sketch", "--version", "latest")
    assert code == 2 and "version 'latest' does not parse" in err

    # push refuses, in one line and without writing, a manifest listing a missing file.
    make_adapter(tmp_path / "b", seed=2)
    (tmp_path / "b" / "model.onnx").unlink()
    before = moto_s3.object_names(bucket)
    code, _, err = cli("--catalog", uri, "push", str(tmp_path / "b"))
    assert code == 2 and "model.onnx is listed in manifest.json but missing" in err and err.count("\n") == 1
    assert moto_s3.object_names(bucket) == before
