"""One local Ray for the session (loopback only), tiny pipelines, and the catalog's S3 servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# Before `import ray` anywhere: keeps every Ray listener on 127.0.0.1 (environment.md).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("E2GAN_RAY_OBJECT_STORE_BYTES", str(256 * 1024**2))

from tests.catalog.conftest import moto_s3  # noqa: E402, F401 - session moto server with auth on
from trainers.teachers.tiny import build_tiny_pipeline  # noqa: E402


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """The pipeline's own ray_session: a 2-CPU local cluster (or the one already running)."""
    from trainers.pipeline.resources import ray_session

    with ray_session():
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False
        yield


@contextmanager
def all_actors_up() -> Iterator[None]:
    """Dispatch only once every pool actor is up: with chunks this small, the first actor would
    otherwise finish them all before the second has loaded its model. It also makes the writer
    pool start after the teachers' (slower), so only runs that need it use it."""
    from ray.data import DataContext

    context = DataContext.get_current()
    before = context.wait_for_min_actors_s
    context.wait_for_min_actors_s = 300
    try:
        yield
    finally:
        context.wait_for_min_actors_s = before


@pytest.fixture(scope="session")
def tiny_pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny random-weight pipeline folder per diffusion teacher kind."""
    root = tmp_path_factory.mktemp("tiny-pipelines")
    return {kind: build_tiny_pipeline(kind, root / kind) for kind in ("instruct-pix2pix", "sdedit")}
