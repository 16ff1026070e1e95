"""catalog/ runs in the operator image: no torch, no kubernetes/kopf, pyarrow only when asked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_catalog_imports_no_heavy_or_cluster_packages() -> None:
    code = (
        "import sys, catalog, catalog.cli, catalog.core, catalog.local, catalog.s3, catalog.ray_storage; "
        "print(sorted(m for m in ('torch', 'kubernetes', 'kopf', 'pyarrow', 'ray', 'diffusers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
