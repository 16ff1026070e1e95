"""What the server serves: one `ResourceType` per (group, version, plural).

Built-in kinds are rows of `BUILTINS`; custom resources are added and removed by
`Registry.register_crd` when CRDs are applied. Storage is keyed by (group, plural),
so every served version of a CRD shares its objects, as with `conversion: None`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .schema import StructuralSchema

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class PrinterColumn:
    """A column of `kubectl get`: a CRD's `additionalPrinterColumns` entry."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    format: str = ""


@dataclass
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    # Whether the server keeps `metadata.generation` (custom resources and spec-bearing kinds).
    generation: bool = False
    # "subdomain" (most kinds), "label" (namespaces) or "path" (RBAC: names like system:admin).
    name_rule: str = "subdomain"
    printer_columns: tuple[PrinterColumn, ...] = ()
    # Whether `kubectl get` ends with an Age column after the printer columns.
    age_column: bool = True
    # Extra field selectors beyond metadata.name / metadata.namespace (dotted paths).
    selectable_fields: tuple[str, ...] = ()
    custom: bool = False
    schema: StructuralSchema | None = field(default=None, repr=False)
    verbs: tuple[str, ...] = ALL_VERBS

    def __post_init__(self) -> None:
        self.singular = self.singular or self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """The storage key: versions of one group/plural share their objects."""
        return (self.group, self.plural)

    @property
    def group_resource(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _row(group: str, version: str, plural: str, kind: str, namespaced: bool = True, **kw: Any) -> ResourceType:
    return ResourceType(group, version, plural, kind, namespaced, **kw)


_NS_COLUMNS = (PrinterColumn("Status", "string", ".status.phase"),)
_CRD_COLUMNS = (PrinterColumn("Created At", "string", ".metadata.creationTimestamp"),)
_EVENT_COLUMNS = (
    PrinterColumn("Type", "string", ".type"),
    PrinterColumn("Reason", "string", ".reason"),
    PrinterColumn("Object", "string", ".involvedObject.name"),
    PrinterColumn("Message", "string", ".message"),
)

# One row per built-in kind: adding a kind is adding a row.
BUILTINS: tuple[ResourceType, ...] = (
    _row("", "v1", "namespaces", "Namespace", False, short_names=("ns",), status_subresource=True,
         name_rule="label", printer_columns=_NS_COLUMNS,
         verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    _row("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    _row("", "v1", "secrets", "Secret", selectable_fields=("type",)),
    _row("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _row("", "v1", "services", "Service", short_names=("svc",), categories=("all",), status_subresource=True),
    _row("", "v1", "events", "Event", short_names=("ev",), printer_columns=_EVENT_COLUMNS,
         selectable_fields=("involvedObject.kind", "involvedObject.name", "involvedObject.namespace",
                            "involvedObject.uid", "reason", "type", "source")),
    _row("", "v1", "pods", "Pod", short_names=("po",), categories=("all",), status_subresource=True,
         selectable_fields=("status.phase", "spec.nodeName", "spec.serviceAccountName")),
    _row("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",), status_subresource=True),
    _row("apps", "v1", "deployments", "Deployment", short_names=("deploy",), categories=("all",),
         status_subresource=True, generation=True),
    _row("batch", "v1", "jobs", "Job", categories=("all",), status_subresource=True, generation=True),
    _row("rbac.authorization.k8s.io", "v1", "roles", "Role", name_rule="path"),
    _row("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", name_rule="path"),
    _row("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, name_rule="path"),
    _row("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False, name_rule="path"),
    _row("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short_names=("netpol",), generation=True),
    _row("coordination.k8s.io", "v1", "leases", "Lease"),
    _row("events.k8s.io", "v1", "events", "Event", short_names=("ev",),
         selectable_fields=("regarding.kind", "regarding.name", "regarding.namespace", "reason", "type")),
    _row("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
         short_names=("crd", "crds"), status_subresource=True, generation=True, printer_columns=_CRD_COLUMNS,
         age_column=False),
)


class Registry:
    """The served resource types, with the group/version order discovery reports."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._crd_types: dict[str, list[ResourceType]] = {}  # CRD name -> its served versions
        self._group_versions: dict[str, list[str]] = {}  # group -> versions, preferred first
        self._revision = 0
        for rt in BUILTINS:
            self._add(rt)

    def _add(self, rt: ResourceType) -> None:
        self._types[(rt.group, rt.version, rt.plural)] = rt
        versions = self._group_versions.setdefault(rt.group, [])
        if rt.version not in versions:
            versions.append(rt.version)

    @property
    def revision(self) -> int:
        """Changes whenever the served resources do (discovery documents may be cached on it)."""
        return self._revision

    def _rebuild_versions(self) -> None:
        self._revision += 1
        order: dict[str, list[str]] = {}
        for rt in self._types.values():
            versions = order.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        self._group_versions = order

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def types(self) -> Iterator[ResourceType]:
        return iter(list(self._types.values()))

    def group_versions(self) -> dict[str, list[str]]:
        return {g: list(v) for g, v in self._group_versions.items()}

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._types.values() if rt.group == group and rt.version == version]

    def any_version(self, group: str, plural: str) -> ResourceType | None:
        """A served version of group/plural (the preferred one), e.g. to name a CR's kind."""
        for version in self._group_versions.get(group, []):
            rt = self._types.get((group, version, plural))
            if rt:
                return rt
        return None

    def register_crd(self, crd_name: str, types: list[ResourceType], preferred: str) -> None:
        """(Re)serve a CRD's versions; `preferred` (the storage version) is listed first."""
        self.unregister_crd(crd_name)
        for rt in sorted(types, key=lambda t: t.version != preferred):
            self._types[(rt.group, rt.version, rt.plural)] = rt
        self._crd_types[crd_name] = types
        self._rebuild_versions()
        # Keep the preferred version first within its group.
        if types:
            versions = self._group_versions[types[0].group]
            if preferred in versions:
                versions.remove(preferred)
                versions.insert(0, preferred)

    def unregister_crd(self, crd_name: str) -> None:
        for rt in self._crd_types.pop(crd_name, []):
            self._types.pop((rt.group, rt.version, rt.plural), None)
        self._rebuild_versions()

    def reset(self) -> None:
        for name in list(self._crd_types):
            self.unregister_crd(name)
