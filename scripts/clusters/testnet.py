#!/usr/bin/env python3
"""JSON work for the Kind testnet scripts: pool addresses, the provider genesis, `make status`.

The shell scripts drive docker, kind, kubectl and helm; whatever needs JSON,
YAML or care with key files happens here (standard library and PyYAML, run by
the project's virtualenv), so the scripts need neither jq nor text surgery on
configuration files.

  testnet.py pool-address PLAN CLUSTER INDEX   INDEX-th address of CLUSTER's MetalLB pool
  testnet.py same-subnet PLAN_A PLAN_B          exit 1 (with a message) when the subnets differ
  testnet.py split-manifests FILE DIR           FILE's objects into DIR/metallb-<cluster>.yaml
  testnet.py genesis --dir DIR --chain-id ID --validators a,b,c --daemon PATH
  testnet.py info DIR VALIDATOR FIELD           moniker, account, operator or node_id
  testnet.py peers DIR PLAN VALIDATOR           the persistent peers of VALIDATOR's node (JSON list)
  testnet.py status CLUSTER SERVICE_JSON CONFIGMAPS_JSON

`genesis` is idempotent: a finished DIR (with validators.json) is left as it is,
so a second `make kind-up` keeps every key. Signing keys (mnemonics) are
written to files of mode 0600 and never printed.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CHAIN_DENOM = "stake"
ACCOUNT_BALANCE = 1_000_000_000_000
SELF_DELEGATION = 100_000_000
P2P_PORT = 26656
KEYRING = ("--keyring-backend", "test")


class Failure(Exception):
    """A problem to report in one line (exit status 1)."""


def _load(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise Failure(f"cannot read {path}: {e}") from e


# ---- MetalLB pools ------------------------------------------------------------


def pool_address(plan: Any, cluster: str, index: int) -> str:
    try:
        pool = plan["pools"][cluster]
        start = ipaddress.IPv4Address(pool["start"])
        end = ipaddress.IPv4Address(pool["end"])
    except (KeyError, TypeError, ValueError) as e:
        raise Failure(f"the pool plan has no valid pool for {cluster!r}") from e
    address = start + index
    if index < 0 or address > end:
        raise Failure(f"pool {start}-{end} of {cluster} has no address number {index}")
    return str(address)


def split_manifests(text: str, out: Path) -> list[str]:
    """Write each cluster's objects (label ics-discovery.io/cluster) to its own file."""
    import yaml

    by_cluster: dict[str, list[Any]] = {}
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise Failure(f"not YAML: {e}") from e
    for doc in docs:
        cluster = ((doc.get("metadata") or {}).get("labels") or {}).get("ics-discovery.io/cluster")
        if not cluster:
            raise Failure(
                f"{doc.get('kind')} {doc.get('metadata', {}).get('name')} has no cluster label"
            )
        by_cluster.setdefault(str(cluster), []).append(doc)
    for cluster, objs in sorted(by_cluster.items()):
        (out / f"metallb-{cluster}.yaml").write_text(
            yaml.safe_dump_all(objs, sort_keys=False, explicit_start=True)
        )
    return sorted(by_cluster)


# ---- the provider chain's genesis ------------------------------------------------


