# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this file
# Shared by the Kind testnet scripts (kind-up.sh, kind-down.sh, status.sh, image.sh):
# names, where state lives, logging, and the checks that stop early with a clear
# message when docker, kind, kubectl or helm is missing or too old.
#
# Environment (all optional):
#   ICS_KIND_CLUSTERS     cluster names, space separated (default: alice bob charlie)
#   ICS_KIND_STATE        state folder (default: ~/.local/state/ics-peer-discovery/kind)
#   ICS_KIND_IMAGE        service image (default: ics-discovery:kind)
#   ICS_KIND_PROVIDER_IMAGE  provider node image (default: ics-provider:kind)
#   ICS_KIND_NODE_IMAGE   kindest/node image for `kind create cluster`
#   ICS_METALLB_MANIFEST  MetalLB manifest (URL or file; default: the pinned release)
#   ICS_DISCOVERY         the ics-discovery CLI (default: <repo>/.venv/bin/ics-discovery)
#   ICS_PROVIDER_DAEMON   interchain-security-pd (default: from PATH or `make tools-path`)

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTERS_DIR="$REPO/scripts/clusters"
read -r -a CLUSTERS <<< "${ICS_KIND_CLUSTERS:-alice bob charlie}"
STATE_DIR=${ICS_KIND_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/ics-peer-discovery/kind}
NAMESPACE=provider
CONSUMER_NAMESPACE=consumers
CHAIN_ID=provider
RELEASE=ics-discovery
LB_SERVICE=p2p-loadbalancer
# The chart's default loadBalancer.namespace: <release namespace>-lb.
LB_NAMESPACE="$NAMESPACE-lb"
IMAGE=${ICS_KIND_IMAGE:-ics-discovery:kind}
PROVIDER_IMAGE=${ICS_KIND_PROVIDER_IMAGE:-ics-provider:kind}
METALLB_VERSION=v0.14.9
METALLB_MANIFEST=${ICS_METALLB_MANIFEST:-https://raw.githubusercontent.com/metallb/metallb/$METALLB_VERSION/config/manifests/metallb-native.yaml}
PYTHON=${ICS_PYTHON:-$REPO/.venv/bin/python}

# Oldest versions the scripts are known to work with.
MIN_DOCKER=20.10.0
MIN_KIND=0.20.0
MIN_KUBECTL=1.27.0
MIN_HELM=3.12.0

SCRIPT_NAME=$(basename "${BASH_SOURCE[1]:-$0}" .sh)

log() { printf '[%s] %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() { printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2; exit 1; }

# version_ge A B: whether dotted version A is at least B.
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# semver TEXT: the first x.y.z in TEXT (empty when none).
semver() {
  if [[ $1 =~ ([0-9]+\.[0-9]+\.[0-9]+) ]]; then printf '%s' "${BASH_REMATCH[1]}"; fi
}

# need_version TOOL FOUND MINIMUM HOW
need_version() {
  local tool=$1 found=$2 min=$3 how=$4
  if [ -z "$found" ]; then
    die "cannot tell which version of $tool this is (need >= $min; $how)"
  fi
  if ! version_ge "$found" "$min"; then
    die "$tool $found is too old: need >= $min ($how)"
  fi
}

need_command() {
  local tool=$1 how=$2
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed or not on PATH: $how"
}

check_docker() {
  local how="install Docker Engine 20.10+: https://docs.docker.com/engine/install/"
  need_command docker "$how"
  local out err
  err=$(mktemp)
  if ! out=$(docker version --format '{{.Server.Version}}' 2>"$err"); then
    local reason
    reason=$(grep -v '^$' "$err" | head -n1)
    rm -f "$err"
    die "docker is installed but its daemon is not reachable (${reason:-no answer}); start Docker and try again"
  fi
  rm -f "$err"
  need_version "docker (server)" "$(semver "$out")" "$MIN_DOCKER" "$how"
}

check_kind() {
  local how="install kind 0.20+: go install sigs.k8s.io/kind@v0.31.0 or https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
  need_command kind "$how"
  local out
  out=$(kind version 2>/dev/null) || die "'kind version' failed: $how"
  need_version kind "$(semver "$out")" "$MIN_KIND" "$how"
}

check_kubectl() {
  local how="install kubectl 1.27+: https://kubernetes.io/docs/tasks/tools/"
  need_command kubectl "$how"
  local out
  out=$(kubectl version --client -o json 2>/dev/null) || die "'kubectl version --client' failed: $how"
  out=$(printf '%s' "$out" | grep '"gitVersion"' | head -n1)
  need_version kubectl "$(semver "$out")" "$MIN_KUBECTL" "$how"
}

check_helm() {
  local how="install Helm 3.12+: https://helm.sh/docs/intro/install/"
  need_command helm "$how"
  local out
  out=$(helm version --template '{{.Version}}' 2>/dev/null) || die "'helm version' failed: $how"
  need_version helm "$(semver "$out")" "$MIN_HELM" "$how"
}

check_python() {
  [ -x "$PYTHON" ] || die "$PYTHON not found: run 'make install' first"
}

# The ics-discovery CLI (metallb-pools).
ics_discovery() {
  local cli=${ICS_DISCOVERY:-$REPO/.venv/bin/ics-discovery}
  [ -x "$cli" ] || cli=$(command -v ics-discovery || true)
  [ -n "$cli" ] || die "ics-discovery not found: run 'make install' first"
  "$cli" "$@"
}

provider_daemon() {
  local pd=${ICS_PROVIDER_DAEMON:-}
  if [ -z "$pd" ]; then pd=$(command -v interchain-security-pd || true); fi
  if [ -z "$pd" ] && [ -x "$("$REPO/scripts/tools.sh" --path)/interchain-security-pd" ]; then
    pd="$("$REPO/scripts/tools.sh" --path)/interchain-security-pd"
  fi
  [ -n "$pd" ] || die "interchain-security-pd not found: run 'make tools' first"
  printf '%s' "$pd"
}

testnet() { "$PYTHON" "$CLUSTERS_DIR/testnet.py" "$@"; }

context() { printf 'kind-%s' "$1"; }

# load_clusters: remember which kind clusters exist now (for cluster_exists).
load_clusters() {
  local out
  out=$(kind get clusters 2>/dev/null) || die "'kind get clusters' failed (is Docker running?)"
  KNOWN_CLUSTERS=$out
}

cluster_exists() { grep -qx -- "$1" <<< "${KNOWN_CLUSTERS:-}"; }

kctl() {
  local cluster=$1; shift
  kubectl --context "$(context "$cluster")" "$@"
}

# retry N SECONDS CMD...: run CMD until it succeeds, at most N times.
retry() {
  local n=$1 pause=$2; shift 2
  local i
  for ((i = 1; i <= n; i++)); do
    if "$@"; then return 0; fi
    [ "$i" -lt "$n" ] && sleep "$pause"
  done
  return 1
}
