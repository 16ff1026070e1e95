"""OwnerReferencesPermissionEnforcement, the admission plugin production clusters run.

For a user RBAC authorizes (see `rbac`), a write that changes `metadata.ownerReferences` needs
`delete` on the object itself, and an ownerReference that newly sets `blockOwnerDeletion: true`
needs `update` on the owner's `finalizers` subresource. Refusals are 403s in the API
server's words. The admin and anonymous requests are not checked, as `system:masters`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .errors import ApiError
from .rbac import Attributes
from .resources import ResourceType


def _blocking(refs: list[dict[str, Any]]) -> set[str]:
    return {str(r.get("uid")) for r in refs if r.get("blockOwnerDeletion")}


def check(
    rt: ResourceType,
    obj: dict[str, Any],
    old: dict[str, Any] | None,
    authorize: Callable[[Attributes], str | None],
    types: Callable[[], Iterable[ResourceType]],
) -> None:
    """Raise the plugin's 403, or return. `authorize` gives None when allowed, else why not."""
    meta = obj.get("metadata") or {}
    refs = list(meta.get("ownerReferences") or [])
    old_refs = list(((old or {}).get("metadata") or {}).get("ownerReferences") or [])
    if refs == old_refs:
        return
    namespace = meta.get("namespace", "") if rt.namespaced else ""
    name = meta.get("name", "")
    what = f'{rt.group_resource} "{name}"'
    why = authorize(Attributes("delete", rt.group, rt.plural, "", namespace, name))
    if why is not None:
        raise ApiError(403, f"{what} is forbidden: cannot set an ownerRef on a resource you can't delete: {why}")
    newly = _blocking(refs) - _blocking(old_refs)
    for ref in refs:
        if str(ref.get("uid")) not in newly:
            continue
        api_version, kind = str(ref.get("apiVersion", "")), str(ref.get("kind", ""))
        group, _, version = api_version.rpartition("/")
        owner = next((t for t in types() if t.group == group and t.version == version and t.kind == kind), None)
        if owner is None:
            raise ApiError(403, f"{what} is forbidden: cannot set blockOwnerDeletion in this case because cannot "
                                f"find RESTMapping for APIVersion {api_version} Kind {kind}")
        why = authorize(Attributes("update", owner.group, owner.plural, "finalizers",
                                   namespace if owner.namespaced else "", str(ref.get("name", ""))))
        if why is not None:
            raise ApiError(403, f"{what} is forbidden: cannot set blockOwnerDeletion if an ownerReference refers "
                                f"to a resource you can't set finalizers on: {why}")