def _daemon(daemon: str, *args: str, home: Path) -> str:
    done = subprocess.run(
        [daemon, *args, "--home", str(home)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode != 0:
        # stderr of these commands never holds key material (keys add uses --output json).
        raise Failure(
            f"{Path(daemon).name} {args[0]} {args[1] if len(args) > 1 else ''} "
            f"failed: {done.stderr.strip()[-500:]}"
        )
    return done.stdout


def _node_id(node_key: Path) -> str:
    import base64

    doc = json.loads(node_key.read_text())
    raw = base64.b64decode(doc["priv_key"]["value"])
    return hashlib.sha256(raw[32:]).hexdigest()[:40]


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(0o600)


def _tune_genesis(genesis: dict[str, Any]) -> None:
    state = genesis["app_state"]
    # Opt-in changes apply at epoch ends: short epochs keep the testnet responsive.
    state["provider"]["params"]["blocks_per_epoch"] = "5"
    # Three validators of equal power: one jailed for a slow start would halt the chain.
    state["slashing"]["params"]["signed_blocks_window"] = "10000"
    state["slashing"]["params"]["min_signed_per_window"] = "0.010000000000000000"


def build_genesis(out: Path, chain_id: str, validators: Sequence[str], daemon: str) -> None:
    """One home per validator, a shared genesis.json and validators.json (public facts)."""
    if (out / "validators.json").exists():
        return
    if not validators:
        raise Failure("no validators given")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".genesis-", dir=out.parent))
    try:
        accounts: list[dict[str, Any]] = []
        for name in validators:
            home = work / name
            _daemon(daemon, "init", name, "--chain-id", chain_id, home=home)
            key = json.loads(
                _daemon(daemon, "keys", "add", name, *KEYRING, "--output", "json", home=home)
            )
            _write_private(home / "signing.key", key["mnemonic"] + "\n")
            accounts.append({"name": name, "address": key["address"]})
        first = work / validators[0]
        accounts_file = work / "accounts.json"
        accounts_file.write_text(
            json.dumps(
                [
                    {
                        "address": a["address"],
                        "coins": [{"denom": CHAIN_DENOM, "amount": str(ACCOUNT_BALANCE)}],
                    }
                    for a in accounts
                ]
            )
        )
        _daemon(daemon, "genesis", "bulk-add-genesis-account", str(accounts_file), home=first)
        genesis_path = first / "config" / "genesis.json"
        genesis = json.loads(genesis_path.read_text())
        _tune_genesis(genesis)
        genesis_path.write_text(json.dumps(genesis, indent=2) + "\n")
        gentxs = work / "gentx"
        gentxs.mkdir()
        for name in validators:
            home = work / name
            if home != first:
                shutil.copyfile(genesis_path, home / "config" / "genesis.json")
            _daemon(
                daemon,
                "genesis",
                "gentx",
                name,
                f"{SELF_DELEGATION}{CHAIN_DENOM}",
                "--chain-id",
                chain_id,
                *KEYRING,
                "--moniker",
                name,
                "--output-document",
                str(gentxs / f"{name}.json"),
                home=home,
            )
        _daemon(daemon, "genesis", "collect-gentxs", "--gentx-dir", str(gentxs), home=first)
        shutil.copyfile(genesis_path, work / "genesis.json")
        info = []
        for name, account in zip(validators, accounts, strict=True):
            home = work / name
            tx = json.loads((gentxs / f"{name}.json").read_text())
            info.append(
                {
                    "moniker": name,
                    "account": account["address"],
                    "operator": tx["body"]["messages"][0]["validator_address"],
                    "node_id": _node_id(home / "config" / "node_key.json"),
                }
            )
            (home / "config" / "genesis.json").unlink()
        (work / "validators.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        accounts_file.unlink()
        shutil.rmtree(gentxs)
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)  # all or nothing: an interrupted run leaves no half genesis
    finally:
        shutil.rmtree(work, ignore_errors=True)


def validator_info(out: Path, name: str) -> dict[str, str]:
    for v in _load(out / "validators.json"):
        if v.get("moniker") == name:
            return {str(k): str(val) for k, val in v.items()}
    raise Failure(f"no validator {name!r} in {out / 'validators.json'}")


def persistent_peers(out: Path, plan: Any, name: str) -> list[str]:
    """The other validators' provider nodes, at the first address of their clusters' pools."""
    entries = []
    for v in _load(out / "validators.json"):
        if v["moniker"] == name:
            continue
        entries.append(f"{v['node_id']}@{pool_address(plan, v['moniker'], 0)}:{P2P_PORT}")
    return sorted(entries)


# ---- make status ----------------------------------------------------------------------


