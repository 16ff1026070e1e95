"""One local Ray for the session (loopback only), shared with the other trainer tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("E2GAN_RAY_OBJECT_STORE_BYTES", str(256 * 1024**2))


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """The pipeline's own ray_session (or the one another test module already started)."""
    from trainers.pipeline.resources import ray_session

    with ray_session():
        yield
