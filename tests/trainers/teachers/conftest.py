from __future__ import annotations

from pathlib import Path

import pytest

from trainers.teachers.tiny import build_tiny_pipeline


@pytest.fixture(scope="session")
def tiny_pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny random-weight pipeline folder per diffusion teacher kind."""
    root = tmp_path_factory.mktemp("tiny-pipelines")
    return {kind: build_tiny_pipeline(kind, root / kind) for kind in ("instruct-pix2pix", "sdedit")}
