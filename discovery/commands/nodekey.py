"""`ics-discovery nodekey`: create CometBFT `node_key.json` files and show node IDs.

Operators need node keys for their consumer nodes and the node IDs that go
with them; this writes keys only to files of mode 0600, created atomically and
never over an existing file unless asked, and never prints key material.
Secrets are read from files, never taken on the command line (where `ps` and
shell history would show them).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from discovery.cli import UsageError
from discovery.commands import print_json
from discovery.errors import DiscoveryError
from discovery.nodekey import (
    NodeKey,
    decode_node_key,
    derive_node_key,
    encode_node_key,
    generate_node_key,
    insecure_node_key_from_moniker,
    normalize_secret,
)

KEY_FILE_MODE = 0o600


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "nodekey",
        help="create consumer node keys (node_key.json) and show node IDs",
        description="Create CometBFT node_key.json files (mode 0600) and show node IDs.",
    )
    actions = parser.add_subparsers(dest="nodekey_action", metavar="ACTION", required=True)

    generate = actions.add_parser("generate", help="a new random node key")
    _add_output_arguments(generate, required=True)
    generate.set_defaults(func=_run_generate)

    derive = actions.add_parser(
        "derive",
        help="the node key a secret gives (for all chains, or for one chain ID)",
        description=(
            "Derive a node key from a secret (HKDF-SHA256), so a redeployed node keeps "
            "its ID. Without --chain-id: the one key for all of this validator's consumer "
            "nodes, whose ID `run` publishes with node_key_secret_env. With --chain-id: a "
            "key of that chain only. Without --out only the node ID is printed."
        ),
    )
    derive.add_argument(
        "--chain-id", help="consumer chain ID (required with --insecure-derive-from-moniker)"
    )
    source = derive.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--secret-file",
        metavar="FILE",
        help="file holding at least 32 random bytes (one trailing newline is ignored)",
    )
    source.add_argument(
        "--insecure-derive-from-moniker",
        metavar="MONIKER",
        help=(
            "INSECURE: the Go implementation's key from public data (moniker and chain "
            "ID; the same node ID a Go node has, see docs/interop.md); anyone can compute "
            "it. Only for networks that already use it."
        ),
    )
    _add_output_arguments(derive, required=False)
    derive.set_defaults(func=_run_derive)

    show = actions.add_parser("id", help="the node ID of a node_key.json file")
    show.add_argument("file", metavar="FILE", help="path of node_key.json")
    show.add_argument("--json", action="store_true", help='print {"node_id"} as JSON')
    show.set_defaults(func=_run_id)


def _add_output_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--out", required=required, metavar="FILE", help="write node_key.json here (mode 0600)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing file")
    parser.add_argument("--json", action="store_true", help='print {"node_id"} as JSON')


def _run_generate(args: argparse.Namespace) -> int:
    key = generate_node_key()
    _write_key(Path(args.out), key, force=args.force)
    _print_id(key, as_json=args.json)
    return 0


def _run_derive(args: argparse.Namespace) -> int:
    try:
        if args.secret_file is not None:
            key = derive_node_key(_read_secret(Path(args.secret_file)), args.chain_id)
        elif args.chain_id is None:
            raise UsageError("--insecure-derive-from-moniker needs --chain-id")
        else:
            key = insecure_node_key_from_moniker(args.insecure_derive_from_moniker, args.chain_id)
    except DiscoveryError as e:
        raise UsageError(str(e)) from e
    if args.out is not None:
        _write_key(Path(args.out), key, force=args.force)
    _print_id(key, as_json=args.json)
    return 0


def _run_id(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        key = decode_node_key(path.read_bytes())
    except OSError as e:
        raise UsageError(f"cannot read {str(path)!a}: {e.strerror or e}") from e
    except DiscoveryError as e:
        raise UsageError(f"{str(path)!a}: {e}") from e
    _print_id(key, as_json=args.json)
    return 0


def _print_id(key: NodeKey, *, as_json: bool) -> None:
    if as_json:
        print_json({"node_id": key.node_id})
    else:
        sys.stdout.write(f"{key.node_id}\n")


def _read_secret(path: Path) -> bytes:
    try:
        secret = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read secret file {str(path)!a}: {e.strerror or e}") from e
    return normalize_secret(secret)


def _write_key(path: Path, key: NodeKey, *, force: bool) -> None:
    """Write atomically with mode 0600: a temporary file in the same folder, then rename.

    Without `force` the final step is a hard link, which fails if the target
    exists, so an existing key is never replaced by accident, even by a race.
    """
    data = encode_node_key(key)
    folder = path.parent
    temporary = folder / f".{path.name}.{os.getpid()}.tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
        try:
            os.fchmod(fd, KEY_FILE_MODE)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if force:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    except FileExistsError as e:
        raise UsageError(f"{str(path)!a} exists; use --force to replace it") from e
    except OSError as e:
        raise UsageError(f"cannot write {str(path)!a}: {e.strerror or e}") from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
