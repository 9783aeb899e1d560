#!/usr/bin/env bash
# Builds or installs every external binary the tests need, cached outside the
# repository by component, version and a hash of the wrapper module that builds
# it. Idempotent: a component whose cache entry is complete is not rebuilt.
#
#   scripts/tools.sh [COMPONENT...]   build (all components by default)
#   scripts/tools.sh --path           print the directory holding the binaries
#
# ShellCheck is not built: it comes from Debian's packages (apt-get), installed
# only when missing or older than SHELLCHECK_MIN, and linked into the same folder.
# Prometheus and promtool (alert rule tests) likewise come from Debian's
# `prometheus` package, installed only when missing or older than PROMETHEUS_MIN.
# The data plane tests (kube-proxy in network namespaces) need nft, socat and ip,
# from Debian's nftables, socat and iproute2 packages, installed when missing.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${ICS_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ics-peer-discovery/tools}
bindir="$cache/bin"

KUBE_VERSION=1.33.13
ETCD_VERSION=3.5.21
HELM_VERSION=3.17.4
ICS_VERSION=7.0.1
GRPCURL_VERSION=1.9.3
COSMOS_OPERATOR_VERSION=0.25.1
METALLB_VERSION=0.15.2
SHELLCHECK_MIN=0.8.0
PROMETHEUS_MIN=2.37.0

export GOTOOLCHAIN=local
export GOFLAGS="-buildvcs=false -mod=readonly"

log() { printf '[tools] %s\n' "$*" >&2; }

# key NAME VERSION [DIR]: cache entry name, including a hash of the build
# recipe and of the wrapper module's files, so that either change rebuilds.
key() {
  local name=$1 version=$2 dir=${3:-}
  local h
  h=$({ declare -f "build_$name"; go env GOVERSION
        if [ -n "$dir" ]; then
          (cd "$repo/$dir" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) -print0 \
            | sort -z | xargs -0 sha256sum)
        fi; } | sha256sum | cut -c1-12)
  printf '%s-%s-%s' "$name" "$version" "$h"
}

# link ENTRY BIN...: expose the binaries of a finished cache entry in $bindir.
link() {
  local entry=$1; shift
  mkdir -p "$bindir"
  for b in "$@"; do ln -sfn "$cache/$entry/$b" "$bindir/$b"; done
}

# build ENTRY CMD...: run the build into a temporary folder, then publish it
# atomically, so an interrupted build never leaves a half entry behind.
build() {
  local entry=$1; shift
  if [ -f "$cache/$entry/.complete" ]; then return 0; fi
  local tmp="$cache/.tmp-$entry-$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  local start=$SECONDS
  log "building $entry (this can take several minutes on a cold cache)"
  OUT="$tmp" "$@"
  touch "$tmp/.complete"
  rm -rf "${cache:?}/$entry"; mv "$tmp" "$cache/$entry"
  log "built $entry in $((SECONDS - start))s"
}

