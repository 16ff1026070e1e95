"""The operator's entry point:

    kopf run -m e2gan_operator.main --liveness=http://0.0.0.0:8080/healthz --all-namespaces
    kopf run -m e2gan_operator.main --liveness=http://0.0.0.0:8080/healthz --namespace=team-a --namespace=team-b

Importing this module reads the settings (environment and defaults file) and registers every
handler in kopf's default registry: login (service account, then kubeconfig), start-up
settings, the ConceptAdapter and ConceptBase reconcilers, the finalizer, RayJob watches.
"""

from __future__ import annotations

import kopf

from e2gan_operator.handlers import Runtime, register
from e2gan_operator.settings import OperatorSettings

runtime = Runtime.create(OperatorSettings.from_env())
register(kopf.get_default_registry(), runtime)
