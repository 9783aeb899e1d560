"""The gRPC API over TLS and mutual TLS, with certificates made here by `cryptography`."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from discovery._proto.ics.discovery.v1 import discovery_pb2 as pb
from discovery._proto.ics.discovery.v1.discovery_pb2_grpc import DiscoveryStub
from discovery.api import ApiError, ApiServer, TlsFiles
from discovery.cli import main
from discovery.state import StateStore
from tests.support.discovery_states import build_state


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _write(path: Path, data: bytes, private: bool = False) -> Path:
    if private:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class CA:
    def __init__(self, directory: Path, name: str) -> None:
        self.dir = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = _write(directory / f"{name}.crt", _pem(self.cert))

    def issue(self, common_name: str, *, server: bool) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return Issued(
            cert=_write(self.dir / f"{common_name}.crt", _pem(cert)),
            key=_write(self.dir / f"{common_name}.key", key_pem, private=True),
        )


@dataclass(frozen=True)
class Pki:
    ca: CA
    server: Issued
    client: Issued
    rogue_client: Issued


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = CA(tmp_path, "discovery-ca")
    rogue = CA(tmp_path, "rogue-ca")
    return Pki(
        ca=ca,
        server=ca.issue("server", server=True),
        client=ca.issue("operator", server=False),
        rogue_client=rogue.issue("intruder", server=False),
    )


async def _list(channel: grpc.aio.Channel) -> pb.ListConsumersResponse:
    return await DiscoveryStub(channel).ListConsumers(pb.ListConsumersRequest(), timeout=5)


def _credentials(ca: Path, client: Issued | None = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None,
    )


@pytest.fixture
async def tls_server(pki: Pki) -> AsyncIterator[int]:
    server = ApiServer(
        StateStore(build_state()),
        "127.0.0.1:0",
        tls=TlsFiles(pki.server.cert, pki.server.key),
    )
    port = await server.start()
    yield port
    await server.stop(grace=1)


@pytest.fixture
async def mtls_server(pki: Pki) -> AsyncIterator[int]:
    server = ApiServer(
        StateStore(build_state()),
        "127.0.0.1:0",
        tls=TlsFiles(pki.server.cert, pki.server.key, client_ca_file=pki.ca.pem),
    )
    port = await server.start()
    yield port
    await server.stop(grace=1)


async def test_tls_client_that_trusts_the_ca_is_served(pki: Pki, tls_server: int) -> None:
    target = f"127.0.0.1:{tls_server}"
    async with grpc.aio.secure_channel(target, _credentials(pki.ca.pem)) as channel:
        assert len((await _list(channel)).consumers) == 2


async def test_plaintext_client_cannot_talk_to_a_tls_server(tls_server: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tls_server}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await _list(channel)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_serves_a_client_with_a_certificate_from_the_ca(
    pki: Pki, mtls_server: int
) -> None:
    target = f"127.0.0.1:{mtls_server}"
    async with grpc.aio.secure_channel(target, _credentials(pki.ca.pem, pki.client)) as channel:
        assert (await _list(channel)).height == 100


@pytest.mark.parametrize("who", ["no certificate", "certificate from another CA"])
async def test_mutual_tls_refuses_other_clients(pki: Pki, mtls_server: int, who: str) -> None:
    client = None if who == "no certificate" else pki.rogue_client
    target = f"127.0.0.1:{mtls_server}"
    async with grpc.aio.secure_channel(target, _credentials(pki.ca.pem, client)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await _list(channel)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_status_command_speaks_mutual_tls(
    pki: Pki, mtls_server: int, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["status", "--address", f"127.0.0.1:{mtls_server}", "--tls-ca", str(pki.ca.pem)]
    with_cert = [*base, "--tls-cert", str(pki.client.cert), "--tls-key", str(pki.client.key)]
    assert await asyncio.to_thread(main, with_cert) == 0
    assert "consumer-a" in capsys.readouterr().out
    assert await asyncio.to_thread(main, [*base, "--timeout", "2"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().out


async def test_unreadable_certificate_files_are_a_clear_error(pki: Pki, tmp_path: Path) -> None:
    server = ApiServer(
        StateStore(), "127.0.0.1:0", tls=TlsFiles(tmp_path / "missing.crt", pki.server.key)
    )
    with pytest.raises(ApiError, match=r"missing\.crt"):
        await server.start()
