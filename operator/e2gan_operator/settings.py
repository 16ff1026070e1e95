"""Operator settings: environment variables plus the mounted defaults file, composed into `OperatorSettings`.

Small dataclasses in the kopf style: every field says its unit, its default and why. Nothing
here talks to the cluster; `OperatorSettings.from_env()` is called once at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml

from e2gan_operator.pods import PodSettings, PodSettingsError, parse_pods

T = TypeVar("T", int, float)

DEFAULTS_FILE = "/etc/e2gan/defaults.yaml"


class SettingsError(ValueError):
    """The environment or the defaults file is unusable; the message names the key."""


@dataclass(frozen=True)
class PodDefaults:
    """Cluster-wide defaults for one kind of Ray pod (head or worker)."""

    resources: dict[str, Any] = field(default_factory=dict)
    """Container `resources` (requests/limits). For workers, the ConceptAdapter's
    `resources` (CPUs, memory, GPUs) override the matching keys. Default: none."""

    node_selector: dict[str, str] = field(default_factory=dict)
    """`nodeSelector` of the pod, e.g. a GPU node pool for workers. Default: none."""

    tolerations: list[dict[str, Any]] = field(default_factory=list)
    """`tolerations` of the pod, e.g. the taint of GPU nodes. Default: none."""

    labels: dict[str, str] = field(default_factory=dict)
    """Extra pod labels (cost attribution, network policies). Default: none."""

    annotations: dict[str, str] = field(default_factory=dict)
    """Extra pod annotations (e.g. to keep cluster autoscalers from evicting). Default: none."""


@dataclass(frozen=True)
class CatalogConnection:
    """How Ray pods reach the catalog store; injected into their environment as E2GAN_S3_*."""

    endpoint: str | None = None
    """S3 endpoint host:port (MinIO service). None: the trainer image's default (AWS)."""

    secure: bool = True
    """Use HTTPS to the endpoint. Default true; false only for in-cluster MinIO without TLS."""

    region: str = "us-east-1"
    """S3 region; always passed because MinIO-compatible servers need it for signing."""

    credentials_secret: str | None = None
    """Secret (same namespace as the resource) with keys `accesskey` and `secretkey`, injected
    as E2GAN_S3_ACCESS_KEY/E2GAN_S3_SECRET_KEY. None: no credentials are injected."""


@dataclass(frozen=True)
class JobDefaults:
    """Lifetime limits written into every RayJob."""

    ttl_seconds_after_finished: int = 3600
    """Seconds KubeRay keeps the Ray cluster after the job ends (logs stay readable). Default 1 h."""

    active_deadline_seconds: int | None = 7 * 24 * 3600
    """Hard wall-clock limit of one RayJob in seconds; KubeRay fails it after. Default 7 days."""

    backoff_limit: int = 0
    """Retries with a fresh Ray cluster after a failure. Default 0: a failure is reported at once
    (the trainer retries its own trials; a broken spec should not burn GPU hours)."""

    pre_running_deadline_seconds: int | None = 3600
    """Seconds a RayJob may take to reach Running (scheduling, image pulls), from its
    status.startTime, before KubeRay (1.6+) fails it. Default 1 h, so an unschedulable job does not
    wait out the 7-day active deadline; 0 leaves the field out (no such deadline)."""

    deletion_strategy: str = "rules"
    """rules: KubeRay deletionRules (workers freed at once on failure, the head kept
    ttlSecondsAfterFinished for its logs; needs KubeRay's RayJobDeletionPolicy feature gate);
    shutdown: the older shutdownAfterJobFinishes + ttlSecondsAfterFinished."""


