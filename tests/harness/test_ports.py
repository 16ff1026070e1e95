"""The port reservation the end-to-end tests hand to child processes (tests/harness/ports.py)."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request

import pytest

from tests.harness.ports import ReservedPort


def test_a_reserved_port_is_never_handed_out_and_refuses_plain_binds() -> None:
    reserved = ReservedPort()
    try:
        for _ in range(2000):
            with socket.socket() as other:
                other.bind(("127.0.0.1", 0))
                assert other.getsockname()[1] != reserved.port
        with socket.socket() as squatter, pytest.raises(OSError, match="in use"):
            squatter.bind(("127.0.0.1", reserved.port))
    finally:
        reserved.release()
    assert not reserved.held


def test_the_child_server_binds_the_reserved_port_and_serves() -> None:
    reserved = ReservedPort()
    server = (
        "import http.server as h, sys\n"
        "class H(h.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
        f"s = h.HTTPServer(('127.0.0.1', {reserved.port}), H)\n"
        "print('listening', flush=True)\n"
        "s.handle_request()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", server], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "listening"
        with urllib.request.urlopen(f"http://127.0.0.1:{reserved.port}/", timeout=10) as response:
            assert response.read() == b"ok"
        assert child.wait(timeout=10) == 0
    finally:
        child.kill()
        reserved.release()
