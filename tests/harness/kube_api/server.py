"""Running the API: in a background thread with its own event loop, or in the foreground."""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web

from .app import KubeApiApp
from .cluster import Cluster
from .rbac import User

T = TypeVar("T")
DEFAULT_TOKEN = "e2gan-emulator-token"


def write_kubeconfig(path: Path, url: str, token: str | None, namespace: str = "default") -> Path:
    """A kubeconfig with one context, `emulator`, authenticating with a bearer token."""
    user: dict[str, Any] = {"token": token} if token else {}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "emulator", "user": user}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator",
                                                      "namespace": namespace}}],
        "current-context": "emulator",
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class KubeApiServer:
    """The emulated API server on 127.0.0.1; `start()` returns once it accepts connections."""

    def __init__(self, port: int = 0, token: str | None = DEFAULT_TOKEN, host: str = "127.0.0.1",
                 history_size: int = 10_000, bookmark_interval: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.api = KubeApiApp(Cluster(history_size), token, bookmark_interval)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def cluster(self) -> Cluster:
        return self.api.cluster

    async def open(self) -> None:
        """Start serving on the current event loop (what the thread and the CLI both use)."""
        self._runner = web.AppRunner(self.api.build(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:  # the bound address tells the port the OS picked
            self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> KubeApiServer:
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.open())
            except BaseException as exc:  # report a failed bind to start(), not to stderr
                ready.set_exception(exc)
                return
            ready.set_result(None)
            loop.run_forever()
            loop.run_until_complete(self.close())
            loop.close()

        self._thread = threading.Thread(target=run, name="kube-api", daemon=True)
        self._thread.start()
        ready.result(timeout=30)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop = None
            self._thread = None

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the server's loop thread (its state is not thread-safe)."""
        if self._loop is None:
            return fn(*args)

        async def invoke() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result(timeout=30)

    def service_account_token(self, namespace: str, name: str) -> str:
        """A bearer token for the ServiceAccount NAMESPACE/NAME, whose requests RBAC authorizes
        against the Roles and bindings stored in the server (see `rbac`)."""
        token = f"sa-{secrets.token_urlsafe(16)}"
        self.api.users[token] = User.service_account(namespace, name)
        return token

    def reset(self) -> None:
        """Delete every object (finalizers ignored) and forget every CRD; watches stay open."""
        self.call(self.cluster.reset)

    def __enter__(self) -> KubeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
