{{/*
Combinations the schema cannot express, refused with a message that names the values.
*/}}
{{- define "ics-validator.validate" -}}
{{- $v := .Values }}
{{- if and $v.publishing.enabled (not $v.publishing.key.existingSecret) (not $v.publishing.key.generate) }}
{{- fail "publishing.enabled needs a signing key: set publishing.key.existingSecret (a Secret you created) or publishing.key.generate=true" }}
{{- end }}
{{- if and $v.publishing.enabled (not $v.provider.grpcUrls) }}
{{- fail "publishing.enabled needs provider.grpcUrls: the service signs and broadcasts edit-validator through a provider gRPC endpoint" }}
{{- end }}
{{- if and $v.publishing.key.existingSecret $v.publishing.key.generate }}
{{- fail "set only one of publishing.key.existingSecret and publishing.key.generate" }}
{{- end }}
{{- if and $v.publishing.enabled $v.publishing.key.generate (not $v.publishing.authzGranter) }}
{{- fail "publishing.key.generate makes a new key, which can act for your validator only as an authz grantee: set publishing.authzGranter to the operator's account address (cosmos1...) and grant the key MsgEditValidator" }}
{{- end }}
{{- if and (not $v.consumers.namespace) (not $v.consumers.peersNamespaces) }}
{{- fail "set consumers.namespace (where the consumer pods run) or, for consumer pods in several namespaces, consumers.peersNamespaces (where the service may write their peers ConfigMaps): with neither, the service could write peers nowhere" }}
{{- end }}
{{- if and $v.publishing.nodeId (or $v.nodeKey.existingSecret $v.nodeKey.generate) }}
{{- fail "set only one of publishing.nodeId and nodeKey (existingSecret or generate): the node ID published is either given or derived from the node key secret" }}
{{- end }}
{{- if and $v.nodeKey.existingSecret $v.nodeKey.generate }}
{{- fail "set only one of nodeKey.existingSecret and nodeKey.generate" }}
{{- end }}
{{- if and (gt (int $v.replicaCount) 1) (not $v.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: two replicas without a leader would both write the same Service ports and ConfigMaps" }}
{{- end }}
{{- if $v.leaderElection.enabled }}
{{- if ge (float64 $v.leaderElection.renewDeadline) (float64 $v.leaderElection.leaseDuration) }}
{{- fail "leaderElection.renewDeadline must be shorter than leaderElection.leaseDuration, or two replicas could both believe they lead" }}
{{- end }}
{{- if ge (mulf (float64 $v.leaderElection.retryPeriod) 1.2) (float64 $v.leaderElection.renewDeadline) }}
{{- fail "leaderElection.retryPeriod must be under leaderElection.renewDeadline / 1.2" }}
{{- end }}
{{- end }}
{{- if and (eq (toString $v.ports.compat) "ics-operator") (ne (toString $v.ports.scheme) "ics-operator") }}
{{- fail "ports.compat=ics-operator needs ports.scheme=ics-operator (the Go implementation's port scheme)" }}
{{- end }}
{{- if and $v.consumers.namespace $v.consumers.peersNamespaces }}
{{- fail "consumers.peersNamespaces is only for consumers.namespace=\"\" (consumer pods in every namespace); with consumers.namespace set, peers are written there" }}
{{- end }}
{{- $restart := eq (include "ics-validator.restartsWorkloads" .) "true" }}
{{- if and $restart (not $v.consumers.restartWorkloads) }}
{{- fail "restart mode (consumers.notify or a consumers.notifyModes entry = restart) rolls only the workloads you name: set consumers.restartWorkloads to your consumer Deployments/StatefulSets, e.g. --set-json 'consumers.restartWorkloads=[{\"kind\":\"StatefulSet\",\"name\":\"neutron-node\"}]' (the service may update those and no other)" }}
{{- end }}
{{- if and $v.consumers.restartWorkloads (not $restart) }}
{{- fail "consumers.restartWorkloads is only for restart mode: no chain is notified by restart (consumers.notify, consumers.notifyModes)" }}
{{- end }}
{{- $peersNs := include "ics-validator.peersNamespaces" . | fromJsonArray }}
{{- range $w := $v.consumers.restartWorkloads }}
{{- $ns := default $v.consumers.namespace $w.namespace }}
{{- if not $ns }}
{{- fail (printf "consumers.restartWorkloads: %s %s needs a namespace (consumers.namespace is empty): one of consumers.peersNamespaces" $w.kind $w.name) }}
{{- end }}
{{- if not (has $ns $peersNs) }}
{{- fail (printf "consumers.restartWorkloads: %s %s is in namespace %s, where the service serves no consumer pods; use %s" $w.kind $w.name $ns (join ", " $peersNs)) }}
{{- end }}
{{- end }}
{{- if ge (int $v.api.maxStreams) (int $v.api.maxConcurrentRpcs) }}
{{- fail "api.maxStreams must be below api.maxConcurrentRpcs: open WatchPeers streams would leave no room for other calls" }}
{{- end }}
{{- if and $v.api.tls.clientCaSecret (not $v.api.tls.existingSecret) }}
{{- fail "api.tls.clientCaSecret (mutual TLS) needs the server's own certificate: set api.tls.existingSecret" }}
{{- end }}
{{- if and $v.metrics.serviceMonitor.enabled (not $v.metrics.service.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.service.enabled=true (the ServiceMonitor scrapes that Service)" }}
{{- end }}
{{- if and $v.metrics.serviceMonitor.enabled (not (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor")) }}
{{- fail "metrics.serviceMonitor.enabled needs the Prometheus Operator's monitoring.coreos.com/v1 ServiceMonitor API in the cluster (for helm template: --api-versions monitoring.coreos.com/v1/ServiceMonitor)" }}
{{- end }}
{{- if and $v.metrics.prometheusRule.enabled (not (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/PrometheusRule")) }}
{{- fail "metrics.prometheusRule.enabled needs the Prometheus Operator's monitoring.coreos.com/v1 PrometheusRule API in the cluster (for helm template: --api-versions monitoring.coreos.com/v1/PrometheusRule; without the operator use docs/alerts.rules.yaml)" }}
{{- end }}
{{- end }}
