#!/usr/bin/env bash
# `make kind-up`: the three-cluster Kind testnet (alice, bob, charlie) on the shared
# `kind` docker network, each cluster with:
#   - MetalLB, its address pool planned by `ics-discovery metallb-pools` inside the
#     network's IPv4 subnet, never overlapping another cluster's;
#   - one validator node of the provider chain (namespace provider), at the first
#     address of the pool, peered with the other clusters' nodes;
#   - the ics-validator chart (release ics-discovery), its LoadBalancer at the
#     second address of the pool;
#   - a Job that publishes that address as the validator's endpoint on chain
#     (retrying until the chain, which needs all three nodes, produces blocks).
# Idempotent: every step checks or converges, so running it again changes nothing.
# State (genesis, keys, the pool plan) lives in $ICS_KIND_STATE (see lib.sh).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

preflight() {
  check_docker
  check_kind
  check_kubectl
  check_helm
  check_python
  PROVIDER_DAEMON=$(provider_daemon)
  mkdir -p "$STATE_DIR"
  chmod 700 "$STATE_DIR"
}

create_clusters() {
  local c
  load_clusters
  for c in "${CLUSTERS[@]}"; do
    if cluster_exists "$c"; then
      log "cluster $c exists"
      continue
    fi
    log "creating cluster $c"
    local args=(create cluster --name "$c" --wait 120s)
    if [ -n "${ICS_KIND_NODE_IMAGE:-}" ]; then args+=(--image "$ICS_KIND_NODE_IMAGE"); fi
    kind "${args[@]}"
  done
}

# The pools are planned once, from the network as it was then, and kept with
# each cluster's manifests: planning again after other containers joined the
# network could move a pool, and with it addresses already published on chain.
plan_pools() {
  local clusters_csv c
  clusters_csv=$(IFS=,; printf '%s' "${CLUSTERS[*]}")
  local now="$WORK/network.json"
  docker network inspect kind > "$now" || die "cannot inspect the docker network 'kind' (kind creates it with the first cluster)"
  if [ -f "$STATE_DIR/metallb-pools.json" ]; then
    ics_discovery metallb-pools --network-json "$now" --clusters "$clusters_csv" --json \
      > "$WORK/metallb-pools.json" || die "the kind network has no room for the pools any more"
    testnet same-subnet "$STATE_DIR/metallb-pools.json" "$WORK/metallb-pools.json" || exit 1
    log "reusing the MetalLB pools planned before"
    return 0
  fi
  ics_discovery metallb-pools --network-json "$now" --clusters "$clusters_csv" --json \
    > "$WORK/metallb-pools.json" || die "no MetalLB pools for $clusters_csv in the kind network (see above)"
  # One plan for all clusters, then each cluster's objects into its own file.
  ics_discovery metallb-pools --network-json "$now" --clusters "$clusters_csv" --manifests \
    > "$WORK/metallb.yaml"
  testnet split-manifests "$WORK/metallb.yaml" "$WORK" > /dev/null
  for c in "${CLUSTERS[@]}"; do
    [ -s "$WORK/metallb-$c.yaml" ] || die "the MetalLB plan has no pool for $c"
  done
  rm -f "$WORK/metallb.yaml"
  mv "$WORK"/metallb-*.yaml "$now" "$STATE_DIR/"
  # The plan last: its presence means the plan is complete.
  mv "$WORK/metallb-pools.json" "$STATE_DIR/metallb-pools.json"
  log "MetalLB pools planned: $STATE_DIR/metallb-pools.json"
}

apply_pools() {
  local c=$1
  kctl "$c" apply -f "$STATE_DIR/metallb-$c.yaml"
}

install_metallb() {
  local c=$1
  log "$c: MetalLB $METALLB_VERSION"
  kctl "$c" apply -f "$METALLB_MANIFEST" > /dev/null
  kctl "$c" -n metallb-system rollout status deployment/controller --timeout=300s > /dev/null
  kctl "$c" -n metallb-system rollout status daemonset/speaker --timeout=300s > /dev/null
  # The controller's webhook may refuse pools for a few seconds after it is ready.
  retry 10 "${ICS_KIND_RETRY_PAUSE:-5}" apply_pools "$c" \
    || die "$c: MetalLB did not accept the address pool"
}

build_images() {
  "$CLUSTERS_DIR/image.sh" "$IMAGE"
  "$CLUSTERS_DIR/image.sh" --provider "$PROVIDER_IMAGE"
  local c
  for c in "${CLUSTERS[@]}"; do
    # kind skips the copy when the node already has this exact image.
    kind load docker-image "$IMAGE" "$PROVIDER_IMAGE" --name "$c"
  done
}

build_genesis() {
  local validators
  validators=$(IFS=,; printf '%s' "${CLUSTERS[*]}")
  testnet genesis --dir "$STATE_DIR/provider" --chain-id "$CHAIN_ID" \
    --validators "$validators" --daemon "$PROVIDER_DAEMON"
}

