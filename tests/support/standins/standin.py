"""Stand-ins for `docker`, `kind`, `kubectl` and `helm`, for testing the cluster scripts.

No Docker engine runs here, so `scripts/clusters/*.sh` are tested against these
executables instead: each call is appended to `$STANDIN_HOME/calls.jsonl`
(program, arguments, the stdin it consumed), and answers come from a small
world kept in `$STANDIN_HOME/world.json`: which kind clusters exist, which
images were built and loaded, what was applied to each cluster, which Helm
releases exist with which values. Version answers and error messages are the
real programs' recorded outputs (`recorded/`, see its README); `docker network
inspect kind` replays one of `tests/data/docker-network-inspect/*.json`. When
`real_helm` is set, `helm upgrade --install` renders the chart with the real
Helm (`helm template`) and stores the objects, as an install would.

The world file is read and written under a lock: the scripts run `kubectl
create ... | kubectl apply -f -` pipelines, two stand-ins at once.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).resolve().parent / "recorded"
KIND_NODE = re.compile(r"^(.+)-(control-plane|worker\d*|external-load-balancer)$")
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


class Exit(Exception):
    def __init__(self, code: int, stderr: str = "") -> None:
        super().__init__(code, stderr)
        self.code = code
        self.stderr = stderr


def home() -> Path:
    return Path(os.environ["STANDIN_HOME"])


@contextlib.contextmanager
def world() -> Iterator[dict[str, Any]]:
    """The world, locked for the duration; written back on success."""
    path = home() / "world.json"
    with open(home() / "world.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = path.read_text()
        state: dict[str, Any] = json.loads(text)
        yield state
        new = json.dumps(state, sort_keys=True)
        if new != text:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(new)
            tmp.replace(path)


def recorded(name: str) -> str:
    path = Path(name)
    if not path.is_absolute():
        path = RECORDED / name
    return path.read_text()


def record_call(tool: str, argv: Sequence[str], stdin: str | None, code: int) -> None:
    entry = {"tool": tool, "argv": list(argv), "exit": code}
    if stdin is not None:
        entry["stdin"] = stdin
    with open(home() / "calls.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")


class Call:
    """One invocation: arguments, stdin read on demand (and recorded)."""

    def __init__(self, tool: str, argv: list[str]) -> None:
        self.tool = tool
        self.argv = argv
        self.stdin: str | None = None
        self.out: list[str] = []
        self.err: list[str] = []

    def read_stdin(self) -> str:
        if self.stdin is None:
            self.stdin = sys.stdin.read()
        return self.stdin

    def flag(self, *names: str, default: str | None = None) -> str | None:
        """Value of the last `--name value` or `--name=value` among `names`."""
        value = default
        args = self.argv
        for i, a in enumerate(args):
            for n in names:
                if a == n and i + 1 < len(args):
                    value = args[i + 1]
                elif a.startswith(n + "="):
                    value = a[len(n) + 1 :]
        return value

    def flags(self, *names: str) -> list[str]:
        out = []
        args = self.argv
        for i, a in enumerate(args):
            for n in names:
                if a == n and i + 1 < len(args):
                    out.append(args[i + 1])
                elif a.startswith(n + "="):
                    out.append(a[len(n) + 1 :])
        return out

    def positionals(self, with_value: Sequence[str] = ()) -> list[str]:
        """Arguments that are neither flags nor values of the flags in `with_value`."""
        out = []
        skip = False
        for a in self.argv:
            if skip:
                skip = False
                continue
            if a.startswith("-"):
                if a in with_value:
                    skip = True
                continue
            out.append(a)
        return out


# ---- docker --------------------------------------------------------------------


def _daemon(w: dict[str, Any]) -> None:
    if not w.get("docker_daemon", True):
        raise Exit(1, recorded("docker-daemon-down.stderr.txt"))


def _network(w: dict[str, Any]) -> list[dict[str, Any]]:
    doc = json.loads(Path(w["network_file"]).read_text())
    net = doc[0]
    # Nodes of deleted clusters have left the network; other containers stay.
    containers = {}
    for cid, c in (net.get("Containers") or {}).items():
        node = KIND_NODE.match(str(c.get("Name", "")))
        if node is None or node.group(1) in w["clusters"]:
            containers[cid] = c
    return [{**net, "Containers": containers}]


def docker(call: Call) -> int:
    args = call.argv
    with world() as w:
        if args[:1] == ["version"]:
            fmt = call.flag("--format", "-f") or ""
            if "Client" in fmt:
                call.out.append(
                    recorded(w["versions"].get("docker_client", "docker-client-version.txt"))
                )
                return 0
            if not w.get("docker_daemon", True):
                call.out.append("\n")
                raise Exit(1, recorded("docker-daemon-down.stderr.txt"))
            call.out.append(recorded(w["versions"].get("docker", "docker-client-version.txt")))
            return 0
        _daemon(w)
        if args[:2] == ["network", "inspect"]:
            name = call.positionals(("--format", "-f"))[2]
            if name != "kind" or not w.get("network_exists"):
                call.out.append("[]\n")
                raise Exit(1, f"Error response from daemon: network {name} not found\n")
            nets = _network(w)
            inspect_format = call.flag("--format", "-f")
            if inspect_format == "{{len .Containers}}":
                call.out.append(f"{len(nets[0]['Containers'])}\n")
            elif inspect_format:
                raise Exit(2, f"stand-in docker: unsupported --format {inspect_format}\n")
            else:
                call.out.append(json.dumps(nets, indent=4) + "\n")
            return 0
        if args[:2] == ["network", "rm"]:
            if not w.get("network_exists"):
                raise Exit(1, "Error response from daemon: network kind not found\n")
            if _network(w)[0]["Containers"]:
                raise Exit(
                    1,
                    "Error response from daemon: error while removing network: "
                    "network kind has active endpoints\n",
                )
            w["network_exists"] = False
            call.out.append("kind\n")
            return 0
        if args[:1] == ["build"]:
            tag = call.flag("--tag", "-t")
            target = call.flag("--target") or "service"
            if not tag:
                raise Exit(2, "stand-in docker: build without --tag\n")
            w["images"][tag] = "sha256:" + hashlib.sha256(target.encode()).hexdigest()
            call.err.append(
                '#0 building with "default" instance using docker driver\n'
                f"#1 naming to docker.io/library/{tag} done\n"
            )
            return 0
    raise Exit(2, f"stand-in docker: unsupported command {' '.join(args)}\n")


# ---- kind -----------------------------------------------------------------------


def kind(call: Call) -> int:
    args = call.argv
    with world() as w:
        if args[:1] == ["version"]:
            call.out.append(recorded(w["versions"].get("kind", "kind-version.txt")))
            return 0
        _daemon(w)
        name = call.flag("--name", "-n") or "kind"
        if args[:2] == ["get", "clusters"]:
            if not w["clusters"]:
                call.err.append("No kind clusters found.\n")
            call.out.extend(f"{n}\n" for n in sorted(w["clusters"]))
            return 0
        if args[:2] == ["create", "cluster"]:
            if name in w["clusters"]:
                raise Exit(
                    1,
                    "ERROR: failed to create cluster: node(s) already exist for a cluster "
                    f'with the name "{name}"\n',
                )
            w["clusters"][name] = {
                "images": [],
                "objects": {},
                "releases": {},
                "node_image": call.flag("--image"),
            }
            w["network_exists"] = True
            call.err.append(
                f'Creating cluster "{name}" ...\nSet kubectl context to "kind-{name}"\n'
            )
            return 0
        if args[:2] == ["delete", "cluster"]:
            call.err.append(f'Deleting cluster "{name}" ...\n')
            w["clusters"].pop(name, None)
            return 0
        if args[:2] == ["load", "docker-image"]:
            images = call.positionals(("--name", "-n", "--nodes"))[2:]
            for image in images:
                if image not in w["images"]:
                    raise Exit(
                        1, recorded("kind-load-missing-image.stderr.txt").replace("foo:1", image)
                    )
            if name not in w["clusters"]:
                raise Exit(1, f'ERROR: no nodes found for cluster "{name}"\n')
            loaded = w["clusters"][name]["images"]
            for image in images:
                entry = f"{image}@{w['images'][image]}"
                if entry not in loaded:
                    loaded.append(entry)
            return 0
    raise Exit(2, f"stand-in kind: unsupported command {' '.join(args)}\n")


# ---- kubectl ----------------------------------------------------------------------


def _group(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def object_key(obj: dict[str, Any], default_ns: str) -> str:
    kind_ = obj["kind"]
    ns = "" if kind_ in CLUSTER_SCOPED else (obj.get("metadata", {}).get("namespace") or default_ns)
    return f"{_group(obj['apiVersion'])}/{kind_}/{ns}/{obj['metadata']['name']}"


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    """What the server would keep of an applied object (no creationTimestamp: null, no status)."""
    out: dict[str, Any] = json.loads(json.dumps(obj))
    out.get("metadata", {}).pop("creationTimestamp", None)
    if out.get("status") == {}:
        out.pop("status")
    return out


def _cluster(w: dict[str, Any], call: Call) -> dict[str, Any]:
    context = call.flag("--context") or w.get("current_context") or ""
    name = context.removeprefix("kind-")
    if not context.startswith("kind-") or name not in w["clusters"]:
        raise Exit(1, recorded("kubectl-missing-context.stderr.txt").replace("kind-alice", context))
    cluster: dict[str, Any] = w["clusters"][name]
    return cluster


def _generated(call: Call, what: list[str], ns: str) -> dict[str, Any]:
    """`kubectl create namespace|secret generic|configmap ... --dry-run=client -o yaml`."""
    if what[0] == "namespace":
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"creationTimestamp": None, "name": what[1]},
            "spec": {},
            "status": {},
        }
    if what[0] == "secret" and what[1] == "generic":
        kind_, name, encode = "Secret", what[2], True
    elif what[0] == "configmap":
        kind_, name, encode = "ConfigMap", what[1], False
    else:
        raise Exit(2, f"stand-in kubectl: unsupported create {what}\n")
    data: dict[str, str] = {}
    for spec in call.flags("--from-file"):
        key, _, path = spec.partition("=") if "=" in spec else (Path(spec).name, "=", spec)
        content = Path(path).read_bytes()
        data[key] = base64.b64encode(content).decode() if encode else content.decode()
    for spec in call.flags("--from-literal"):
        key, _, value = spec.partition("=")
        data[key] = base64.b64encode(value.encode()).decode() if encode else value
    return {
        "apiVersion": "v1",
        "data": dict(sorted(data.items())),
        "kind": kind_,
        "metadata": {"creationTimestamp": None, "name": name, "namespace": ns},
    }


def _selected(obj: dict[str, Any], selector: str | None) -> bool:
    if not selector:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def kubectl(call: Call) -> int:
    import yaml  # here: `kubectl version` and docker/kind calls start faster without it

    args = call.argv
    with world() as w:
        if "version" in args and "--client" in args:
            call.out.append(recorded(w["versions"].get("kubectl", "kubectl-version-client.json")))
            return 0
        ns = call.flag("--namespace", "-n") or "default"
        verbs = call.positionals(
            (
                "--context",
                "--namespace",
                "-n",
                "-f",
                "--filename",
                "-o",
                "--output",
                "-l",
                "--selector",
                "--from-file",
                "--from-literal",
                "--timeout",
                "--for",
                "--field-manager",
            )
        )
        if verbs[:1] == ["create"] and call.flag("--dry-run") == "client":
            obj = _generated(call, verbs[1:], ns)
            call.out.append(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))
            return 0
        cluster = _cluster(w, call)
        if verbs[:1] == ["apply"]:
            source = call.flag("-f", "--filename") or ""
            if source.startswith(("http://", "https://")):
                cluster["objects"][f"url/{source}"] = {"source": source}
                call.out.append(f"(applied {source})\n")
                return 0
            text = call.read_stdin() if source == "-" else Path(source).read_text()
            for doc in yaml.safe_load_all(text):
                if not isinstance(doc, dict):
                    continue
                obj = _clean(doc)
                key = object_key(obj, ns)
                old = cluster["objects"].get(key)
                cluster["objects"][key] = obj
                verb = "created" if old is None else ("unchanged" if old == obj else "configured")
                group = _group(obj["apiVersion"])
                call.out.append(
                    f"{obj['kind'].lower()}{'.' + group if group else ''}/"
                    f"{obj['metadata']['name']} {verb}\n"
                )
            return 0
        if verbs[:2] == ["rollout", "status"]:
            call.out.append(
                f'{verbs[2].split("/")[0]} "{verbs[2].split("/")[-1]}" successfully rolled out\n'
            )
            return 0
        if verbs[:1] == ["wait"]:
            call.out.append(f"{verbs[1]} condition met\n")
            return 0
        if verbs[:1] == ["get"]:
            kind_ = {
                "service": "Service",
                "services": "Service",
                "svc": "Service",
                "configmaps": "ConfigMap",
                "configmap": "ConfigMap",
                "cm": "ConfigMap",
            }[verbs[1]]
            all_ns = "--all-namespaces" in args or "-A" in args
            selector = call.flag("-l", "--selector")
            found = [
                o
                for o in cluster["objects"].values()
                if o.get("kind") == kind_
                and (all_ns or (o.get("metadata", {}).get("namespace") or "default") == ns)
                and (len(verbs) < 3 or o["metadata"]["name"] == verbs[2])
                and _selected(o, selector)
            ]
            if len(verbs) >= 3:
                if not found:
                    if "--ignore-not-found" in args:
                        return 0
                    raise Exit(
                        1, f'Error from server (NotFound): services "{verbs[2]}" not found\n'
                    )
                call.out.append(json.dumps(found[0], indent=4) + "\n")
            else:
                call.out.append(
                    json.dumps(
                        {
                            "apiVersion": "v1",
                            "items": found,
                            "kind": "List",
                            "metadata": {"resourceVersion": ""},
                        },
                        indent=4,
                    )
                    + "\n"
                )
            return 0
    raise Exit(2, f"stand-in kubectl: unsupported command {' '.join(args)}\n")


# ---- helm ---------------------------------------------------------------------------

_VALUE_FLAGS = ("--set", "--set-string", "--set-json", "--set-file", "--values", "-f")


def _value_args(argv: Sequence[str]) -> list[str]:
    """The values arguments in order, with files replaced by their content (for the record)."""
    out: list[str] = []
    for i, a in enumerate(argv):
        for flag in _VALUE_FLAGS:
            if a == flag and i + 1 < len(argv):
                out += [flag, argv[i + 1]]
            elif a.startswith(flag + "="):
                out += [flag, a[len(flag) + 1 :]]
    return out


def helm(call: Call) -> int:
    import subprocess

    import yaml

    args = call.argv
    with world() as w:
        if args[:1] == ["version"]:
            call.out.append(recorded(w["versions"].get("helm", "helm-version.txt")))
            return 0
        if args[:2] != ["upgrade", "--install"] and not (
            args[:1] == ["upgrade"] and "--install" in args
        ):
            raise Exit(2, f"stand-in helm: unsupported command {' '.join(args)}\n")
        context = call.flag("--kube-context") or ""
        name = context.removeprefix("kind-")
        if name not in w["clusters"]:
            raise Exit(
                1, f'Error: Kubernetes cluster unreachable: context "{context}" does not exist\n'
            )
        cluster = w["clusters"][name]
        ns = call.flag("--namespace", "-n") or "default"
        release, chart = call.positionals(
            ("--kube-context", "--namespace", "-n", "--timeout", *_VALUE_FLAGS)
        )[1:3]
        key = f"{ns}/{release}"
        previous = cluster["releases"].get(key)
        values = _value_args(args)
        if "--reuse-values" in args and previous:
            values = previous["values"] + values
        files = {
            v: Path(v).read_text()
            for f, v in zip(values[::2], values[1::2], strict=True)
            if f in ("--values", "-f")
        }
        entry: dict[str, Any] = {
            "chart": chart,
            "values": values,
            "value_files": files,
            "revision": (previous or {}).get("revision", 0) + 1,
        }
        real = w.get("real_helm")
        if real:
            done = subprocess.run(
                [
                    real,
                    "template",
                    release,
                    chart,
                    "--namespace",
                    ns,
                    "--kube-version",
                    w.get("kube_version", "1.33.13"),
                    *values,
                ],
                capture_output=True,
                text=True,
                check=False,
                env={
                    **os.environ,
                    "HELM_CACHE_HOME": str(home() / "helm"),
                    "HELM_CONFIG_HOME": str(home() / "helm"),
                    "HELM_DATA_HOME": str(home() / "helm"),
                },
            )
            if done.returncode != 0:
                raise Exit(1, done.stderr)
            rendered = [d for d in yaml.safe_load_all(done.stdout) if isinstance(d, dict)]
            entry["manifest"] = sorted(object_key(o, ns) for o in rendered)
            if previous:
                for old in previous.get("manifest", []):
                    cluster["objects"].pop(old, None)
            for obj in rendered:
                cluster["objects"][object_key(obj, ns)] = obj
        cluster["releases"][key] = entry
        verb = "has been upgraded" if previous else "does not exist. Installing it now"
        call.out.append(
            f'Release "{release}" {verb}.\nNAME: {release}\nNAMESPACE: {ns}\n'
            f"STATUS: deployed\nREVISION: {entry['revision']}\n"
        )
        return 0


TOOLS = {"docker": docker, "kind": kind, "kubectl": kubectl, "helm": helm}


def main(argv: Sequence[str]) -> int:
    tool, args = argv[0], list(argv[1:])
    call = Call(tool, args)
    if tool == "kubectl" and "apply" in args and call.flag("-f", "--filename") == "-":
        # Before taking the world's lock: the writer of this pipe may need it.
        call.read_stdin()
    code = 0
    try:
        code = TOOLS[tool](call)
    except Exit as e:
        code = e.code
        call.err.append(e.stderr)
    sys.stdout.write("".join(call.out))
    sys.stderr.write("".join(call.err))
    record_call(tool, args, call.stdin, code)
    return code


if __name__ == "__main__":
    tempfile.tempdir = os.environ.get("STANDIN_HOME")
    sys.exit(main(sys.argv[1:]))
