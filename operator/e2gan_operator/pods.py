"""Pod-level settings of the Ray pods (the `pods` section of the defaults file) and their parser.

What a shared production cluster needs from every Ray head, worker and submitter pod: a
restricted securityContext, no service-account token, /dev/shm, model volumes, extra
environment, the catalog's CA bundle, a CPU-only submitter, Ray token authentication of the
dashboard, and named profiles that a resource selects with `spec.runtime.profile`.

Profiles are written by the cluster admin (Helm values), never by the resource: a user picks
one by name and cannot add a hostPath, a privileged container or a Secret by value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The base image's user "ray": uid 1000, group users (100); docker/trainer.Dockerfile runs as it.
RAY_UID = 1000
RAY_GID = 100
CA_MOUNT = "/etc/e2gan/ca"
CA_ENV = "E2GAN_S3_CA_FILE"
# Volume names the builder uses itself; admin volumes may not take them.
RESERVED_VOLUMES = frozenset({"dshm", "catalog-ca"})
# Mount paths the builder uses itself or Ray needs writable.
RESERVED_MOUNTS = ("/dev/shm", CA_MOUNT)
# Volume sources that keep a pod within Pod Security "restricted" (its allowed volume types:
# no hostPath, no nfs or other in-tree network volumes; image volumes are Kubernetes 1.33+).
VOLUME_SOURCES = frozenset(
    {"persistentVolumeClaim", "image", "configMap", "secret", "emptyDir", "ephemeral", "csi", "projected"}
)
# Environment the operator sets itself: an admin value would silently fight it.
RESERVED_ENV = re.compile(r"^(E2GAN_S3_|E2GAN_CATALOG_OWNER$|RAY_AUTH_)")
# Names that hold secrets: only `valueFrom` (a Secret reference) is accepted for them.
SECRET_ENV = re.compile(r"(SECRET|PASSWORD|TOKEN|ACCESS_KEY|CREDENTIAL|PRIVATE_KEY)", re.IGNORECASE)
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
DASHBOARD_AUTH = ("token", "disabled")


class PodSettingsError(ValueError):
    """A `pods` setting is unusable; the message names the key and the fix."""


@dataclass(frozen=True)
class Volume:
    """A volume mounted into every Ray container (head and workers), e.g. teacher weights."""

    name: str
    mount_path: str
    source: dict[str, Any]
    """The Kubernetes volume source: {persistentVolumeClaim: {...}} or {image: {...}}, etc."""
    read_only: bool = True
    sub_path: str | None = None

    def volume(self) -> dict[str, Any]:
        return {"name": self.name, **self.source}

    def mount(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "mountPath": self.mount_path, "readOnly": self.read_only}
        if self.sub_path:
            out["subPath"] = self.sub_path
        return out


@dataclass(frozen=True)
class PodOverlay:
    """Scheduling keys a profile adds to the head or the workers."""

    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    """A named variant selected by `spec.runtime.profile`: more volumes, env, scheduling."""

    volumes: tuple[Volume, ...] = ()
    env: tuple[dict[str, Any], ...] = ()
    head: PodOverlay = field(default_factory=PodOverlay)
    worker: PodOverlay = field(default_factory=PodOverlay)


@dataclass(frozen=True)
class Submitter:
    """The K8s Job that runs `ray job submit`: CPU-only, small, never the CUDA image."""

    image: str | None = None
    """None: rayproject/ray:<rayVersion>-py311-cpu, the trainer image's own base (shared layers)."""
    resources: dict[str, Any] = field(
        default_factory=lambda: {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    )
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)

    def image_for(self, ray_version: str) -> str:
        return self.image or f"rayproject/ray:{ray_version}-py311-cpu"


@dataclass(frozen=True)
class CaBundle:
    """A ConfigMap (in each resource's namespace) with the PEM bundle of the catalog's private CA."""

    config_map: str
    key: str = "ca.crt"

    @property
    def path(self) -> str:
        return f"{CA_MOUNT}/{self.key}"


@dataclass(frozen=True)
class PodSettings:
    """The `pods` section of the defaults file."""

    run_as_user: int = RAY_UID
    run_as_group: int = RAY_GID
    fs_group: int = RAY_GID
    shm_size_limit: str | None = None
    """sizeLimit of the memory-backed /dev/shm (Ray's object store); None: the pod's memory limit."""
    dashboard_auth: str = "token"
    """token: KubeRay's authOptions (Ray ≥ 2.52, KubeRay ≥ 1.5.1) — only the submitter and the
    KubeRay operator hold the token; disabled: rely on the NetworkPolicy alone."""
    env: tuple[dict[str, Any], ...] = ()
    volumes: tuple[Volume, ...] = ()
    ca_bundle: CaBundle | None = None
    submitter: Submitter = field(default_factory=Submitter)
    profiles: dict[str, Profile] = field(default_factory=dict)

    def profile(self, name: str | None) -> Profile:
        """The named profile; an unknown name raises PodSettingsError naming the known ones."""
        if not name:
            return Profile()
        if name not in self.profiles:
            known = ", ".join(sorted(self.profiles)) or "none are configured"
            raise PodSettingsError(f"spec.runtime.profile: unknown profile {name!r} (known: {known})")
        return self.profiles[name]