@dataclass(frozen=True)
class CatalogPolicy:
    """Which catalogs resources may publish to, and the one they get when the spec names none."""

    default: str | None = None
    """The catalog of resources whose spec leaves catalog.uri unset (Helm value `defaultCatalog`,
    env E2GAN_DEFAULT_CATALOG). None: such resources stall InvalidSpec until one is configured."""

    allowed: dict[str, list[str]] = field(default_factory=dict)
    """Per namespace ("*" for every other namespace), the s3://bucket[/prefix] URIs its catalogs must
    lie under. A namespace without an entry (and no "*"): any s3:// URI."""

    local_roots: list[str] = field(default_factory=list)
    """Absolute folders accepted as catalogs besides s3:// (single-node development clusters and
    tests only: env E2GAN_LOCAL_CATALOG_ROOTS, separated by ':'). Default none: s3:// only."""

    def prefixes(self, namespace: str) -> list[str] | None:
        """The allowed URI prefixes of `namespace`, or None when any s3:// URI is allowed."""
        if namespace in self.allowed:
            return self.allowed[namespace]
        return self.allowed.get("*")


@dataclass(frozen=True)
class KueueDefaults:
    """Kueue integration: the queue a RayJob goes to when its resource names none."""

    default_queues: dict[str, str] = field(default_factory=dict)
    """LocalQueue per namespace ("*" for every other namespace) for resources without the
    `kueue.x-k8s.io/queue-name` label. Default: none (such RayJobs are not queued)."""

    def queue(self, namespace: str) -> str | None:
        return self.default_queues.get(namespace) or self.default_queues.get("*") or None


