#!/usr/bin/env bash
# `make status`: per Kind cluster, the shared LoadBalancer's address, the consumer
# chain ports on it, and the peers ics-discovery wrote for each consumer chain.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

check_kind
check_kubectl
check_python
load_clusters

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for c in "${CLUSTERS[@]}"; do
  if ! cluster_exists "$c"; then
    printf '%s: not running (make kind-up)\n' "$c"
    continue
  fi
  : > "$work/service.json"
  : > "$work/configmaps.json"
  kctl "$c" -n "$LB_NAMESPACE" get service "$LB_SERVICE" -o json --ignore-not-found > "$work/service.json" \
    || die "$c: cannot read the Service $LB_NAMESPACE/$LB_SERVICE"
  kctl "$c" get configmaps --all-namespaces -o json \
    -l app.kubernetes.io/managed-by=ics-discovery,app.kubernetes.io/component=peers \
    > "$work/configmaps.json" || die "$c: cannot list the peers ConfigMaps"
  testnet status "$c" "$work/service.json" "$work/configmaps.json"
done