# ------------------------------------------------------------------------------ parsing


def _mapping(where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PodSettingsError(f"{where}: expected a mapping")
    return dict(value)


def _list(where: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PodSettingsError(f"{where}: expected a list")
    return value


def _keys(where: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise PodSettingsError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")


def _str_map(where: str, value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in _mapping(where, value).items()}


def _id(where: str, value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
        raise PodSettingsError(f"{where}: expected a non-root id (1..2147483647), got {value!r}")
    return value


def parse_env(where: str, value: Any) -> tuple[dict[str, Any], ...]:
    """Extra environment: name/value or name/valueFrom; secrets only by reference."""
    out = []
    for i, item in enumerate(_list(where, value)):
        at = f"{where}[{i}]"
        item = _mapping(at, item)
        _keys(at, item, {"name", "value", "valueFrom"})
        name = item.get("name")
        if not isinstance(name, str) or not ENV_NAME.match(name):
            raise PodSettingsError(f"{at}.name: expected an environment variable name, got {name!r}")
        if RESERVED_ENV.match(name):
            raise PodSettingsError(f"{at}.name: {name} is set by the operator; configure it through its own setting")
        if ("value" in item) == ("valueFrom" in item):
            raise PodSettingsError(f"{at}: give exactly one of value and valueFrom")
        if "value" in item and SECRET_ENV.search(name):
            raise PodSettingsError(
                f"{at}: {name} looks like a secret; use valueFrom.secretKeyRef instead of a value"
            )
        if "value" in item:
            out.append({"name": name, "value": str(item["value"])})
        else:
            out.append({"name": name, "valueFrom": _mapping(f"{at}.valueFrom", item["valueFrom"])})
    return tuple(out)


def parse_volumes(where: str, value: Any) -> tuple[Volume, ...]:
    out: list[Volume] = []
    for i, item in enumerate(_list(where, value)):
        at = f"{where}[{i}]"
        item = _mapping(at, item)
        sources = sorted(set(item) - {"name", "mountPath", "readOnly", "subPath"})
        name, mount_path = item.get("name"), item.get("mountPath")
        if not isinstance(name, str) or not DNS_LABEL.match(name) or name in RESERVED_VOLUMES:
            raise PodSettingsError(f"{at}.name: expected a DNS label other than {', '.join(sorted(RESERVED_VOLUMES))}")
        if not isinstance(mount_path, str) or not mount_path.startswith("/") or ".." in mount_path.split("/"):
            raise PodSettingsError(f"{at}.mountPath: expected an absolute path without '..'")
        if any(mount_path == r or mount_path.startswith(r + "/") for r in RESERVED_MOUNTS):
            raise PodSettingsError(f"{at}.mountPath: {mount_path} is used by the operator itself")
        if len(sources) != 1 or sources[0] not in VOLUME_SOURCES:
            raise PodSettingsError(
                f"{at}: give exactly one volume source of {', '.join(sorted(VOLUME_SOURCES))} (Pod Security restricted)"
            )
        read_only = item.get("readOnly", True)
        if not isinstance(read_only, bool):
            raise PodSettingsError(f"{at}.readOnly: expected true or false")
        sub_path = item.get("subPath")
        if sub_path is not None and (not isinstance(sub_path, str) or ".." in sub_path.split("/")):
            raise PodSettingsError(f"{at}.subPath: expected a relative path without '..'")
        out.append(Volume(name, mount_path, {sources[0]: _mapping(f"{at}.{sources[0]}", item[sources[0]])},
                          read_only, sub_path))
    names = [v.name for v in out]
    if len(set(names)) != len(names):
        raise PodSettingsError(f"{where}: volume names must be unique")
    return tuple(out)


def _overlay(where: str, value: Any) -> PodOverlay:
    data = _mapping(where, value)
    _keys(where, data, {"nodeSelector", "tolerations", "labels", "annotations"})
    return PodOverlay(
        node_selector=_str_map(f"{where}.nodeSelector", data.get("nodeSelector")),
        tolerations=[_mapping(f"{where}.tolerations", t) for t in _list(f"{where}.tolerations", data.get("tolerations"))],
        labels=_str_map(f"{where}.labels", data.get("labels")),
        annotations=_str_map(f"{where}.annotations", data.get("annotations")),
    )


def _profile(where: str, value: Any) -> Profile:
    data = _mapping(where, value)
    _keys(where, data, {"volumes", "env", "head", "worker"})
    return Profile(
        volumes=parse_volumes(f"{where}.volumes", data.get("volumes")),
        env=parse_env(f"{where}.env", data.get("env")),
        head=_overlay(f"{where}.head", data.get("head")),
        worker=_overlay(f"{where}.worker", data.get("worker")),
    )


def _submitter(where: str, value: Any) -> Submitter:
    data = _mapping(where, value)
    _keys(where, data, {"image", "resources", "nodeSelector", "tolerations"})
    base = Submitter()
    image = data.get("image") or None
    if image is not None and not isinstance(image, str):
        raise PodSettingsError(f"{where}.image: expected an image reference")
    return Submitter(
        image=image,
        resources=_mapping(f"{where}.resources", data["resources"]) if data.get("resources") else base.resources,
        node_selector=_str_map(f"{where}.nodeSelector", data.get("nodeSelector")),
        tolerations=[_mapping(f"{where}.tolerations", t) for t in _list(f"{where}.tolerations", data.get("tolerations"))],
    )


def _ca(where: str, value: Any) -> CaBundle | None:
    data = _mapping(where, value)
    _keys(where, data, {"configMapName", "key"})
    name = data.get("configMapName") or ""
    if not name:
        return None
    key = str(data.get("key") or "ca.crt")
    if not DNS_SUBDOMAIN.match(str(name)) or not re.fullmatch(r"[-._a-zA-Z0-9]+", key) or key in (".", ".."):
        raise PodSettingsError(f"{where}: expected a ConfigMap name and a key such as ca.crt")
    return CaBundle(str(name), key)


def parse_pods(value: Any, where: str = "pods") -> PodSettings:
    """PodSettings from the `pods` section of the defaults file (camelCase keys)."""
    data = _mapping(where, value)
    _keys(where, data, {"runAsUser", "runAsGroup", "fsGroup", "shmSizeLimit", "dashboardAuth", "env", "volumes",
                        "caBundle", "submitter", "profiles"})
    auth = data.get("dashboardAuth", "token")
    if auth not in DASHBOARD_AUTH:
        raise PodSettingsError(f"{where}.dashboardAuth: expected token or disabled, got {auth!r}")
    shm = data.get("shmSizeLimit") or None
    if shm is not None and not re.fullmatch(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?", str(shm)):
        raise PodSettingsError(f"{where}.shmSizeLimit: expected a quantity such as 8Gi, got {shm!r}")
    profiles = {}
    for name, body in _mapping(f"{where}.profiles", data.get("profiles")).items():
        if not DNS_LABEL.match(str(name)) or len(str(name)) > 63:
            raise PodSettingsError(f"{where}.profiles: profile name {name!r} is not a DNS label")
        profiles[str(name)] = _profile(f"{where}.profiles.{name}", body)
    settings = PodSettings(
        run_as_user=_id(f"{where}.runAsUser", data.get("runAsUser"), RAY_UID),
        run_as_group=_id(f"{where}.runAsGroup", data.get("runAsGroup"), RAY_GID),
        fs_group=_id(f"{where}.fsGroup", data.get("fsGroup"), RAY_GID),
        shm_size_limit=str(shm) if shm else None,
        dashboard_auth=str(auth),
        env=parse_env(f"{where}.env", data.get("env")),
        volumes=parse_volumes(f"{where}.volumes", data.get("volumes")),
        ca_bundle=_ca(f"{where}.caBundle", data.get("caBundle")),
        submitter=_submitter(f"{where}.submitter", data.get("submitter")),
        profiles=profiles,
    )
    for name, profile in profiles.items():
        clash = {v.name for v in profile.volumes} & {v.name for v in settings.volumes}
        if clash:
            raise PodSettingsError(f"{where}.profiles.{name}.volumes: {sorted(clash)[0]!r} is also a default volume")
    return settings


# ------------------------------------------------------------------------------ pod pieces


def pod_security_context(pods: PodSettings) -> dict[str, Any]:
    """Pod Security "restricted": non-root with a numeric uid, RuntimeDefault seccomp."""
    return {
        "runAsNonRoot": True,
        "runAsUser": pods.run_as_user,
        "runAsGroup": pods.run_as_group,
        "fsGroup": pods.fs_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def shm_volume(pods: PodSettings) -> dict[str, Any]:
    """Ray's object store lives in /dev/shm; the container runtime's default is 64 MiB."""
    empty_dir: dict[str, Any] = {"medium": "Memory"}
    if pods.shm_size_limit:
        empty_dir["sizeLimit"] = pods.shm_size_limit
    return {"name": "dshm", "emptyDir": empty_dir}


def volumes_and_mounts(pods: PodSettings, profile: Profile) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every volume of a Ray pod and the mounts of its Ray container."""
    volumes = [shm_volume(pods)]
    mounts: list[dict[str, Any]] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    if pods.ca_bundle:
        ca = pods.ca_bundle
        volumes.append({"name": "catalog-ca", "configMap": {"name": ca.config_map, "items": [{"key": ca.key, "path": ca.key}]}})
        mounts.append({"name": "catalog-ca", "mountPath": CA_MOUNT, "readOnly": True})
    for vol in (*pods.volumes, *profile.volumes):
        volumes.append(vol.volume())
        mounts.append(vol.mount())
    return volumes, mounts


def ca_env(pods: PodSettings) -> list[dict[str, Any]]:
    """The trainer's catalog client reads its CA bundle from E2GAN_S3_CA_FILE (catalog/settings.py)."""
    return [{"name": CA_ENV, "value": pods.ca_bundle.path}] if pods.ca_bundle else []
