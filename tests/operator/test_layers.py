"""The operator image stays light: operator/ never imports torch, diffusers, peft or ray, not even lazily."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("torch", "diffusers", "peft", "ray", "transformers", "trainers")


def test_no_forbidden_import_statement_anywhere_in_operator() -> None:
    offenders = []
    for path in (REPO / "operator").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__"
            ):
                names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            offenders += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
    assert not (REPO / "operator" / "__init__.py").exists(), "operator/ must not be a package (stdlib operator)"


def test_running_the_operator_module_loads_none_of_them(tmp_path: Path) -> None:
    code = (
        "import sys, json, e2gan_operator.main, e2gan_operator.handlers;"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO)]),
           "E2GAN_METRICS_PORT": "0", "E2GAN_DEFAULTS_FILE": str(tmp_path / "none.yaml")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=tmp_path)
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert loaded & set(FORBIDDEN) == set()
    assert {"kopf", "e2gan_api", "catalog"} <= loaded