build_kube() {
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=v$KUBE_VERSION"
  ld+=" -X k8s.io/component-base/version.gitMajor=${KUBE_VERSION%%.*}"
  local minor=${KUBE_VERSION#*.}; ld+=" -X k8s.io/component-base/version.gitMinor=${minor%%.*}"
  ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
  (cd "$repo/tools/kube" && CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$OUT/" ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-proxy)
}

build_etcd() {
  (cd "$repo/tools/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" .)
}

build_helm() {
  GOBIN="$OUT" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
}

# grpcurl: a generic gRPC client, to check server reflection as operators use it.
build_grpcurl() {
  GOBIN="$OUT" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -trimpath \
    -ldflags "-s -w -X main.version=v$GRPCURL_VERSION" \
    "github.com/fullstorydev/grpcurl/cmd/grpcurl@v$GRPCURL_VERSION"
}

# cosmos-operator, from its Go module at the pinned version: its released CRDs
# (the tests install them into the real API server) and its controller, built
# from the module's own go.mod/go.sum and run out-of-cluster by the tests.
build_cosmos_operator() {
  local dir src
  dir=$(GOFLAGS=-mod=mod go mod download -json "github.com/strangelove-ventures/cosmos-operator@v$COSMOS_OPERATOR_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
  [ -n "$dir" ] || { log "cosmos-operator v$COSMOS_OPERATOR_VERSION: module not downloaded"; return 1; }
  for crd in cosmosfullnodes scheduledvolumesnapshots statefuljobs; do
    cp "$dir/config/crd/bases/cosmos.strange.love_$crd.yaml" "$OUT/"
  done
  chmod 0644 "$OUT"/*.yaml
  src="$OUT/.src"
  cp -r "$dir" "$src"; chmod -R u+w "$src"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$OUT/cosmos-operator" \
    -ldflags "-s -w -X github.com/strangelove-ventures/cosmos-operator/internal/version.version=v$COSMOS_OPERATOR_VERSION" .)
  rm -rf "$src"
}

build_ics() {
  local v=github.com/cosmos/cosmos-sdk/version
  (cd "$repo/tools/ics" && go build -trimpath \
    -ldflags "-s -w -X $v.Name=interchain-security -X $v.AppName=interchain-security-pd -X $v.Version=v$ICS_VERSION" \
    -o "$OUT/interchain-security-pd" .)
}

# MetalLB's CustomResourceDefinitions (IPAddressPool, L2Advertisement, ...), taken
# from its Go module, so the data plane's address assignment reads real objects.
build_metallb_crds() {
  local dir
  dir=$(cd "$OUT" && GOFLAGS='' go mod download -json "go.universe.tf/metallb@v$METALLB_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [ -z "$dir" ] || [ ! -d "$dir/config/crd/bases" ]; then
    log "go.universe.tf/metallb@v$METALLB_VERSION has no config/crd/bases"; exit 1
  fi
  mkdir -p "$OUT/metallb-crds"
  cp "$dir"/config/crd/bases/metallb.io_*.yaml "$OUT/metallb-crds/"
  chmod -R u+w "$OUT/metallb-crds"
}

# The consumer daemon, from the same wrapper module and version as the provider's.
build_ics_consumer() {
  local v=github.com/cosmos/cosmos-sdk/version
  (cd "$repo/tools/ics" && go build -trimpath \
    -ldflags "-s -w -X $v.Name=interchain-security -X $v.AppName=interchain-security-cd -X $v.Version=v$ICS_VERSION" \
    -o "$OUT/interchain-security-cd" github.com/cosmos/interchain-security/v7/cmd/interchain-security-cd)
}

# MetalLB's controller (address assignment) and speaker (L2 announcement), run out
# of cluster in the node namespaces by the data plane tests.
build_metallb() {
  GOBIN="$OUT" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -trimpath -ldflags "-s -w" \
    "go.universe.tf/metallb/controller@v$METALLB_VERSION" "go.universe.tf/metallb/speaker@v$METALLB_VERSION"
  mv "$OUT/controller" "$OUT/metallb-controller"
  mv "$OUT/speaker" "$OUT/metallb-speaker"
}

# version_ge A B: whether dotted version A is at least B.
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

shellcheck_version() {
  "$1" --version 2>/dev/null | sed -n 's/^version: *//p'
}

install_shellcheck() {
  local found="" have=""
  found=$(command -v shellcheck || true)
  if [ -n "$found" ]; then have=$(shellcheck_version "$found"); fi
  if [ -z "$found" ] || ! version_ge "${have:-0}" "$SHELLCHECK_MIN"; then
    if ! command -v apt-get >/dev/null 2>&1; then
      log "shellcheck >= $SHELLCHECK_MIN is needed (found: ${have:-none}) and apt-get is not available: install it with your package manager"
      exit 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
      log "shellcheck >= $SHELLCHECK_MIN is needed (found: ${have:-none}): run 'sudo apt-get update && sudo apt-get install -y shellcheck', or run make tools as root"
      exit 1
    fi
    log "installing shellcheck from Debian's packages (found: ${have:-none}, need >= $SHELLCHECK_MIN)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
    found=$(command -v shellcheck || true)
    have=$(shellcheck_version "${found:-shellcheck}")
    if [ -z "$found" ] || ! version_ge "${have:-0}" "$SHELLCHECK_MIN"; then
      log "apt-get installed shellcheck ${have:-(none)}, older than $SHELLCHECK_MIN: install a newer one"
      exit 1
    fi
  fi
  mkdir -p "$bindir"
  ln -sfn "$found" "$bindir/shellcheck"
}

prometheus_version() {
  "$1" --version 2>/dev/null | sed -n 's/^prometheus, version \([0-9.]*\).*/\1/p'
}

install_prometheus() {
  local found="" have=""
  found=$(command -v prometheus || true)
  if [ -n "$found" ]; then have=$(prometheus_version "$found"); fi
  if [ -z "$found" ] || ! command -v promtool >/dev/null 2>&1 || ! version_ge "${have:-0}" "$PROMETHEUS_MIN"; then
    if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
      log "prometheus and promtool >= $PROMETHEUS_MIN are needed (found: ${have:-none}): run 'sudo apt-get update && sudo apt-get install -y --no-install-recommends prometheus', or run make tools as root"
      exit 1
    fi
    log "installing prometheus and promtool from Debian's packages (found: ${have:-none}, need >= $PROMETHEUS_MIN)"
    apt-get update -qq
    # The package's own service is not used (tests start their own server); no init here.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    found=$(command -v prometheus || true)
    have=$(prometheus_version "${found:-prometheus}")
    if [ -z "$found" ] || ! version_ge "${have:-0}" "$PROMETHEUS_MIN"; then
      log "apt-get installed prometheus ${have:-(none)}, older than $PROMETHEUS_MIN: install a newer one"
      exit 1
    fi
  fi
  mkdir -p "$bindir"
  ln -sfn "$found" "$bindir/prometheus"
  ln -sfn "$(command -v promtool)" "$bindir/promtool"
}

# The data plane's system tools: command -> Debian package.
DATAPLANE_TOOLS=(nft:nftables socat:socat ip:iproute2)

install_dataplane() {
  local missing=() pkgs=() pair
  for pair in "${DATAPLANE_TOOLS[@]}"; do
    if ! command -v "${pair%%:*}" >/dev/null 2>&1; then
      missing+=("${pair%%:*}"); pkgs+=("${pair##*:}")
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
      log "the data plane needs ${missing[*]} (Debian packages: ${pkgs[*]}): run 'sudo apt-get update && sudo apt-get install -y --no-install-recommends ${pkgs[*]}', or run make tools as root"
      exit 1
    fi
    log "installing ${pkgs[*]} from Debian's packages (missing: ${missing[*]})"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  fi
  mkdir -p "$bindir"
  for pair in "${DATAPLANE_TOOLS[@]}"; do
    local found
    found=$(command -v "${pair%%:*}" || true)
    if [ -z "$found" ]; then
      log "apt-get installed ${pair##*:} but ${pair%%:*} is still not on PATH"
      exit 1
    fi
    ln -sfn "$found" "$bindir/${pair%%:*}"
  done
}

component() {
  local e
  case $1 in
    kube) e=$(key kube "$KUBE_VERSION" tools/kube); build "$e" build_kube; link "$e" kube-apiserver kube-controller-manager kube-proxy ;;
    etcd) e=$(key etcd "$ETCD_VERSION" tools/etcd); build "$e" build_etcd; link "$e" etcd ;;
    helm) e=$(key helm "$HELM_VERSION"); build "$e" build_helm; link "$e" helm ;;
    ics)  e=$(key ics "$ICS_VERSION" tools/ics); build "$e" build_ics; link "$e" interchain-security-pd ;;
    ics-consumer) e=$(key ics_consumer "$ICS_VERSION" tools/ics); build "$e" build_ics_consumer; link "$e" interchain-security-cd ;;
    grpcurl) e=$(key grpcurl "$GRPCURL_VERSION"); build "$e" build_grpcurl; link "$e" grpcurl ;;
    cosmos-operator) e=$(key cosmos_operator "$COSMOS_OPERATOR_VERSION"); build "$e" build_cosmos_operator
      link "$e" cosmos-operator cosmos.strange.love_cosmosfullnodes.yaml \
        cosmos.strange.love_scheduledvolumesnapshots.yaml cosmos.strange.love_statefuljobs.yaml ;;
    metallb-crds) e=$(key metallb_crds "$METALLB_VERSION"); build "$e" build_metallb_crds; link "$e" metallb-crds ;;
    metallb) e=$(key metallb "$METALLB_VERSION"); build "$e" build_metallb; link "$e" metallb-controller metallb-speaker ;;
    shellcheck) install_shellcheck ;;
    prometheus) install_prometheus ;;
    dataplane) install_dataplane ;;
    *) log "unknown component: $1"; exit 2 ;;
  esac
}

if [ "${1:-}" = "--path" ]; then echo "$bindir"; exit 0; fi
mkdir -p "$cache"
components=("$@")
[ ${#components[@]} -gt 0 ] || components=(etcd kube helm ics ics-consumer grpcurl cosmos-operator metallb-crds metallb shellcheck prometheus dataplane)
for c in "${components[@]}"; do component "$c"; done
