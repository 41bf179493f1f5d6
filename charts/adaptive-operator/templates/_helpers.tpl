{{/* Names are cut to 63 characters: the limit of a DNS label, which most names must be. */}}
{{- define "adaptive-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "adaptive-operator.fullname" -}}
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

{{- define "adaptive-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "adaptive-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "adaptive-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "adaptive-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: adaptive-operator
{{- end }}

{{- define "adaptive-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "adaptive-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "adaptive-operator.peering" -}}
{{- default (include "adaptive-operator.fullname" .) .Values.peering.name }}
{{- end }}

{{/*
RBAC rules: exactly what the code and kopf call (operator/adaptive_operator/permissions.py;
tests/test_chart.py fails when they differ). Namespaced rules go to a Role per watched namespace
in a namespaced install, to the ClusterRole otherwise; cluster rules always to the ClusterRole.
*/}}
{{- define "adaptive-operator.namespacedRules" -}}
# Our own resources: kopf lists, watches and patches them; the healing ledger is an annotation.
- apiGroups: ["adaptive.dev"]
  resources: ["adaptiveservices"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["adaptive.dev"]
  resources: ["shardsets"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["adaptive.dev"]
  resources: ["adaptiveservices/status", "shardsets/status"]
  verbs: ["patch"]
# What a ShardSet creates blocks its owner's deletion (OwnerReferencesPermissionEnforcement).
- apiGroups: ["adaptive.dev"]
  resources: ["shardsets/finalizers"]
  verbs: ["update"]
# Workloads: rollback and restart patch Deployments; a ShardSet owns its StatefulSets.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "create", "patch", "delete"]
# get: the owners between a Rollout and its pods, read by the ownership check before an eviction.
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["get", "list", "watch"]
# A StatefulSet's earlier templates, for a rollback.
- apiGroups: ["apps"]
  resources: ["controllerrevisions"]
  verbs: ["list"]
- apiGroups: ["apps"]
  resources: ["deployments/scale", "statefulsets/scale"]
  verbs: ["get", "patch"]
{{- range .Values.rbac.scaleTargets }}
# The target itself is read for its UID: the ownership check before evicting its pods.
- apiGroups: [{{ .apiGroup | quote }}]
  resources: [{{ .resource | quote }}]
  verbs: ["get"]
- apiGroups: [{{ .apiGroup | quote }}]
  resources: [{{ printf "%s/scale" .resource | quote }}]
  verbs: ["get", "patch"]
{{- end }}
# Healing reads pods and evicts them (evictions respect PodDisruptionBudgets). A pod of a kind
# other than Deployment or StatefulSet is read fresh, and its owners (a Rollout's ReplicaSets,
# a custom resource) must be readable for its ownership to be established: replicasets `get`
# above, and `get` on each rbac.scaleTargets kind.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods/eviction"]
  verbs: ["create"]
# Credentials of a service's Prometheus: the Secret its spec names, in its own namespace.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# A ShardSet's Services and routing table.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "create", "delete"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "update"]
# Events that explain every action (kopf posts them through the core API).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# Slot migrations.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "create", "delete"]
# An AdaptiveService does not fight an HPA on the same workload.
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "watch"]
# Leader election.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "list", "create", "update"]
{{- end }}

{{- define "adaptive-operator.clusterRules" -}}
# kopf discovers the CRDs it serves and the namespaces it watches.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}

{{/* Namespaces that get a Role in a namespaced install: the watched ones and the release's. */}}
{{- define "adaptive-operator.roleNamespaces" -}}
{{- $all := append (.Values.watch.namespaces | default list) .Release.Namespace -}}
{{- join "," (uniq $all) -}}
{{- end }}

{{- define "adaptive-operator.namespaced" -}}
{{- if and .Values.rbac.namespaced (gt (len .Values.watch.namespaces) 0) -}}true{{- end -}}
{{- end }}

{{/* The image, pinned by digest when one is given (the tag is then ignored). */}}
{{- define "adaptive-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end -}}
{{- end }}
