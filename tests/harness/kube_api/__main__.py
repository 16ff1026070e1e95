"""`python -m tests.harness.kube_api --port N [--kubeconfig PATH]`: serve until interrupted.

Prints one line, `kube-api listening on http://127.0.0.1:N`, once it accepts connections,
so a parent process can wait for it (and learn the port when `--port 0`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from .server import DEFAULT_TOKEN, KubeApiServer, write_kubeconfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.kube_api", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for this server here")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="bearer token clients must send ('' for none)")
    parser.add_argument("--namespace", default="default", help="the kubeconfig context's namespace")
    parser.add_argument("--bookmark-interval", type=float, default=10.0,
                        help="seconds between BOOKMARK events on watches that allow them")
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    server = KubeApiServer(args.port, args.token or None, bookmark_interval=args.bookmark_interval)
    await server.open()
    if args.kubeconfig:
        write_kubeconfig(args.kubeconfig, server.url, server.token, args.namespace)
    print(f"kube-api listening on {server.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
