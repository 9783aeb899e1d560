#!/usr/bin/env bash
# `make image`: build the service image (or, with --provider, the provider chain node
# image for the Kind testnet) from the repository's Dockerfile. Needs a running
# Docker engine; says so plainly when there is none.
#
#   scripts/clusters/image.sh [--provider] [TAG]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

target=service
if [ "${1:-}" = "--provider" ]; then
  target=provider
  shift
fi
default_tag=$IMAGE
if [ "$target" = provider ]; then default_tag=$PROVIDER_IMAGE; fi
tag=${1:-$default_tag}

check_docker
log "building $tag (Dockerfile target $target)"
docker build --target "$target" --tag "$tag" "$REPO"
