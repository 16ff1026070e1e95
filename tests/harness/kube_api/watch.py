"""Watch streams: `application/json`, one `{"type": ..., "object": ...}` per line.

Resuming from a resourceVersion replays the retained history after it (410 Gone as an
ERROR event when it is older than the history); no resourceVersion (or "0") starts with
synthetic ADDED events for the current state. Selector watches see objects enter (ADDED)
and leave (DELETED) the selection as the real server shows them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .cluster import Cluster
from .errors import bad_request
from .resources import ResourceType
from .selectors import Predicate
from .storage import Event

Render = Callable[[dict[str, Any]], dict[str, Any]]
_POLL_SECONDS = 1.0  # how often an idle stream checks whether its client went away


class WatchStream:
    """A subscriber: turns storage events into this watch's events, queued for the response."""

    def __init__(self, namespace: str | None, match: Predicate | None) -> None:
        self.namespace = namespace
        self.match = match
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()

    def translate(self, event: Event) -> tuple[str, dict[str, Any]] | None:
        if self.namespace is not None and event.obj["metadata"].get("namespace", "") != self.namespace:
            return None
        if self.match is None:
            return event.type, event.obj
        if event.type == "DELETED":
            seen = self.match(event.obj) or (event.old is not None and self.match(event.old))
            return ("DELETED", event.obj) if seen else None
        now_in = self.match(event.obj)
        was_in = event.old is not None and self.match(event.old)
        if now_in:
            return ("MODIFIED" if was_in else "ADDED"), event.obj
        return ("DELETED", event.obj) if was_in else None

    def notify(self, event: Event) -> None:
        translated = self.translate(event)
        if translated is not None:
            self.queue.put_nowait(translated)

    def close(self) -> None:
        self.queue.put_nowait(None)


def _line(event_type: str, obj: dict[str, Any]) -> bytes:
    return (json.dumps({"type": event_type, "object": obj}, separators=(",", ":")) + "\n").encode()


def _gone(requested: int, oldest: int) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f"too old resource version: {requested} ({oldest})", "reason": "Expired", "code": 410}


def _bookmark(rt: ResourceType, rv: int, initial_end: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}


async def serve(request: web.Request, cluster: Cluster, rt: ResourceType, namespace: str | None,
                match: Predicate | None, render: Render, streams: set[WatchStream],
                bookmark_interval: float) -> web.StreamResponse:
    query = request.query
    timeout = float(query.get("timeoutSeconds") or 0)
    bookmarks = query.get("allowWatchBookmarks", "").lower() in ("true", "1")
    send_initial = query.get("sendInitialEvents", "").lower() == "true"
    rv_text = query.get("resourceVersion", "")
    if rv_text and not rv_text.isdigit():
        raise bad_request(f'resourceVersion: Invalid value: "{rv_text}": must be an integer')

    stream = WatchStream(namespace, match)
    first: list[tuple[str, dict[str, Any]]] = []
    expired: dict[str, Any] | None = None
    if send_initial or rv_text in ("", "0"):
        items, _, _ = cluster.list(rt, namespace, match)
        first = [("ADDED", obj) for obj in items]
    else:
        events = cluster.store.events_since(rt.key, int(rv_text))
        if events is None:
            expired = _gone(int(rv_text), cluster.store.bucket(rt.key).compacted_rv)
        else:
            first = [t for t in map(stream.translate, events) if t is not None]
    # Subscribing before the first await means no event can fall between snapshot and stream.
    if expired is None:
        cluster.store.subscribe(rt.key, stream)
        streams.add(stream)
    response = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        if expired is not None:
            await response.write(_line("ERROR", expired))
            return response
        for event_type, obj in first:
            await response.write(_line(event_type, render(obj)))
        if send_initial and bookmarks:
            await response.write(_line("BOOKMARK", _bookmark(rt, cluster.store.rv, initial_end=True)))
        await _pump(request, response, cluster, rt, stream, render, timeout, bookmarks, bookmark_interval)
    except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        cluster.store.unsubscribe(rt.key, stream)
        streams.discard(stream)
    return response


async def _pump(request: web.Request, response: web.StreamResponse, cluster: Cluster, rt: ResourceType,
                stream: WatchStream, render: Render, timeout: float, bookmarks: bool,
                bookmark_interval: float) -> None:
    deadline = time.monotonic() + timeout if timeout > 0 else None
    next_bookmark = time.monotonic() + bookmark_interval
    while True:
        now = time.monotonic()
        wait = _POLL_SECONDS
        if deadline is not None:
            if now >= deadline:
                return
            wait = min(wait, deadline - now)
        if bookmarks:
            wait = min(wait, max(next_bookmark - now, 0))
        try:
            item = await asyncio.wait_for(stream.queue.get(), timeout=wait)
        except TimeoutError:
            if request.transport is None or request.transport.is_closing():
                return
            if bookmarks and time.monotonic() >= next_bookmark:
                await response.write(_line("BOOKMARK", _bookmark(rt, cluster.store.rv)))
                next_bookmark = time.monotonic() + bookmark_interval
            continue
        if item is None:
            return
        await response.write(_line(item[0], render(item[1])))
