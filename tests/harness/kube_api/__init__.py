"""An emulated Kubernetes API server over real HTTP on 127.0.0.1, for tests.

kopf, the official `kubernetes` client and `kubectl` all drive it. It serves the built-in
kinds listed in `resources.BUILTINS` and every CRD applied to it, with:
server-set metadata (uid, resourceVersion, generation, creationTimestamp, generateName),
resumable JSON watches with bookmarks and initial-events streaming, merge /
strategic-merge / JSON / apply patches, PUT with 409 on a stale resourceVersion, `/status`
subresources, finalizers and deletionTimestamp, ownerReference cascading deletion
(background, foreground, orphan), namespace and CRD termination, label and field
selectors, pagination, dry runs, Table output with CRD printer columns, OpenAPI v3 stubs
(enough for `kubectl apply`'s server-side validation and `kubectl explain`), custom
resources pruned, defaulted and validated against their CRD's openAPIV3Schema (CEL rules
included, see `cel`), built-in kinds checked against Kubernetes' own schemas (see
`builtin_schema`), and `kubectl create <kind>`'s protobuf bodies for a few kinds (see
`protobuf`).

RBAC for the tokens `KubeApiServer.service_account_token()` hands out: their requests are
authorized against the stored Roles and bindings (see `rbac`); the admin token and anonymous
requests (kubectl never sends a bearer token over plain HTTP) act as `system:masters`, and a
wrong token gets 401.

Not emulated: controllers (pods never run, deployments never scale), admission webhooks,
TLS (plain HTTP), aggregated ClusterRoles, aggregated discovery, OpenAPI v2,
managedFields and real server-side-apply field ownership (an apply patch merges the
applied configuration in), CRD conversion (versions share storage, as with
`conversion: None`), the `scale` subresource, `kubectl logs/exec/port-forward`.

Usage:

    with KubeApiServer() as server:            # or the `kube_api` pytest fixture
        write_kubeconfig(path, server.url, server.token)

or as a process: `python -m tests.harness.kube_api --port 0 --kubeconfig /tmp/kubeconfig`
(prints `kube-api listening on http://127.0.0.1:<port>` once it serves).

Running kopf against it: kopf must log in with the kubeconfig's server URL and token.
kopf's default login goes through the `kubernetes` client, which resolves `$KUBECONFIG`
when first imported, so give the operator its own login handler that reads it at call time:

    @kopf.on.login()
    def login(**kwargs):
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

then `KUBECONFIG=<file> python -m kopf run --standalone -n <namespace> -m <module>` (use
`python -m kopf`, or set PYTHONPATH: the `kopf` script does not put the working directory
on the import path), or `kopf.testing.KopfRunner([...])` in-process: the server has its own
thread and event loop, so the two never share a loop. See `tests/harness/sample_operator.py`.
"""

from .app import KubeApiApp
from .cluster import Cluster
from .server import DEFAULT_TOKEN, KubeApiServer, write_kubeconfig

__all__ = ["DEFAULT_TOKEN", "Cluster", "KubeApiApp", "KubeApiServer", "write_kubeconfig"]
