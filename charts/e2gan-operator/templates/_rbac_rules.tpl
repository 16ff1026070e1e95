{{/*
The requests the operator makes, nothing more: tests/charts/test_install.py records every
request of the operator started from this chart and checks it against these rules.
"namespacedRules" are granted in each watched namespace (Role) in namespaced mode and
cluster-wide (ClusterRole) in cluster mode.
*/}}

{{- define "e2gan-operator.namespacedRules" -}}
# The project's resources: watched and reconciled; kopf keeps its finalizer and
# annotations with patches, the operator writes the status subresource.
- apiGroups: ["e2gan.dev"]
  resources: ["conceptadapters", "conceptbases"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["e2gan.dev"]
  resources: ["conceptadapters/status", "conceptbases/status"]
  verbs: ["patch"]
# The RayJobs' ownerReferences set blockOwnerDeletion: with OwnerReferencesPermissionEnforcement
# the API server requires update on the owner's finalizers subresource to create them.
- apiGroups: ["e2gan.dev"]
  resources: ["conceptadapters/finalizers", "conceptbases/finalizers"]
  verbs: ["update"]
# One RayJob per training run: created, adopted after a restart, suspended by patch,
# deleted when the spec changes or the resource goes away.
- apiGroups: ["ray.io"]
  resources: ["rayjobs"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
# Progress and errors as Kubernetes events (kopf posts core/v1 events).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{- define "e2gan-operator.clusterRules" -}}
# kopf discovers custom resources and notices CRDs added or removed at run time.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end }}
