#!/usr/bin/env bash
# `make kind-down`: delete the Kind testnet's clusters, its local state (genesis,
# keys, pool plan) and the `kind` docker network once nothing uses it. Safe to
# run when nothing (or only part) of the testnet exists.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

check_docker
check_kind
load_clusters

for c in "${CLUSTERS[@]}"; do
  if cluster_exists "$c"; then
    log "deleting cluster $c"
    kind delete cluster --name "$c"
  else
    log "cluster $c does not exist"
  fi
done

if [ -d "$STATE_DIR" ]; then
  log "removing $STATE_DIR"
  rm -rf "$STATE_DIR"
fi

if attached=$(docker network inspect kind --format '{{len .Containers}}' 2>/dev/null); then
  if [ "$attached" = 0 ]; then
    log "removing the docker network kind"
    docker network rm kind > /dev/null
  else
    log "keeping the docker network kind: $attached other container(s) still use it"
  fi
fi
log "testnet removed"
