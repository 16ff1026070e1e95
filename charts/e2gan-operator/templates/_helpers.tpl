{{/* Names, labels and the values checks the schema cannot express. */}}

{{- define "e2gan-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "e2gan-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "e2gan-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "e2gan-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "e2gan-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "e2gan-operator.labels" -}}
helm.sh/chart: {{ include "e2gan-operator.chart" . }}
{{ include "e2gan-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: e2gan
{{- end }}

{{- define "e2gan-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "e2gan-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false: name an existing ServiceAccount" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* image reference: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "e2gan-operator.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag) }}
{{- end }}
{{- end }}

{{- define "e2gan-operator.image" -}}
{{- include "e2gan-operator.imageRef" (dict "image" .Values.image "appVersion" .Chart.AppVersion) }}
{{- end }}

{{- define "e2gan-operator.trainerImage" -}}
{{- include "e2gan-operator.imageRef" (dict "image" .Values.trainer.image "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/* Name of the peering object the operator joins. */}}
{{- define "e2gan-operator.peeringName" -}}
{{- include "e2gan-operator.fullname" . }}
{{- end }}

{{/* Watched namespaces in namespaced mode, checked once; cluster mode gives an empty list. */}}
{{- define "e2gan-operator.watchedNamespaces" -}}
{{- if eq .Values.watch.mode "namespaced" }}
{{- if not .Values.watch.namespaces }}
{{- fail "watch.namespaces: list at least one namespace when watch.mode is namespaced (or set watch.mode: cluster)" }}
{{- end }}
{{- toJson (uniq .Values.watch.namespaces) }}
{{- else }}
{{- toJson list }}
{{- end }}
{{- end }}

{{/* Checksum of the operator defaults, so that a values change rolls the pod. */}}
{{- define "e2gan-operator.configChecksum" -}}
{{- include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end }}