@dataclass(frozen=True)
class ClusterDefaults:
    """The mounted defaults file (a ConfigMap): what every RayJob gets unless the spec says otherwise."""

    service_account_name: str = "e2gan-trainer"
    """Service account of the Ray pods (catalog access via workload identity, image pulls);
    empty: the namespace's default service account."""

    ray_version: str = "2.60.0"
    """`rayVersion` of the RayCluster; must match the Ray in the trainer image."""

    gpu_resource_name: str = "nvidia.com/gpu"
    """Extended resource requested per GPU (nvidia.com/gpu, amd.com/gpu, a MIG profile...)."""

    image_pull_policy: str = "IfNotPresent"
    """`imagePullPolicy` of the Ray containers."""

    image_pull_secrets: list[str] = field(default_factory=list)
    """Names of Secrets used to pull the trainer image. Default: none."""

    head: PodDefaults = field(default_factory=lambda: PodDefaults(resources={"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "8Gi"}}))
    """The Ray head pod (runs the driver: trainer pipeline, progress, publishing)."""

    worker: PodDefaults = field(default_factory=PodDefaults)
    """The Ray worker pods (teacher inference, rank-search trials, fine-tune)."""

    catalog: CatalogConnection = field(default_factory=CatalogConnection)
    """How the Ray pods reach the catalog store."""

    job: JobDefaults = field(default_factory=JobDefaults)
    """RayJob lifetime limits."""

    pods: PodSettings = field(default_factory=PodSettings)
    """Security, volumes, env, CA bundle, submitter and profiles of the Ray pods (pods.py)."""

    catalog_policy: CatalogPolicy = field(default_factory=CatalogPolicy)
    """Allowed catalogs and the default one (file key `catalogPolicy`)."""

    kueue: KueueDefaults = field(default_factory=KueueDefaults)
    """Kueue defaults (file key `kueue`)."""


@dataclass(frozen=True)
class OperatorSettings:
    """Everything the operator is configured with (environment plus defaults file)."""

    trainer_image: str = "ghcr.io/e2gan/trainer:latest"
    """E2GAN_TRAINER_IMAGE: image of the Ray head and workers; it has `e2gan` and Ray installed."""

    defaults_file: Path = Path(DEFAULTS_FILE)
    """E2GAN_DEFAULTS_FILE: the mounted defaults ConfigMap; a missing file means built-in defaults."""

    cluster: ClusterDefaults = field(default_factory=ClusterDefaults)
    """Parsed content of the defaults file."""

    metrics_port: int = 9090
    """E2GAN_METRICS_PORT: Prometheus metrics port; 0 disables the endpoint."""

    metrics_host: str = "0.0.0.0"
    """E2GAN_METRICS_HOST: address the metrics endpoint listens on (0.0.0.0 in a pod)."""

    log_format: str = "json"
    """E2GAN_LOG_FORMAT: json (one object per line, for log pipelines) or text."""

    poll_seconds: float = 10.0
    """E2GAN_POLL_SECONDS: how often progress of running jobs is read from the catalog store, and
    how often waiting resources (base not Ready yet) are looked at again."""

    catalog_check_seconds: float = 3600.0
    """E2GAN_CATALOG_CHECK_SECONDS: how often Ready resources check that their version is still
    in the catalog (so Ready keeps meaning published). Each check reads the resource's series
    (a few store requests); hourly keeps 1 000 Ready resources under 1 S3 request/s. Only an
    administrator's `catalog delete`/`gc` can remove an owned version, and gc spares versions in use."""

    poll_jitter: float = 0.2
    """E2GAN_POLL_JITTER: each progress poll waits poll_seconds times a random factor in
    [1 - jitter, 1 + jitter], and the first one a random part of poll_seconds, so resources resumed
    together after a restart do not poll together."""

    base_follow_per_minute: float = 6.0
    """E2GAN_BASE_FOLLOW_PER_MINUTE: at most this many ConceptAdapters with `base.follow: latest`
    start retraining per minute after their ConceptBase publishes; the rest wait their turn."""

    delete_retries: int = 10
    """E2GAN_DELETE_RETRIES: attempts to remove versions on deletion (deletionPolicy Delete)
    before the finalizer is released anyway with a warning event, so a lost store never pins a
    resource forever."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        env = os.environ if env is None else env
        defaults_file = Path(env.get("E2GAN_DEFAULTS_FILE", DEFAULTS_FILE))
        log_format = env.get("E2GAN_LOG_FORMAT", "json").lower()
        if log_format not in ("json", "text"):
            raise SettingsError(f"E2GAN_LOG_FORMAT: expected json or text, got {log_format!r}")
        return cls(
            trainer_image=env.get("E2GAN_TRAINER_IMAGE", cls.trainer_image),
            defaults_file=defaults_file,
            cluster=load_defaults(defaults_file),
            metrics_port=_int(env, "E2GAN_METRICS_PORT", cls.metrics_port, 0, 65535),
            metrics_host=env.get("E2GAN_METRICS_HOST", cls.metrics_host),
            log_format=log_format,
            poll_seconds=_float(env, "E2GAN_POLL_SECONDS", cls.poll_seconds),
            catalog_check_seconds=_float(env, "E2GAN_CATALOG_CHECK_SECONDS", cls.catalog_check_seconds),
            delete_retries=_int(env, "E2GAN_DELETE_RETRIES", cls.delete_retries, 0, 1000),
            poll_jitter=_fraction(env, "E2GAN_POLL_JITTER", cls.poll_jitter),
            base_follow_per_minute=_rate(env, "E2GAN_BASE_FOLLOW_PER_MINUTE", cls.base_follow_per_minute),
        ).with_catalog_env(env)

    def with_catalog_env(self, env: Mapping[str, str]) -> OperatorSettings:
        """E2GAN_DEFAULT_CATALOG and E2GAN_LOCAL_CATALOG_ROOTS override the defaults file."""
        policy = self.cluster.catalog_policy
        default = env.get("E2GAN_DEFAULT_CATALOG") or policy.default
        roots = [r for r in env.get("E2GAN_LOCAL_CATALOG_ROOTS", "").split(":") if r] or policy.local_roots
        for root in roots:
            if not root.startswith("/") or "/../" in f"{root}/":
                raise SettingsError(f"E2GAN_LOCAL_CATALOG_ROOTS: {root!r} must be an absolute folder")
        if default is not None:
            _check_catalog("E2GAN_DEFAULT_CATALOG", default)
        new_policy = replace(policy, default=default, local_roots=roots)
        return replace(self, cluster=replace(self.cluster, catalog_policy=new_policy))


def _check_catalog(where: str, uri: str) -> None:
    if not (uri.startswith("s3://") or uri.startswith("/")) or "/../" in f"{uri}/":
        raise SettingsError(f"{where}: {uri!r} must be an s3://bucket/prefix URI without '..' segments")


def _number(
    env: Mapping[str, str], key: str, default: T, parse: Callable[[str], T], expected: str,
    within: Callable[[T], bool], bounds: str,
) -> T:
    """The variable `key` parsed and bounded, or `default` when unset or empty; one-line refusals."""
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise SettingsError(f"{key}: expected {expected}, got {raw!r}") from None
    if not within(value):
        raise SettingsError(f"{key}: {value} is outside {bounds}")
    return value


def _fraction(env: Mapping[str, str], key: str, default: float) -> float:
    return _number(env, key, default, float, "a number between 0 and 1", lambda v: 0 <= v < 1, "0..1")


def _rate(env: Mapping[str, str], key: str, default: float) -> float:
    return _number(env, key, default, float, "a rate per minute", lambda v: 0.01 <= v <= 100_000,
                   "0.01..100000 per minute")


def _int(env: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    return _number(env, key, default, int, "an integer", lambda v: low <= v <= high, f"{low}..{high}")


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    return _number(env, key, default, float, "seconds", lambda v: 0.05 <= v <= 86400, "0.05..86400 seconds")


# camelCase key in the file → (field name, parser); unknown keys are refused so typos surface.
def _mapping(where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SettingsError(f"{where}: expected a mapping")
    return value


def _str_map(where: str, value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in _mapping(where, value).items()}


def _list(where: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SettingsError(f"{where}: expected a list")
    return value


def _check_keys(where: str, data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SettingsError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")


def _pod(where: str, value: Any, base: PodDefaults) -> PodDefaults:
    data = _mapping(where, value)
    _check_keys(where, data, {"resources", "nodeSelector", "tolerations", "labels", "annotations"})
    return PodDefaults(
        resources=_mapping(f"{where}.resources", data["resources"]) if "resources" in data else base.resources,
        node_selector=_str_map(f"{where}.nodeSelector", data.get("nodeSelector")),
        tolerations=[_mapping(f"{where}.tolerations", t) for t in _list(f"{where}.tolerations", data.get("tolerations"))],
        labels=_str_map(f"{where}.labels", data.get("labels")),
        annotations=_str_map(f"{where}.annotations", data.get("annotations")),
    )


def _secret_name(where: str, value: Any) -> str:
    """A Secret name, given as a string or as a LocalObjectReference ({name: ...})."""
    if isinstance(value, dict):
        value = value.get("name")
    if not isinstance(value, str) or not value:
        raise SettingsError(f"{where}: expected Secret names")
    return value


def _optional_int(where: str, value: Any, default: int | None, low: int) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SettingsError(f"{where}: expected an integer ≥ {low}, got {value!r}")
    return value


def parse_defaults(data: Any, where: str = "defaults") -> ClusterDefaults:
    """ClusterDefaults from the parsed defaults file (camelCase keys, as in Kubernetes manifests)."""
    data = _mapping(where, data)
    base = ClusterDefaults()
    _check_keys(
        where,
        data,
        {"serviceAccountName", "rayVersion", "gpuResourceName", "imagePullPolicy", "imagePullSecrets",
         "head", "worker", "catalog", "job", "pods", "catalogPolicy", "kueue"},
    )
    policy = _mapping(f"{where}.catalogPolicy", data.get("catalogPolicy"))
    _check_keys(f"{where}.catalogPolicy", policy, {"default", "allowed", "localRoots"})
    allowed: dict[str, list[str]] = {}
    for ns, prefixes in _mapping(f"{where}.catalogPolicy.allowed", policy.get("allowed")).items():
        items = [str(p) for p in _list(f"{where}.catalogPolicy.allowed.{ns}", prefixes)]
        for prefix in items:
            if not prefix.startswith("s3://"):
                raise SettingsError(f"{where}.catalogPolicy.allowed.{ns}: {prefix!r} is not an s3:// URI")
            _check_catalog(f"{where}.catalogPolicy.allowed.{ns}", prefix)
        allowed[str(ns)] = items
    if policy.get("default"):
        _check_catalog(f"{where}.catalogPolicy.default", str(policy["default"]))
    kueue = _mapping(f"{where}.kueue", data.get("kueue"))
    _check_keys(f"{where}.kueue", kueue, {"defaultQueues"})
    catalog = _mapping(f"{where}.catalog", data.get("catalog"))
    _check_keys(f"{where}.catalog", catalog, {"endpoint", "secure", "region", "credentialsSecret"})
    job = _mapping(f"{where}.job", data.get("job"))
    _check_keys(f"{where}.job", job, {"ttlSecondsAfterFinished", "activeDeadlineSeconds", "backoffLimit",
                                      "preRunningDeadlineSeconds", "deletionStrategy"})
    strategy = job.get("deletionStrategy", JobDefaults.deletion_strategy)
    if strategy not in ("rules", "shutdown"):
        raise SettingsError(f"{where}.job.deletionStrategy: expected rules or shutdown, got {strategy!r}")
    try:
        pods = parse_pods(data.get("pods"), f"{where}.pods")
    except PodSettingsError as exc:
        raise SettingsError(str(exc)) from None
    secure = catalog.get("secure", True)
    if not isinstance(secure, bool):
        raise SettingsError(f"{where}.catalog.secure: expected true or false")
    jd = JobDefaults()
    return ClusterDefaults(
        service_account_name=str(data.get("serviceAccountName", base.service_account_name)),
        ray_version=str(data.get("rayVersion", base.ray_version)),
        gpu_resource_name=str(data.get("gpuResourceName", base.gpu_resource_name)),
        image_pull_policy=str(data.get("imagePullPolicy", base.image_pull_policy)),
        image_pull_secrets=[_secret_name(f"{where}.imagePullSecrets", s) for s in _list(f"{where}.imagePullSecrets", data.get("imagePullSecrets"))],
        head=_pod(f"{where}.head", data.get("head"), base.head),
        worker=_pod(f"{where}.worker", data.get("worker"), base.worker),
        catalog=CatalogConnection(
            endpoint=str(catalog["endpoint"]) if catalog.get("endpoint") else None,
            secure=secure,
            region=str(catalog.get("region", "us-east-1")),
            credentials_secret=str(catalog["credentialsSecret"]) if catalog.get("credentialsSecret") else None,
        ),
        job=JobDefaults(
            ttl_seconds_after_finished=_optional_int(
                f"{where}.job.ttlSecondsAfterFinished", job.get("ttlSecondsAfterFinished"), jd.ttl_seconds_after_finished, 0
            ),
            active_deadline_seconds=_optional_int(
                f"{where}.job.activeDeadlineSeconds", job.get("activeDeadlineSeconds"), jd.active_deadline_seconds, 1
            ),
            backoff_limit=_optional_int(f"{where}.job.backoffLimit", job.get("backoffLimit"), jd.backoff_limit, 0),
            pre_running_deadline_seconds=_optional_int(
                f"{where}.job.preRunningDeadlineSeconds", job.get("preRunningDeadlineSeconds"),
                jd.pre_running_deadline_seconds, 0,
            ),
            deletion_strategy=str(strategy),
        ),
        pods=pods,
        catalog_policy=CatalogPolicy(
            default=str(policy["default"]) if policy.get("default") else None,
            allowed=allowed,
            local_roots=[str(r) for r in _list(f"{where}.catalogPolicy.localRoots", policy.get("localRoots"))],
        ),
        kueue=KueueDefaults(default_queues=_str_map(f"{where}.kueue.defaultQueues", kueue.get("defaultQueues"))),
    )


def load_defaults(path: Path) -> ClusterDefaults:
    """The defaults file, or built-in defaults when it does not exist (running outside a cluster)."""
    if not path.is_file():
        return ClusterDefaults()
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_defaults(data, str(path))