def _printable(text: Any, limit: int = 200) -> str:
    clean = "".join(c if c.isprintable() else "?" for c in str(text))
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def render_status(cluster: str, service: Any, configmaps: Any) -> str:
    lines = [f"{cluster}:"]
    if not service:
        lines.append("  LoadBalancer: not created yet")
    else:
        meta = service.get("metadata") or {}
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        addresses = [str(i.get("ip") or i.get("hostname")) for i in ingress if isinstance(i, dict)]
        lines.append(
            f"  LoadBalancer {meta.get('namespace')}/{meta.get('name')}: "
            f"{', '.join(addresses) if addresses else 'no address yet'}"
        )
        ports = [
            p
            for p in (service.get("spec") or {}).get("ports") or []
            if p.get("name") != "placeholder"
        ]
        if ports:
            lines.append("  ports:")
            for p in sorted(ports, key=lambda p: (int(p.get("port", 0)), str(p.get("name")))):
                lines.append(
                    f"    {p.get('port')}/{p.get('protocol', 'TCP')}  {_printable(p.get('name'))}"
                )
        else:
            lines.append("  ports: none exposed yet")
    items = (configmaps or {}).get("items") or []
    if not items:
        lines.append("  peers: no consumer chain yet")
    for cm in sorted(items, key=lambda c: str((c.get("data") or {}).get("chain_id"))):
        data = cm.get("data") or {}
        peers = [p for p in str(data.get("persistent_peers", "")).split(",") if p]
        where = (cm.get("metadata") or {}).get("namespace")
        lines.append(
            f"  peers of {_printable(data.get('chain_id', '?'))} "
            f"(ConfigMap {where}/{(cm.get('metadata') or {}).get('name')}): {len(peers)}"
        )
        lines.extend(f"    {_printable(p)}" for p in peers)
    return "\n".join(lines) + "\n"


# ---- command line ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="testnet.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pool-address")
    p.add_argument("plan")
    p.add_argument("cluster")
    p.add_argument("index", type=int)
    p = sub.add_parser("same-subnet")
    p.add_argument("old")
    p.add_argument("new")
    p = sub.add_parser("split-manifests")
    p.add_argument("file")
    p.add_argument("dir", type=Path)
    p = sub.add_parser("genesis")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--chain-id", required=True)
    p.add_argument("--validators", required=True)
    p.add_argument("--daemon", required=True)
    p = sub.add_parser("info")
    p.add_argument("dir", type=Path)
    p.add_argument("validator")
    p.add_argument("field", choices=["moniker", "account", "operator", "node_id"])
    p = sub.add_parser("peers")
    p.add_argument("dir", type=Path)
    p.add_argument("plan")
    p.add_argument("validator")
    p = sub.add_parser("status")
    p.add_argument("cluster")
    p.add_argument("service")
    p.add_argument("configmaps")
    args = parser.parse_args(argv)
    try:
        if args.command == "pool-address":
            print(pool_address(_load(args.plan), args.cluster, args.index))
        elif args.command == "same-subnet":
            old, new = _load(args.old).get("subnet"), _load(args.new).get("subnet")
            if old != new:
                raise Failure(
                    f"the kind network's IPv4 subnet changed from {old} to {new} since the "
                    "MetalLB pools were planned: run `make kind-down` and then `make kind-up`"
                )
        elif args.command == "split-manifests":
            text = Path(args.file).read_text()
            print(" ".join(split_manifests(text, args.dir)))
        elif args.command == "genesis":
            names = [n for n in args.validators.split(",") if n]
            build_genesis(args.dir, args.chain_id, names, args.daemon)
        elif args.command == "info":
            print(validator_info(args.dir, args.validator)[args.field])
        elif args.command == "peers":
            # JSON, for helm --set-json (commas would split a --set value).
            print(json.dumps(persistent_peers(args.dir, _load(args.plan), args.validator)))
        elif args.command == "status":
            service = _load(args.service) if Path(args.service).stat().st_size else None
            configmaps = _load(args.configmaps) if Path(args.configmaps).stat().st_size else None
            sys.stdout.write(render_status(args.cluster, service, configmaps))
    except Failure as e:
        print(f"testnet.py {args.command}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