namespaces() {
  local c=$1
  kctl "$c" apply -f - <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $NAMESPACE
---
apiVersion: v1
kind: Namespace
metadata:
  name: $CONSUMER_NAMESPACE
EOF
}

deploy_provider_node() {
  local c=$1
  local home="$STATE_DIR/provider/$c"
  local ip endpoint peers
  ip=$(testnet pool-address "$STATE_DIR/metallb-pools.json" "$c" 0)
  endpoint=$(testnet pool-address "$STATE_DIR/metallb-pools.json" "$c" 1)
  peers=$(testnet peers "$STATE_DIR/provider" "$STATE_DIR/metallb-pools.json" "$c")
  log "$c: provider node at $ip"
  # One node key for all of this validator's consumer nodes: the endpoint on
  # chain carries a single node=, published by the Job below.
  local node_key="$STATE_DIR/consumer/$c/node_key.json" consumer_node_id
  if [ ! -f "$node_key" ]; then
    mkdir -p "$STATE_DIR/consumer/$c"
    chmod 700 "$STATE_DIR/consumer" "$STATE_DIR/consumer/$c"
    ics_discovery nodekey generate --out "$node_key" > /dev/null
  fi
  consumer_node_id=$(ics_discovery nodekey id "$node_key")
  # `kubectl create --dry-run | kubectl apply`: create, or update when it changed.
  {
    kctl "$c" -n "$NAMESPACE" create secret generic provider-node-keys --dry-run=client -o yaml \
      --from-file=node_key.json="$home/config/node_key.json" \
      --from-file=priv_validator_key.json="$home/config/priv_validator_key.json"
    echo ---
    kctl "$c" -n "$NAMESPACE" create secret generic validator-signing-key --dry-run=client -o yaml \
      --from-file=signing-key="$home/signing.key"
    echo ---
    kctl "$c" -n "$NAMESPACE" create configmap provider-genesis --dry-run=client -o yaml \
      --from-file=genesis.json="$STATE_DIR/provider/genesis.json"
    echo ---
    # For the consumer node workloads, to mount as their config/node_key.json.
    kctl "$c" -n "$CONSUMER_NAMESPACE" create secret generic consumer-node-key \
      --dry-run=client -o yaml --from-file=node_key.json="$node_key"
  } | kctl "$c" apply -f -
  helm upgrade --install provider-node "$CLUSTERS_DIR/provider-node" \
    --kube-context "$(context "$c")" --namespace "$NAMESPACE" \
    --set-string moniker="$c" \
    --set-string loadBalancerIP="$ip" \
    --set-json persistentPeers="$peers" \
    --set-string image.repository="${PROVIDER_IMAGE%:*}" \
    --set-string image.tag="${PROVIDER_IMAGE##*:}" \
    --set publish.enabled=true \
    --set-string publish.host="$endpoint" \
    --set-string publish.nodeId="$consumer_node_id" \
    --set-string publish.image="$IMAGE" > /dev/null
}

install_chart() {
  local c=$1
  local ip operator
  ip=$(testnet pool-address "$STATE_DIR/metallb-pools.json" "$c" 1)
  operator=$(testnet info "$STATE_DIR/provider" "$c" operator)
  log "$c: ics-discovery, LoadBalancer at $ip"
  local values="$REPO/helm/ics-validator/examples/values-$c.yaml"
  local args=()
  if [ -f "$values" ]; then args+=(--values "$values"); fi
  helm upgrade --install "$RELEASE" "$REPO/helm/ics-validator" \
    --kube-context "$(context "$c")" --namespace "$NAMESPACE" \
    "${args[@]}" \
    --set-string provider.operatorAddress="$operator" \
    --set-string loadBalancer.ip="$ip" \
    --set-string image.repository="${IMAGE%:*}" \
    --set-string image.tag="${IMAGE##*:}" > /dev/null
}

wait_for_chain() {
  local c
  for c in "${CLUSTERS[@]}"; do
    kctl "$c" -n "$NAMESPACE" rollout status statefulset/provider-node --timeout=600s > /dev/null \
      || die "$c: the provider node did not become ready (kubectl --context $(context "$c") -n $NAMESPACE logs statefulset/provider-node)"
  done
}

wait_for_publication() {
  local c
  for c in "${CLUSTERS[@]}"; do
    kctl "$c" -n "$NAMESPACE" wait --for=condition=complete job \
      -l app.kubernetes.io/name=publish-endpoint --timeout=600s > /dev/null \
      || die "$c: publishing the endpoint did not finish (kubectl --context $(context "$c") -n $NAMESPACE logs job -l app.kubernetes.io/name=publish-endpoint)"
  done
}

main() {
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  preflight
  create_clusters
  plan_pools
  build_images
  build_genesis
  local c
  for c in "${CLUSTERS[@]}"; do
    install_metallb "$c"
    namespaces "$c"
    deploy_provider_node "$c"
    install_chart "$c"
  done
  wait_for_chain
  wait_for_publication
  log "testnet is up: ${CLUSTERS[*]} (make status shows addresses, ports and peers)"
}

main "$@"
