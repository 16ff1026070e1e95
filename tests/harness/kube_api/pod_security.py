"""Pod Security Admission: the "baseline" and "restricted" Pod Security Standards.

A namespace labelled `pod-security.kubernetes.io/enforce: restricted` (or `baseline`) refuses
Pods that violate the level, with the API server's message; the `warn` label turns the same
findings into warnings. `violations(pod_spec, level)` is usable on any pod template (the
RayJob's head, workers and submitter) and follows the checks of k8s.io/pod-security-admission
at `latest`. Windows-only and AppArmor-annotation checks are left out (Linux pods only).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

LEVELS = ("privileged", "baseline", "restricted")
ENFORCE, WARN = "pod-security.kubernetes.io/enforce", "pod-security.kubernetes.io/warn"

_BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                          "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
_SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                 "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                 "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                 "net.ipv4.tcp_keepalive_probes"}
# `image` volumes are allowed at restricted since Kubernetes 1.33.
_RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
                       "persistentVolumeClaim", "projected", "secret"}
_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def _containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def _names(containers: list[dict[str, Any]]) -> str:
    quoted = ", ".join(f'"{c.get("name", "")}"' for c in containers)
    return f"container {quoted}" if len(containers) == 1 else f"containers {quoted}"


def _baseline(spec: dict[str, Any]) -> list[str]:
    found: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    containers = list(_containers(spec))
    host = [k for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    if host:
        found.append(f"host namespaces ({', '.join(f'{k}=true' for k in host)})")
    privileged = [c for c in containers if (c.get("securityContext") or {}).get("privileged")]
    if privileged:
        found.append(f"privileged ({_names(privileged)} must not set securityContext.privileged=true)")
    added = sorted({cap for c in containers for cap in ((c.get("securityContext") or {}).get("capabilities") or {})
                    .get("add") or [] if cap not in _BASELINE_CAPABILITIES})
    if added:
        found.append(f"non-default capabilities (capabilities {added} must not be added)")
    host_path = [v.get("name", "") for v in spec.get("volumes") or [] if "hostPath" in v]
    if host_path:
        found.append(f"hostPath volumes ({', '.join(host_path)})")
    ports = [c for c in containers if any(p.get("hostPort") for p in c.get("ports") or [])]
    if ports:
        found.append(f"hostPort ({_names(ports)} uses hostPort)")
    selinux = [sc.get("seLinuxOptions") or {} for sc in [pod_sc, *(c.get("securityContext") or {} for c in containers)]]
    if any(o.get("type", "") not in _SELINUX_TYPES or o.get("user") or o.get("role") for o in selinux):
        found.append("seLinuxOptions (forbidden type, user or role)")
    proc = [c for c in containers if (c.get("securityContext") or {}).get("procMount", "Default") != "Default"]
    if proc:
        found.append(f"procMount ({_names(proc)} must not set securityContext.procMount)")
    unconfined = [sc for sc in [pod_sc, *(c.get("securityContext") or {} for c in containers)]
                  if (sc.get("seccompProfile") or {}).get("type") == "Unconfined"]
    if unconfined:
        found.append("seccompProfile (seccompProfile.type must not be Unconfined)")
    sysctls = sorted(s.get("name", "") for s in pod_sc.get("sysctls") or [] if s.get("name") not in _SAFE_SYSCTLS)
    if sysctls:
        found.append(f"forbidden sysctls ({', '.join(sysctls)})")
    return found


def _restricted(spec: dict[str, Any]) -> list[str]:
    found: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    containers = list(_containers(spec))
    volumes = sorted({key for v in spec.get("volumes") or [] for key in v if key != "name"} - _RESTRICTED_VOLUMES)
    if volumes:
        found.append(f"restricted volume types (volume types {volumes} are not allowed)")
    escalate = [c for c in containers if (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False]
    if escalate:
        found.append(f"allowPrivilegeEscalation != false ({_names(escalate)} must set "
                     "securityContext.allowPrivilegeEscalation=false)")
    def capabilities(c: dict[str, Any]) -> dict[str, Any]:
        return (c.get("securityContext") or {}).get("capabilities") or {}

    caps = [c for c in containers if "ALL" not in (capabilities(c).get("drop") or [])
            or set(capabilities(c).get("add") or []) - {"NET_BIND_SERVICE"}]
    if caps:
        found.append(f'unrestricted capabilities ({_names(caps)} must set securityContext.capabilities.drop=["ALL"])')

    def container_value(c: dict[str, Any], key: str) -> Any:
        value = (c.get("securityContext") or {}).get(key)
        return pod_sc.get(key) if value is None else value

    non_root = [c for c in containers if container_value(c, "runAsNonRoot") is not True]
    if non_root:
        found.append(f"runAsNonRoot != true (pod or {_names(non_root)} must set securityContext.runAsNonRoot=true)")
    root = [c for c in containers if container_value(c, "runAsUser") == 0] + ([{}] if pod_sc.get("runAsUser") == 0 else [])
    if root:
        found.append("runAsUser=0 (pod and containers must not set runAsUser=0)")

    def profile(c: dict[str, Any]) -> str:
        own = ((c.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
        return own or (pod_sc.get("seccompProfile") or {}).get("type") or ""

    seccomp = [c for c in containers if profile(c) not in ("RuntimeDefault", "Localhost")]
    if seccomp:
        found.append(f"seccompProfile (pod or {_names(seccomp)} must set securityContext.seccompProfile.type to "
                     '"RuntimeDefault" or "Localhost")')
    return found


def violations(pod_spec: dict[str, Any], level: str = "restricted") -> list[str]:
    """What `pod_spec` (a Pod's or a pod template's spec) breaks of `level`, in PSA's words."""
    if level == "privileged":
        return []
    found = _baseline(pod_spec)
    if level == "restricted":
        found += _restricted(pod_spec)
    return found


def message(level: str, found: list[str]) -> str:
    return f'violates PodSecurity "{level}:latest": ' + ", ".join(found)


def namespace_levels(namespace: dict[str, Any] | None) -> tuple[str, str]:
    """(enforce, warn) levels from a Namespace's labels; privileged when unset or unknown."""
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    enforce, warn = labels.get(ENFORCE, "privileged"), labels.get(WARN, "privileged")
    return (enforce if enforce in LEVELS else "privileged", warn if warn in LEVELS else "privileged")
