"""A small asynchronous Kubernetes REST client over aiohttp, logged in with kopf's ConnectionInfo.

The operator needs a handful of calls (get, create, merge-patch, delete, list by label) on
RayJobs and on its own resources; doing them on the event loop keeps 200 concurrent
reconciles cheap (no thread per call, no second client library in the image).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import kopf


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


class Conflict(ApiError):
    """409: the object exists already (create) or changed meanwhile (update)."""


@dataclass(frozen=True)
class Resource:
    """A namespaced resource type: group/version/plural."""

    group: str
    version: str
    plural: str

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        out = f"{prefix}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        if name is not None:
            out += f"/{quote(name, safe='')}"
        if subresource:
            out += f"/{subresource}"
        return out


RAYJOBS = Resource("ray.io", "v1", "rayjobs")


class KubeClient:
    """Authenticated calls to the API server; one aiohttp session, reopened when credentials change."""

    def __init__(self, timeout_s: float = 30.0, connections: int = 32) -> None:
        self._info: kopf.ConnectionInfo | None = None
        # Reads the credentials again (a rotated service-account token) after a 401.
        self.relogin: Callable[[], kopf.ConnectionInfo | None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._connections = connections
        self._ready = asyncio.Event()
        self.on_request: Callable[[str], None] | None = None  # told the verb of every request (metrics)

    def login(self, info: kopf.ConnectionInfo) -> None:
        """Use these credentials from now on (called by the operator's login handler)."""
        if info != self._info:
            self._info = info
            old, self._session = self._session, None
            if old is not None:
                asyncio.get_running_loop().create_task(old.close())
        self._ready.set()

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            await asyncio.wait_for(self._ready.wait(), timeout=60)
            info = self._info
            assert info is not None
            ssl_context: Any = False if info.insecure else info.as_ssl_context()
            self._session = aiohttp.ClientSession(
                base_url=info.server.rstrip("/") + "/",
                headers={"Accept": "application/json", **info.as_http_headers()},
                connector=aiohttp.TCPConnector(ssl=ssl_context, limit=self._connections),
                timeout=self._timeout,
                trust_env=info.trust_env,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        try:
            return await self._request(method, path, body, params, content_type)
        except ApiError as exc:
            fresh = self.relogin() if exc.status == 401 and self.relogin is not None else None
            if fresh is None or fresh == self._info:
                raise
            self.login(fresh)
            return await self._request(method, path, body, params, content_type)

    async def _request(
        self, method: str, path: str, body: Any, params: dict[str, str] | None, content_type: str
    ) -> dict[str, Any]:
        session = await self._client()
        if self.on_request is not None:
            self.on_request(method)
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        async with session.request(method, path.lstrip("/"), data=data, params=params, headers=headers) as resp:
            text = await resp.text()
            if resp.status >= 400:
                try:
                    status = json.loads(text)
                except ValueError:
                    status = {}
                reason = status.get("reason") or resp.reason or ""
                message = status.get("message") or text[:500]
                cls = Conflict if resp.status == 409 else ApiError
                raise cls(resp.status, str(reason), str(message))
            return json.loads(text) if text else {}

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body=body)

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", path, body=patch, content_type="application/merge-patch+json")

    async def delete(self, path: str, propagation: str = "Background") -> bool:
        """Delete; False when it was already gone."""
        try:
            await self.request(
                "DELETE", path, body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
            )
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def list(self, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        return list((await self.request("GET", path, params=params)).get("items") or [])

    async def watch(
        self, path: str, label_selector: str, resource_version: str, timeout_s: int = 300
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events (`{"type": ..., "object": ...}`) of a collection, filtered by labels on the server.

        Ends when the server closes the stream; raises ApiError(410) when `resource_version` is too old."""
        session = await self._client()
        if self.on_request is not None:
            self.on_request("WATCH")
        params = {
            "watch": "true",
            "labelSelector": label_selector,
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_s),
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_read=timeout_s + 30)
        async with session.get(path.lstrip("/"), params=params, timeout=timeout) as resp:
            if resp.status >= 400:
                text = await resp.text()
                raise (Conflict if resp.status == 409 else ApiError)(resp.status, resp.reason or "", text[:500])
            buffer = b""
            async for chunk in resp.content.iter_any():  # lines of any length (a RayJob can be large)
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise ApiError(
                            int(status.get("code") or 500), str(status.get("reason") or ""), str(status.get("message") or "")
                        )
                    yield event

    async def list_with_version(self, path: str, label_selector: str) -> tuple[list[dict[str, Any]], str]:
        """Items and the list's resourceVersion (where a watch starts)."""
        answer = await self.request("GET", path, params={"labelSelector": label_selector})
        return list(answer.get("items") or []), str((answer.get("metadata") or {}).get("resourceVersion") or "")
