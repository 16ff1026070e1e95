"""A tiny kopf operator for `Widget`s (see `fixtures.WIDGET_CRD`): proof that kopf runs
against the emulated API server, and a template for starting a real operator against it.

    KUBECONFIG=<kube_api.kubeconfig> python -m kopf run --standalone -n <namespace> -m tests.harness.sample_operator

Its create handler patches `.status` (through the `/status` subresource, as kopf does
when discovery lists `widgets/status`); its delete handler makes kopf put a finalizer on
every widget, and posts a `WidgetDeleted` event before the finalizer is released.
"""

from __future__ import annotations

from typing import Any

import kopf

GROUP, VERSION, PLURAL = "harness.e2gan.dev", "v1", "widgets"
# Names of the widgets whose delete handler ran, for in-process tests (KopfRunner).
DELETED: list[str] = []


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # kopf's default login goes through the kubernetes client, which resolves $KUBECONFIG
    # when first imported; these helpers read the service account or $KUBECONFIG now.
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = 20  # logging.INFO: post info-level k8s events, not debug ones
    settings.watching.server_timeout = 60


@kopf.on.create(GROUP, VERSION, PLURAL)
def created(spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> dict[str, Any]:
    patch.status["phase"] = "Ready"
    patch.status["conditions"] = [{"type": "Ready", "status": "True", "reason": "Created"}]
    return {"concept": spec.get("concept")}


@kopf.on.delete(GROUP, VERSION, PLURAL)
def deleted(name: str, body: kopf.Body, **_: Any) -> None:
    DELETED.append(name)
    kopf.info(body, reason="WidgetDeleted", message=f"widget {name} released")
