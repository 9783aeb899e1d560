{{/*
Names, labels and the settings-derived facts several templates share.
*/}}

{{- define "ics-validator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ics-validator.fullname" -}}
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

{{- define "ics-validator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ics-validator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ics-validator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ics-validator.labels" -}}
helm.sh/chart: {{ include "ics-validator.chart" . }}
{{ include "ics-validator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ics-peer-discovery
{{- end }}

{{- define "ics-validator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ics-validator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ics-validator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Namespace of the shared LoadBalancer Service and its EndpointSlices: its own by default. */}}
{{- define "ics-validator.serviceNamespace" -}}
{{- default (printf "%s-lb" .Release.Namespace | trunc 63 | trimSuffix "-") .Values.loadBalancer.namespace }}
{{- end }}

{{/* The consumer workloads restart mode may roll, by namespace and kind: {ns: {Deployment: [names]}}. */}}
{{- define "ics-validator.restartWorkloads" -}}
{{- $out := dict }}
{{- range $w := .Values.consumers.restartWorkloads }}
{{- $ns := default $.Values.consumers.namespace $w.namespace }}
{{- $byKind := get $out $ns | default dict }}
{{- $_ := set $byKind $w.kind (append (get $byKind $w.kind | default list) $w.name | uniq | sortAlpha) }}
{{- $_ := set $out $ns $byKind }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* The Lease lives beside the Deployment. */}}
{{- define "ics-validator.leaseNamespace" -}}
{{- .Release.Namespace }}
{{- end }}

{{/* Namespaces where peers ConfigMaps are written and consumer workloads rolled. */}}
{{- define "ics-validator.peersNamespaces" -}}
{{- if .Values.consumers.namespace }}
{{- list .Values.consumers.namespace | toJson }}
{{- else }}
{{- .Values.consumers.peersNamespaces | uniq | sortAlpha | toJson }}
{{- end }}
{{- end }}

{{/* The Secret the consumer node keys are derived from; empty: none. */}}
{{- define "ics-validator.nodeKeySecret" -}}
{{- if .Values.nodeKey.existingSecret }}
{{- .Values.nodeKey.existingSecret }}
{{- else if .Values.nodeKey.generate }}
{{- printf "%s-node-key-secret" (include "ics-validator.fullname" .) }}
{{- end }}
{{- end }}

{{- define "ics-validator.nodeKeySecretKey" -}}
{{- ternary .Values.nodeKey.existingSecretKey "secret" (not (empty .Values.nodeKey.existingSecret)) }}
{{- end }}

{{/* "true" when some chain is notified by rolling its workload. */}}
{{- define "ics-validator.restartsWorkloads" -}}
{{- $restart := eq .Values.consumers.notify "restart" }}
{{- range $chain, $mode := .Values.consumers.notifyModes }}
{{- if eq $mode "restart" }}{{ $restart = true }}{{ end }}
{{- end }}
{{- $restart }}
{{- end }}

{{/* "true" when some chain is notified in notify mode `mode` (dict "root" . "mode" NAME). */}}
{{- define "ics-validator.notifies" -}}
{{- $on := eq .root.Values.consumers.notify .mode }}
{{- range $chain, $m := .root.Values.consumers.notifyModes }}
{{- if eq $m $.mode }}{{ $on = true }}{{ end }}
{{- end }}
{{- $on }}
{{- end }}

{{/* Name of the Secret holding the publishing key ("" when publishing is off). */}}
{{- define "ics-validator.publishKeySecret" -}}
{{- if .Values.publishing.enabled }}
{{- if .Values.publishing.key.existingSecret }}
{{- .Values.publishing.key.existingSecret }}
{{- else if .Values.publishing.key.generate }}
{{- printf "%s-publish-key" (include "ics-validator.fullname" .) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ics-validator.publishKeySecretKey" -}}
{{- if .Values.publishing.key.existingSecret }}
{{- .Values.publishing.key.existingSecretKey }}
{{- else }}
{{- "signing-key" }}
{{- end }}
{{- end }}

{{/*
RBAC rules by namespace, derived from the Kubernetes requests the service makes:
- lbmanager.service_control: list + create Services, update (PUT) the named Service;
- discovery.own_endpoint: list + watch the named Service (by field selector): its address
  is published when publishing is on, and compared with the chain's in any case (metrics);
- lbmanager.endpointslice_control: get, list, create, update, delete EndpointSlices;
- lbmanager.leader: create the Lease, get + update the named Lease;
- lbmanager.pods: list + watch pods (one namespace, or all: then a ClusterRole);
- discovery.service: list peers ConfigMaps in consumers.namespace or each of
  consumers.peersNamespaces (by label) to delete stale ones;
- discovery.publish: get, list, create, update, delete peers ConfigMaps, and
  when a chain is notified by restart: list Deployments/StatefulSets (to find the
  ones running the chain), get + update only those named in consumers.restartWorkloads;
- discovery.operator_notify / operator_watch: list, watch, get (re-read after a
  conflict) and patch CosmosFullNodes when a chain is notified by cosmos-operator,
  ChainNodeSets and ChainNodes when one is notified by cosmopilot.
*/}}
{{- define "ics-validator.namespacedRules" -}}
{{- $rules := dict }}
{{- $svcNs := include "ics-validator.serviceNamespace" . }}
{{- $named := list "update" "watch" }}
{{- $svc := list
  (dict "apiGroups" (list "") "resources" (list "services") "verbs" (list "list" "create"))
  (dict "apiGroups" (list "") "resources" (list "services") "resourceNames" (list .Values.loadBalancer.name) "verbs" $named)
  (dict "apiGroups" (list "discovery.k8s.io") "resources" (list "endpointslices") "verbs" (list "get" "list" "create" "update" "delete")) }}
{{- $_ := set $rules $svcNs (concat (get $rules $svcNs | default list) $svc) }}
{{- if .Values.leaderElection.enabled }}
{{- $leaseNs := include "ics-validator.leaseNamespace" . }}
{{- $lease := list
  (dict "apiGroups" (list "coordination.k8s.io") "resources" (list "leases") "verbs" (list "create"))
  (dict "apiGroups" (list "coordination.k8s.io") "resources" (list "leases") "resourceNames" (list .Values.leaderElection.leaseName) "verbs" (list "get" "update")) }}
{{- $_ := set $rules $leaseNs (concat (get $rules $leaseNs | default list) $lease) }}
{{- end }}
{{- if .Values.consumers.namespace }}
{{- $pods := list (dict "apiGroups" (list "") "resources" (list "pods") "verbs" (list "list" "watch")) }}
{{- $_ := set $rules .Values.consumers.namespace (concat (get $rules .Values.consumers.namespace | default list) $pods) }}
{{- end }}
{{- $restart := eq (include "ics-validator.restartsWorkloads" .) "true" }}
{{- $cosmosOperator := eq (include "ics-validator.notifies" (dict "root" . "mode" "cosmos-operator")) "true" }}
{{- $cosmopilot := eq (include "ics-validator.notifies" (dict "root" . "mode" "cosmopilot")) "true" }}
{{- $workloads := include "ics-validator.restartWorkloads" . | fromJson }}
{{- range $ns := include "ics-validator.peersNamespaces" . | fromJsonArray }}
{{- $peers := list (dict "apiGroups" (list "") "resources" (list "configmaps") "verbs" (list "get" "list" "create" "update" "delete")) }}
{{- if $restart }}
{{- $peers = append $peers (dict "apiGroups" (list "apps") "resources" (list "deployments" "statefulsets") "verbs" (list "list")) }}
{{- $named := get $workloads $ns | default dict }}
{{- /* Never an empty resourceNames: that would mean every object. */}}
{{- range $kind, $resource := dict "Deployment" "deployments" "StatefulSet" "statefulsets" }}
{{- with get $named $kind }}
{{- $peers = append $peers (dict "apiGroups" (list "apps") "resources" (list $resource) "resourceNames" . "verbs" (list "get" "update")) }}
{{- end }}
{{- end }}
{{- end }}
{{- if $cosmosOperator }}
{{- $peers = append $peers (dict "apiGroups" (list "cosmos.strange.love") "resources" (list "cosmosfullnodes") "verbs" (list "get" "list" "watch" "patch")) }}
{{- end }}
{{- if $cosmopilot }}
{{- $peers = append $peers (dict "apiGroups" (list "cosmopilot.voluzi.com") "resources" (list "chainnodesets" "chainnodes") "verbs" (list "get" "list" "watch" "patch")) }}
{{- end }}
{{- $_ := set $rules $ns (concat (get $rules $ns | default list) $peers) }}
{{- end }}
{{- toJson $rules }}
{{- end }}

{{/* Cluster-scoped objects need names unique across releases in every namespace. */}}
{{- define "ics-validator.clusterName" -}}
{{- printf "%s:%s" .Release.Namespace (include "ics-validator.fullname" .) }}
{{- end }}
