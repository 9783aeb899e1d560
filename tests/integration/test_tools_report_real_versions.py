"""Each binary `make tools` provides reports the version scripts/tools.sh pins."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.support.procs import REPO, tool


def pinned(name: str) -> str:
    text = (REPO / "scripts" / "tools.sh").read_text()
    m = re.search(rf"^{name}_VERSION=(\S+)$", text, re.M)
    assert m, f"{name}_VERSION not pinned in scripts/tools.sh"
    return m.group(1)


@pytest.mark.parametrize(
    ("binary", "args", "pattern"),
    [
        ("etcd", ["--version"], r"etcd Version: {ETCD}\b"),
        ("kube-apiserver", ["--version"], r"Kubernetes v{KUBE}\b"),
        ("kube-controller-manager", ["--version"], r"Kubernetes v{KUBE}\b"),
        ("kube-proxy", ["--version"], r"Kubernetes v{KUBE}\b"),
        ("helm", ["version", "--short"], r"v{HELM}\b"),
        ("grpcurl", ["-version"], r"grpcurl v{GRPCURL}\b"),
        ("cosmos-operator", ["version"], r"App Version: v{COSMOS_OPERATOR}\b"),
    ],
)
def test_tool_reports_pinned_version(binary: str, args: list[str], pattern: str) -> None:
    expected = pattern.format(
        ETCD=re.escape(pinned("ETCD")),
        KUBE=re.escape(pinned("KUBE")),
        HELM=re.escape(pinned("HELM")),
        GRPCURL=re.escape(pinned("GRPCURL")),
        COSMOS_OPERATOR=re.escape(pinned("COSMOS_OPERATOR")),
    )
    out = subprocess.run([str(tool(binary)), *args], capture_output=True, text=True, check=True)
    assert re.search(expected, out.stdout + out.stderr), out.stdout + out.stderr


@pytest.mark.parametrize(
    ("binary", "args", "pattern"),
    [
        ("nft", ["--version"], r"^nftables v\d+\.\d+"),
        ("socat", ["-V"], r"socat version \d+\.\d+"),
        ("ip", ["-V"], r"^ip utility, iproute2-"),
    ],
)
def test_dataplane_system_tool_is_linked_and_runs(
    binary: str, args: list[str], pattern: str
) -> None:
    """`make tools` links the data plane's system tools (Debian packages) next to the others."""
    path = tool(binary)
    assert path.is_symlink(), f"{path} should link to the system's {binary}"
    out = subprocess.run([str(path), *args], capture_output=True, text=True, check=True)
    assert re.search(pattern, out.stdout + out.stderr, re.M), out.stdout + out.stderr


def test_metallb_crds_come_from_the_pinned_module() -> None:
    """`make tools` copies MetalLB's CRDs out of its Go module; the data plane installs them."""
    crds = tool("metallb-crds")
    assert f"metallb_crds-{pinned('METALLB')}-" in str(crds.resolve())
    kinds = {}
    for name in ("ipaddresspools", "l2advertisements"):
        doc = yaml.safe_load((crds / f"metallb.io_{name}.yaml").read_text())
        served = [v["name"] for v in doc["spec"]["versions"] if v["served"]]
        kinds[doc["spec"]["names"]["kind"]] = served
    assert kinds == {"IPAddressPool": ["v1beta1"], "L2Advertisement": ["v1beta1"]}


@pytest.mark.parametrize("part", ["controller", "speaker"])
def test_metallb_is_built_from_the_pinned_module(part: str) -> None:
    """The data plane's MetalLB controller and speaker: go.universe.tf/metallb, pinned."""
    info = subprocess.run(
        ["go", "version", "-m", str(tool(f"metallb-{part}"))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    version = re.escape(pinned("METALLB"))
    assert re.search(rf"^\s+path\s+go\.universe\.tf/metallb/{part}$", info, re.M), info
    assert re.search(rf"^\s+mod\s+go\.universe\.tf/metallb\s+v{version}\s", info, re.M), info
