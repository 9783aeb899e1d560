"""The node ID the service publishes from node_key_secret_env is the one `nodekey derive` gives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chainmonitor.addresses import bech32_encode
from discovery.cli import main
from discovery.nodekey import derive_node_key
from discovery.service import own_node_id
from discovery.settings import Settings, load_settings

OPERATOR = bech32_encode("cosmosvaloper", bytes(range(1, 21)))


def settings_with_secret_env() -> Settings:
    return load_settings(
        None,
        provider_rpc_urls=["http://127.0.0.1:26657"],
        provider_grpc_urls=["127.0.0.1:9090"],
        operator_address=OPERATOR,
        publish_endpoint=True,
        publish_key_env="KEY",
        node_key_secret_env="NODE_SECRET",
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"0123456789abcdef" * 4,  # openssl rand -hex 32, without newline
        b"0123456789abcdef" * 4 + b"\n",  # ... as `openssl rand -hex 32 > file` writes it
        b"0123456789abcdef" * 4 + b"\r\n",
        bytes(range(256))[128:] + b"\n",  # binary, not UTF-8
    ],
)
def test_service_and_cli_derive_the_same_node_id(
    raw: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(raw)
    assert main(["nodekey", "derive", "--secret-file", str(secret_file)]) == 0
    from_cli = capsys.readouterr().out.strip()
    # A Secret mounted as an environment variable carries the file's bytes.
    environ = {"NODE_SECRET": os.fsdecode(raw)}
    published = own_node_id(settings_with_secret_env(), environ)
    assert published == from_cli
    secret = raw.removesuffix(b"\n").removesuffix(b"\r")
    assert published == derive_node_key(secret).node_id
