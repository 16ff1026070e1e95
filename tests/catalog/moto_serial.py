"""Run moto's S3 server for tests: `python moto_serial.py PORT` (127.0.0.1 only; PORT 0 picks a free port,
printed as `listening on PORT`).

Two differences from `moto_server`, both to make moto behave like MinIO/AWS:
- one request at a time: moto checks If-Match and then writes in two steps, so a threaded
  server could let two conditional PUTs both pass;
- with authentication on, moto signs the raw query string, so a query with an unencoded '/'
  (as botocore sends `prefix=a/b`) or one encoded differently fails its signature check;
  AWS canonicalises the query first, and so does this patch.
"""

from __future__ import annotations

import sys
from urllib.parse import parse_qsl, quote, urlencode


def _canonical_query_patch() -> None:
    from moto.iam import access_control

    original = access_control.IAMRequestBase._create_aws_request

    def create_aws_request(self):  # noqa: ANN001, ANN202 - moto's own signature
        path, sep, query = self._path.partition("?")
        if sep:
            pairs = parse_qsl(query.replace("+", "%2B"), keep_blank_values=True)
            self._path = f"{path}?{urlencode(pairs, quote_via=quote, safe='-_.~')}"
        return original(self)

    access_control.IAMRequestBase._create_aws_request = create_aws_request


def main() -> None:
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    _canonical_query_patch()
    # Port 0: the server binds a free port itself and says which (no bind-and-release race).
    server = make_server("127.0.0.1", int(sys.argv[1]), DomainDispatcherApplication(create_backend_app), threaded=False)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
