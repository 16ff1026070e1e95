"""Where the job runs: an existing Ray cluster (RayJob) or a local one on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from e2gan_api.spec import ConceptAdapterSpec, ResourcesSpec

BUILTIN_BASE = "base-e2gan-w32-64px.safetensors"


def builtin_base_path() -> Path:
    """The base shipped with the package (made by `e2gan base`, see the README)."""
    path = Path(str(resources.files("trainers") / "assets" / BUILTIN_BASE))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the built-in base is missing; rebuild it with `e2gan base --out {path}`")
    return path


def threads_per_trial(spec: ConceptAdapterSpec) -> float:
    """CPUs each trial and worker reserves: the worker's CPUs split among parallel trials."""
    cpus = spec.resources.cpus_per_worker * spec.resources.workers
    return max(1.0, float(cpus // max(1, spec.search.parallel_trials)))


def gpus_per_trial(spec: ConceptAdapterSpec) -> float:
    """GPUs each search trial reserves: the spec's, else a quarter GPU when the job has GPUs.

    Fractions let several trials share one GPU, so parallelTrials is not capped by the
    number of GPUs; a CPU-only job reserves none.
    """
    if spec.resources.gpus_per_worker == 0:
        return 0.0
    return float(spec.search.gpus_per_trial) if spec.search.gpus_per_trial is not None else 0.25


def cpus_per_train_worker(spec: ConceptAdapterSpec) -> float:
    """CPUs a fine-tune worker reserves: the spec's, capped by this machine on a local cluster."""
    cpus = float(spec.resources.cpus_per_worker)
    return cpus if os.environ.get("RAY_ADDRESS") else min(cpus, float(os.cpu_count() or 1))


def prepare_ray_environment() -> None:
    """Settings Ray reads when it is first imported; call before anything imports ray.

    For a local cluster: every listener on 127.0.0.1 (by default Ray also listens on the
    machine's address) and no auth token file in $HOME. Inside a RayJob (RAY_ADDRESS set)
    the cluster's own settings stand.
    """
    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "120")
    if not os.environ.get("RAY_ADDRESS"):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@contextlib.contextmanager
def ray_session(res: ResourcesSpec | None = None) -> Iterator[None]:
    """Join the cluster in RAY_ADDRESS (inside a RayJob) or start a local one, loopback only."""
    prepare_ray_environment()
    import ray

    if ray.is_initialized():
        yield
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=True)
    else:
        cpus = os.cpu_count() or 2
        ray.init(
            num_cpus=cpus,  # GPUs are detected by Ray
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            object_store_memory=int(os.environ.get("E2GAN_RAY_OBJECT_STORE_BYTES", 512 * 1024**2)),
            log_to_driver=True,
            logging_level="WARNING",
        )
    try:
        yield
    finally:
        ray.shutdown()
