"""The real Helm CLI against the chart `helm/ics-validator`: lint, template, install, uninstall.

Chart tests must judge what validators will run, so they drive the same `helm`
binary (`make tools`) on the chart directory, and install into the test
control plane with its admin kubeconfig. Helm's own configuration, cache and
data go to a private folder, so tests never read or write the user's Helm
setup. `helm` built with `go install` reports Kubernetes v1.20 as its offline
default, so offline rendering always names the Kubernetes version explicitly.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .procs import REPO, tool

CHART = REPO / "helm" / "ics-validator"
EXAMPLES = CHART / "examples"
EXAMPLE_VALUES = {name: EXAMPLES / f"values-{name}.yaml" for name in ("alice", "bob", "charlie")}
# The control plane's version (scripts/tools.sh KUBE_VERSION), for offline rendering.
KUBE_VERSION = "1.33.13"


@functools.cache
def _helm_home() -> Path:
    """Helm's cache, config and data for this process: made on first use, removed at exit."""
    home = Path(tempfile.mkdtemp(prefix="ics-helm-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


class HelmFailed(AssertionError):
    """helm exited non-zero; carries its stderr (an AssertionError, so tests report it)."""

    def __init__(self, argv: Sequence[str], code: int, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.code = code
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(f"helm {' '.join(argv)} exited {code}:\n{stderr.strip()[-4000:]}")


def helm_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBECONFIG"))}
    env.update(
        HELM_CACHE_HOME=str(_helm_home() / "cache"),
        HELM_CONFIG_HOME=str(_helm_home() / "config"),
        HELM_DATA_HOME=str(_helm_home() / "data"),
    )
    return env


def run_helm(
    args: Sequence[str], *, kubeconfig: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run helm; returns the finished process whatever its exit status."""
    argv = [*args]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    return subprocess.run(
        [str(tool("helm")), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=helm_env(),
        stdin=subprocess.DEVNULL,
        check=False,
    )


def checked(args: Sequence[str], *, kubeconfig: Path | None = None) -> str:
    done = run_helm(args, kubeconfig=kubeconfig)
    if done.returncode != 0:
        raise HelmFailed(args, done.returncode, done.stdout, done.stderr)
    return done.stdout


@dataclass(frozen=True)
class Values:
    """Values for one helm invocation: files (in order), then --set-json pairs."""

    files: tuple[Path, ...] = ()
    set_json: Mapping[str, Any] = field(default_factory=dict)

    def args(self) -> list[str]:
        out: list[str] = []
        for f in self.files:
            out += ["--values", str(f)]
        for key, value in sorted(self.set_json.items()):
            out += ["--set-json", f"{key}={_json(value)}"]
        return out


NO_VALUES = Values()


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def values(*files: Path, **set_json: Any) -> Values:
    """`values(f, **{"loadBalancer.ip": "10.0.0.5"})`: dotted keys as Helm's --set-json."""
    return Values(tuple(files), dict(set_json))


def lint_args(v: Values = NO_VALUES) -> list[str]:
    return ["lint", str(CHART), "--strict", *v.args()]


def lint(v: Values = NO_VALUES) -> str:
    return checked(lint_args(v))


def template_args(
    v: Values = NO_VALUES,
    *,
    release: str = "ics",
    namespace: str = "provider",
    api_versions: Iterable[str] = (),
) -> list[str]:
    args = [
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        *v.args(),
    ]
    for api in api_versions:
        args += ["--api-versions", api]
    return args


def template(
    v: Values = NO_VALUES,
    *,
    release: str = "ics",
    namespace: str = "provider",
    api_versions: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """The rendered objects (comments and empty documents dropped)."""
    return parse_manifests(
        checked(template_args(v, release=release, namespace=namespace, api_versions=api_versions))
    )


def parse_manifests(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


def install(
    kubeconfig: Path,
    namespace: str,
    v: Values = NO_VALUES,
    *,
    release: str = "ics",
    extra: Sequence[str] = (),
) -> str:
    """`helm upgrade --install` into the control plane; returns helm's output (NOTES included)."""
    return checked(
        [
            "upgrade",
            "--install",
            release,
            str(CHART),
            "--namespace",
            namespace,
            *v.args(),
            *extra,
        ],
        kubeconfig=kubeconfig,
    )


def uninstall(kubeconfig: Path, namespace: str, release: str = "ics") -> None:
    checked(["uninstall", release, "--namespace", namespace, "--wait"], kubeconfig=kubeconfig)


def get_manifest(kubeconfig: Path, namespace: str, release: str = "ics") -> list[dict[str, Any]]:
    return parse_manifests(
        checked(["get", "manifest", release, "--namespace", namespace], kubeconfig=kubeconfig)
    )


def find(objects: Iterable[Mapping[str, Any]], kind: str, name: str | None = None) -> list[Any]:
    """Objects of `kind` (and `name`), in rendering order."""
    return [
        o
        for o in objects
        if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: Iterable[Mapping[str, Any]], kind: str, name: str | None = None) -> Any:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container_environment(
    objects: Iterable[Mapping[str, Any]],
    *,
    pod_name: str,
    secrets: Mapping[tuple[str, str], str],
    container: str = "ics-discovery",
) -> dict[str, str]:
    """The environment a kubelet gives the Deployment's container: `fieldRef: metadata.name`
    resolves to `pod_name`, `secretKeyRef` to `secrets[(name, key)]`."""
    deploy = one(list(objects), "Deployment")
    (spec,) = [
        c for c in deploy["spec"]["template"]["spec"]["containers"] if c["name"] == container
    ]
    env: dict[str, str] = {}
    for var in spec.get("env", []):
        source = var.get("valueFrom")
        if source is None:
            env[var["name"]] = str(var.get("value", ""))
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[var["name"]] = pod_name
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[var["name"]] = secrets[(ref["name"], ref["key"])]
        else:
            raise AssertionError(f"unexpected env source {var}")
    return env


# ---- RBAC of rendered charts ------------------------------------------------

# (namespace or "*" for cluster-wide, API group, resource, verb, object name or "")
Permission = tuple[str, str, str, str, str]

_METHOD_VERB = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def request_permission(method: str, url: str) -> Permission:
    """The RBAC attributes the API server checks for one resource request."""
    parts = urlsplit(url)
    segs = [s for s in parts.path.split("/") if s]
    if segs[:1] == ["api"]:
        group, rest = "", segs[2:]
    elif segs[:1] == ["apis"]:
        group, rest = segs[1], segs[3:]
    else:
        raise ValueError(f"not a resource request: {url}")
    namespace = "*"
    if len(rest) >= 2 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    if len(rest) > 2:
        resource = f"{resource}/{rest[2]}"
    query = parse_qs(parts.query)
    if method.upper() == "GET":
        if name:
            verb = "get"
        elif query.get("watch", ["false"])[0] in ("true", "1"):
            verb = "watch"
        else:
            verb = "list"
        # The API server authorizes a list or watch narrowed to one object by its
        # name (fieldSelector metadata.name=X) as a request for that name.
        for term in ",".join(query.get("fieldSelector", [])).split(","):
            key, _, value = term.partition("=")
            if key == "metadata.name" and value and not name:
                name = value
    else:
        verb = _METHOD_VERB[method.upper()]
    return (namespace, group, resource, verb, name)


def _bound(binding: Mapping[str, Any], sa_namespace: str, sa_name: str) -> bool:
    return any(
        s.get("kind") == "ServiceAccount"
        and s.get("name") == sa_name
        and s.get("namespace") == sa_namespace
        for s in binding.get("subjects") or []
    )


def _expand(rules: Iterable[Mapping[str, Any]], namespace: str) -> set[Permission]:
    out: set[Permission] = set()
    for rule in rules:
        for group in rule.get("apiGroups") or [""]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in rule.get("resourceNames") or [""]:
                        out.add((namespace, group, resource, verb, name))
    return out


def granted_permissions(
    objects: Iterable[Mapping[str, Any]], sa_namespace: str, sa_name: str
) -> set[Permission]:
    """What the rendered Roles and ClusterRoles grant to one ServiceAccount."""
    objs = list(objects)
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in find(objs, "Role")}
    cluster_roles = {o["metadata"]["name"]: o for o in find(objs, "ClusterRole")}
    out: set[Permission] = set()
    for b in find(objs, "RoleBinding"):
        if _bound(b, sa_namespace, sa_name):
            ns = b["metadata"]["namespace"]
            ref = b["roleRef"]
            rules = (
                roles[(ns, ref["name"])] if ref["kind"] == "Role" else cluster_roles[ref["name"]]
            )["rules"]
            out |= _expand(rules, ns)
    for b in find(objs, "ClusterRoleBinding"):
        if _bound(b, sa_namespace, sa_name):
            out |= _expand(cluster_roles[b["roleRef"]["name"]]["rules"], "*")
    return out


def covers(granted: Permission, used: Permission) -> bool:
    """Whether a granted permission allows a request (cluster-wide grants cover namespaces)."""
    g_ns, g_group, g_res, g_verb, g_name = granted
    u_ns, u_group, u_res, u_verb, u_name = used
    return (
        g_ns in ("*", u_ns)
        and (g_group, g_res, g_verb) == (u_group, u_res, u_verb)
        and (not g_name or g_name == u_name)
    )


class RecordingApiClient(client.ApiClient):
    """Instrumentation, not a mock: every request goes to the real API server, and its
    method, URL and response status are recorded for the RBAC comparison."""

    def __init__(self, configuration: client.Configuration) -> None:
        super().__init__(configuration)
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str, int]] = []

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        try:
            resp = super().call_api(method, url, *args, **kwargs)
        except ApiException as e:
            with self._lock:
                self.requests.append((method.upper(), url, int(e.status or 0)))
            raise
        with self._lock:
            self.requests.append((method.upper(), url, int(resp.status)))
        return resp

    def permissions(self) -> set[Permission]:
        with self._lock:
            return {request_permission(m, u) for m, u, _ in self.requests}

    def refused(self) -> list[tuple[str, str, int]]:
        with self._lock:
            return [r for r in self.requests if r[2] in (401, 403)]


__all__ = [
    "CHART",
    "EXAMPLE_VALUES",
    "KUBE_VERSION",
    "NO_VALUES",
    "HelmFailed",
    "Permission",
    "RecordingApiClient",
    "Values",
    "container_environment",
    "covers",
    "find",
    "get_manifest",
    "granted_permissions",
    "install",
    "lint",
    "one",
    "parse_manifests",
    "request_permission",
    "run_helm",
    "template",
    "uninstall",
    "values",
]
