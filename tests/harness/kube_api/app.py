"""The aiohttp application: URL routing, content negotiation and HTTP framing of the API.

Paths: `/api/v1/...` (core) and `/apis/<group>/<version>/...`, then
`[namespaces/<ns>/]<plural>[/<name>[/status]]`; discovery and OpenAPI v3 beside them.
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import discovery, protobuf, rbac, table, watch
from .cluster import Cluster
from .errors import ApiError, bad_request, page_not_found
from .jsondata import YAMLError, load_json, load_yaml
from .options import Options, Result
from .resources import ResourceType
from .selectors import Predicate, combine, parse_field_selector, parse_label_selector

# The API server refuses request bodies over 3 MiB (413), as kube-apiserver's MaxRequestBodyBytes.
MAX_REQUEST_BYTES = 3 * 1024 * 1024

log = logging.getLogger(__name__)
_JSON = "application/json"
_HEALTH_PATHS = ("/healthz", "/livez", "/readyz")


@dataclass(frozen=True)
class Target:
    rt: ResourceType
    namespace: str | None  # None: no namespace in the path (cluster-scoped, or all namespaces)
    name: str | None
    subresource: str


def _dump(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def respond(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    response = web.Response(body=_dump(body), status=status, content_type=_JSON)
    for warning in warnings or []:
        response.headers.add("Warning", '299 - "' + warning.replace('"', '\\"') + '"')
    return response


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


# The authenticated user of a request; None: the admin token or an anonymous request.
USER = web.RequestKey("user", rbac.User)


class KubeApiApp:
    """Builds the `web.Application`; one instance per server, holding the cluster state."""

    def __init__(self, cluster: Cluster | None = None, token: str | None = None,
                 bookmark_interval: float = 10.0) -> None:
        self.cluster = cluster or Cluster()
        self.token = token
        # Tokens of users whose requests RBAC authorizes (the admin token and anonymous ones bypass it).
        self.users: dict[str, rbac.User] = {}
        self.authorized: collections.Counter[str] = collections.Counter()  # user name → requests allowed
        self.denied: list[str] = []  # "user: verb group/resource in namespace" of every 403
        self.bookmark_interval = bookmark_interval
        self.streams: set[watch.WatchStream] = set()

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_REQUEST_BYTES)
        get = web.get
        app.add_routes([
            get("/version", self._version),
            *[get(path, self._health) for path in _HEALTH_PATHS],
            get("/api", self._api),
            get("/api/v1", self._core_resources),
            get("/apis", self._apis),
            get("/apis/{group}", self._group),
            get("/apis/{group}/{version}", self._group_resources),
            get("/openapi/v3", self._openapi_root),
            get("/openapi/v3/{path:.+}", self._openapi_gv),
            web.route("*", "/api/v1/{tail:.+}", self._resource),
            web.route("*", "/apis/{group}/{version}/{tail:.+}", self._resource),
        ])
        app.on_shutdown.append(self._close_streams)
        return app

    async def _close_streams(self, _app: web.Application) -> None:
        for stream in list(self.streams):
            stream.close()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            # kubectl never sends a bearer token over plain HTTP, so anonymous requests are
            # admitted; a client that does present credentials must present the right ones.
            auth = request.headers.get("Authorization")
            user = self.users.get(auth.removeprefix("Bearer ")) if auth is not None else None
            if self.token and auth is not None and auth != f"Bearer {self.token}" and user is None:
                raise ApiError(401, "Unauthorized")
            request[USER] = user
            return await handler(request)
        except ApiError as error:
            return respond(error.status(), error.code)
        except web.HTTPNotFound:
            return respond(page_not_found().status(), 404)
        except web.HTTPException:
            raise
        except Exception as exc:  # a bug here must reach the client as a 500, not a hang
            log.exception("internal error serving %s %s", request.method, request.path)
            return respond(ApiError(500, f"Internal error occurred: {exc!r}").status(), 500)

    # --- discovery ----------------------------------------------------------------------

    async def _version(self, request: web.Request) -> web.Response:
        return respond(discovery.VERSION_INFO)

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _api(self, request: web.Request) -> web.Response:
        host = request.host or "127.0.0.1"
        return respond(discovery.api_versions(host))

    async def _core_resources(self, request: web.Request) -> web.Response:
        return respond(discovery.resource_list(self.cluster.registry, "", "v1"))

    async def _apis(self, request: web.Request) -> web.Response:
        return respond(discovery.api_group_list(self.cluster.registry))

    async def _group(self, request: web.Request) -> web.Response:
        body = discovery.api_group(self.cluster.registry, request.match_info["group"])
        if body is None:
            raise page_not_found()
        return respond(body)

    async def _group_resources(self, request: web.Request) -> web.Response:
        body = discovery.resource_list(self.cluster.registry, request.match_info["group"],
                                       request.match_info["version"])
        if body is None:
            raise page_not_found()
        return respond(body)

    async def _openapi_root(self, request: web.Request) -> web.Response:
        return respond(discovery.openapi_root(self.cluster.registry))

    async def _openapi_gv(self, request: web.Request) -> web.Response:
        parts = request.match_info["path"].split("/")
        if parts[0] == "api" and len(parts) == 2:
            body = discovery.openapi_gv(self.cluster.registry, "", parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            body = discovery.openapi_gv(self.cluster.registry, parts[1], parts[2])
        else:
            body = None
        if body is None:
            raise page_not_found()
        return respond(body)

    # --- resources ----------------------------------------------------------------------

    def _target(self, request: web.Request) -> tuple[Target, bool]:
        group = request.match_info.get("group", "")
        version = request.match_info.get("version", "v1")
        segments = [s for s in request.match_info["tail"].split("/") if s]
        legacy_watch = bool(segments) and segments[0] == "watch"
        if legacy_watch:
            segments = segments[1:]
        namespace: str | None = None
        if len(segments) >= 3 and segments[0] == "namespaces":
            inner = self.cluster.registry.get(group, version, segments[2])
            if inner is not None and inner.namespaced:
                namespace, segments = segments[1], segments[2:]
        if not segments or len(segments) > 3:
            raise page_not_found()
        rt = self.cluster.registry.get(group, version, segments[0])
        if rt is None or (namespace is not None and not rt.namespaced):
            raise page_not_found()
        name = segments[1] if len(segments) > 1 else None
        subresource = segments[2] if len(segments) > 2 else ""
        if rt.namespaced and namespace is None and name is not None:
            raise page_not_found()
        if subresource and not (subresource == "status" and rt.status_subresource):
            raise page_not_found()
        return Target(rt, namespace, name, subresource), legacy_watch

    def _policy(self) -> rbac.Policy:
        store = self.cluster.store
        return rbac.Policy.of(obj for plural in ("roles", "rolebindings", "clusterroles", "clusterrolebindings")
                              for obj in store.items((rbac.RBAC_GROUP, plural)))

    def _allowed(self, user: rbac.User, attributes: rbac.Attributes) -> bool:
        """RBAC's answer for one request or admission check; denials are recorded."""
        if self._policy().allows(user, attributes):
            return True
        self.denied.append(f"{user.name}: {attributes}")
        return False

    def _authorize(self, request: web.Request, target: Target, watching: bool) -> None:
        user = request.get(USER)
        if user is None:
            return
        attributes = rbac.Attributes(rbac.verb_of(request.method, target.name, watching), target.rt.group,
                                     target.rt.plural, target.subresource, target.namespace or "", target.name or "")
        if not self._allowed(user, attributes):
            raise rbac.forbidden(user, attributes)
        self.authorized[user.name] += 1

    def _admission_authorizer(self, request: web.Request) -> Callable[[rbac.Attributes], str | None] | None:
        """What admission plugins ask RBAC about the requesting user; None for the admin."""
        user = request.get(USER)
        if user is None:
            return None

        def authorize(attributes: rbac.Attributes) -> str | None:
            if self._allowed(user, attributes):
                return None
            return rbac.forbidden(user, attributes).message.split(" is forbidden: ", 1)[1]

        return authorize

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        target, legacy_watch = self._target(request)
        method = request.method
        self._authorize(request, target, method == "GET" and (legacy_watch or _truthy(request.query.get("watch"))))
        if method == "GET":
            if legacy_watch or _truthy(request.query.get("watch")):
                return await self._watch(request, target)
            if target.name is None:
                return self._list(request, target)
            obj = self.cluster.get(target.rt, target.namespace or "", target.name)
            return self._render_one(request, target.rt, obj)
        options = self._options(request)
        options.authorize = self._admission_authorizer(request)
        if method == "POST":
            if target.name is not None or (target.rt.namespaced and target.namespace is None):
                raise ApiError(405, "the server does not allow this method on the requested resource")
            result = self.cluster.create(target.rt, target.namespace or "", await self._body(request, options),
                                         options)
        elif method == "PUT" and target.name is not None:
            result = self.cluster.update(target.rt, target.namespace or "", target.name,
                                         await self._body(request, options), target.subresource, options)
        elif method == "PATCH" and target.name is not None:
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            raw = await request.read()
            if content_type.endswith("+json"):  # merge, strategic-merge and JSON patches
                try:
                    options.duplicate_fields = load_json(raw)[1]
                except ValueError:
                    pass  # the patch machinery reports the decoding error
            result = self.cluster.patch(target.rt, target.namespace or "", target.name, content_type,
                                        raw, target.subresource, options)
        elif method == "DELETE" and not target.subresource:
            return await self._delete(request, target, options)
        else:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        return self._render_result(request, target.rt, result)

    def _options(self, request: web.Request) -> Options:
        validation = request.query.get("fieldValidation") or "Warn"
        if validation not in ("Ignore", "Warn", "Strict"):
            raise bad_request(f'fieldValidation: Unsupported value: "{validation}"')
        return Options(dry_run=request.query.get("dryRun") == "All", field_validation=validation)

    async def _body(self, request: web.Request, options: Options) -> Any:
        raw = await request.read()
        content_type = request.headers.get("Content-Type", _JSON).split(";")[0].strip()
        if content_type == "application/vnd.kubernetes.protobuf":
            return protobuf.decode(raw)
        try:
            if "yaml" in content_type:
                return load_yaml(raw)
            body, options.duplicate_fields = load_json(raw or b"{}")
            return body
        except (ValueError, YAMLError) as exc:
            raise bad_request(f"error decoding request body: {exc}") from exc

    def _selector(self, request: web.Request, rt: ResourceType) -> Predicate | None:
        allowed = {"metadata.name", "metadata.namespace", *rt.selectable_fields}
        return combine(parse_label_selector(request.query.get("labelSelector")),
                       parse_field_selector(request.query.get("fieldSelector"), allowed))

    def _renderer(self, request: web.Request, rt: ResourceType) -> watch.Render:
        accept = request.headers.get("Accept", "")
        include = request.query.get("includeObject", "Metadata")
        if table.wants_table(accept):
            meta = {"resourceVersion": ""}
            return lambda obj: table.table(rt, [self.cluster.present(rt, obj)], dict(meta), include)
        if "as=PartialObjectMetadata" in accept:
            return lambda obj: {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                "metadata": obj["metadata"]}
        return lambda obj: self.cluster.present(rt, obj)

    def _render_one(self, request: web.Request, rt: ResourceType, obj: dict[str, Any],
                    status: int = 200, warnings: list[str] | None = None) -> web.Response:
        if obj.get("kind") == "Status":
            return respond(obj, status, warnings)
        return respond(self._renderer(request, rt)(obj), status, warnings)

    def _render_result(self, request: web.Request, rt: ResourceType, result: Result) -> web.Response:
        return self._render_one(request, rt, result.body, result.code, result.warnings)

    def _list(self, request: web.Request, target: Target) -> web.Response:
        rt = target.rt
        limit = int(request.query.get("limit") or 0)
        after = _decode_continue(request.query.get("continue", ""))
        items, last, remaining = self.cluster.list(rt, target.namespace, self._selector(request, rt), limit, after)
        meta: dict[str, Any] = {"resourceVersion": str(self.cluster.store.rv)}
        if last is not None:
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(list(last)).encode()).decode()
            meta["remainingItemCount"] = remaining
        accept = request.headers.get("Accept", "")
        if table.wants_table(accept):
            include = request.query.get("includeObject", "Metadata")
            return respond(table.table(rt, items, meta, include))
        if "as=PartialObjectMetadataList" in accept:
            return respond({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                            "items": [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                       "metadata": o["metadata"]} for o in items]})
        return respond({"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": meta, "items": items})

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        match = self._selector(request, target.rt)
        if target.name is not None:
            match = combine(match, parse_field_selector(f"metadata.name={target.name}", {"metadata.name"}))
        return await watch.serve(request, self.cluster, target.rt, target.namespace, match,
                                 self._renderer(request, target.rt), self.streams, self.bookmark_interval)

    async def _delete(self, request: web.Request, target: Target, options: Options) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise bad_request(f"error decoding DeleteOptions: {exc}") from exc
        if request.query.get("propagationPolicy"):
            body["propagationPolicy"] = request.query["propagationPolicy"]
        rt = target.rt
        if target.name is None:
            deleted = self.cluster.delete_collection(rt, target.namespace, self._selector(request, rt), body, options)
            return respond({"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                            "metadata": {"resourceVersion": str(self.cluster.store.rv)}, "items": deleted})
        result = self.cluster.delete(rt, target.namespace or "", target.name, body, options)
        return self._render_result(request, rt, result)


def _decode_continue(token: str) -> tuple[str, str] | None:
    if not token:
        return None
    try:
        namespace, name = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(namespace), str(name)
    except (ValueError, binascii.Error, TypeError) as exc:
        raise bad_request("continue key is not valid") from exc
