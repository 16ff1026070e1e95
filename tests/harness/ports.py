"""Loopback ports handed to child processes without a bind-and-release race.

Binding port 0, closing the socket and passing the number on leaves a window in which any
other process (another test's server, an outgoing connection) can take the port. Here the
parent keeps its socket bound, with SO_REUSEADDR and without listening, for as long as the
child needs the port: the kernel never hands a bound port to anyone else, while the child's
server (aiohttp, http.server and Go all set SO_REUSEADDR) may still bind and listen on it.
"""

from __future__ import annotations

import socket


class ReservedPort:
    """A port on 127.0.0.1 that nobody but a SO_REUSEADDR server can bind until `release()`."""

    def __init__(self) -> None:
        self._socket: socket.socket | None = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]

    def release(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    @property
    def held(self) -> bool:
        return self._socket is not None

    def __repr__(self) -> str:
        return f"ReservedPort({self.port}, held={self.held})"
