"""TLS on the gRPC port: real TLS channels on loopback against the real in-process server."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import ssl
import stat
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sidecar_testlib import AUTH, StartServer

from gpu_server import healthcheck
from gpu_server.__main__ import write_ready_file
from gpu_server._generated import service_pb2_grpc, status_pb2
from gpu_server.config import ConfigError, load_config
from gpu_server.ingest.detect import DetectorSelection, HogPeopleDetector
from gpu_server.server import SERVICE_NAME
from gpu_server.tls import (
    CERT_FILE,
    KEY_FILE,
    SERVER_NAME,
    TLS_DIR,
    CertificateError,
    fingerprint,
    generate,
    server_name,
)


def pinned_channel(port: int, cert_pem: bytes, name: str = SERVER_NAME) -> grpc.aio.Channel:
    """A channel that trusts `cert_pem` alone and checks it against `name`."""
    return grpc.aio.secure_channel(
        f"127.0.0.1:{port}",
        grpc.ssl_channel_credentials(root_certificates=cert_pem),
        options=[("grpc.ssl_target_name_override", name)],
    )


async def get_status(channel: grpc.aio.Channel) -> status_pb2.ServerStatus:
    stub = service_pb2_grpc.SecurityAIStub(channel)
    reply: status_pb2.ServerStatus = await stub.GetStatus(
        status_pb2.GetStatusRequest(), metadata=AUTH, timeout=20
    )
    return reply


@pytest.fixture
def hog(hog_detector: HogPeopleDetector) -> DetectorSelection:
    return DetectorSelection(hog_detector)


async def test_pinned_certificate_serves_every_service(
    start_server: StartServer, hog: DetectorSelection
) -> None:
    running = await start_server(hog, tls__mode="auto")
    cert_pem = (running.server.config.data_dir / TLS_DIR / CERT_FILE).read_bytes()
    assert running.server.tls_fingerprint == fingerprint(x509.load_pem_x509_certificate(cert_pem))

    async with pinned_channel(running.server.port, cert_pem) as channel:
        status = await get_status(channel)
        assert status.server_id == running.server.server_id

        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(), metadata=AUTH, timeout=20)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        [answer] = [
            r async for r in reflect.ServerReflectionInfo(iter([request]), metadata=AUTH)
        ]
        assert SERVICE_NAME in {s.name for s in answer.list_services_response.service}

        # The token is still checked inside the encrypted channel.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await service_pb2_grpc.SecurityAIStub(channel).GetStatus(
                status_pb2.GetStatusRequest(), metadata=(("authorization", "Bearer no"),)
            )
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_another_certificate_and_plaintext_clients_are_refused(
    start_server: StartServer, hog: DetectorSelection
) -> None:
    running = await start_server(hog, tls__mode="auto")
    other_cert, _ = generate("127.0.0.1")

    async with pinned_channel(running.server.port, other_cert) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as pinned:
            await get_status(channel)
    assert pinned.value.code() == grpc.StatusCode.UNAVAILABLE

    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as plaintext:
            await get_status(channel)
    assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_certificate_is_made_once_and_kept(
    start_server: StartServer, hog: DetectorSelection, tmp_path: Path
) -> None:
    data_dir = tmp_path / "kept"
    first = await start_server(hog, tls__mode="auto", data_dir=data_dir, host="127.0.0.1")
    fingerprint_before = first.server.tls_fingerprint
    cert_before = (data_dir / TLS_DIR / CERT_FILE).read_bytes()
    await first.server.stop(0)

    second = await start_server(hog, tls__mode="auto", data_dir=data_dir)
    assert second.server.tls_fingerprint == fingerprint_before
    assert (data_dir / TLS_DIR / CERT_FILE).read_bytes() == cert_before
    key_mode = stat.S_IMODE((data_dir / TLS_DIR / KEY_FILE).stat().st_mode)
    assert key_mode == 0o600

    cert = x509.load_pem_x509_certificate(cert_before)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {SERVER_NAME, "localhost"} <= set(san.get_values_for_type(x509.DNSName))
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert server_name(cert_before) == SERVER_NAME


def test_configured_host_is_in_the_certificate() -> None:
    for host, kind, value in (
        ("192.168.1.20", x509.IPAddress, ipaddress.ip_address("192.168.1.20")),
        ("gpu-box.lan", x509.DNSName, "gpu-box.lan"),
    ):
        cert_pem, _ = generate(host)
        cert = x509.load_pem_x509_certificate(cert_pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert value in san.get_values_for_type(kind)


async def test_files_mode_presents_the_users_certificate(
    start_server: StartServer, hog: DetectorSelection, tmp_path: Path
) -> None:
    cert_pem, key_pem = generate("127.0.0.1")
    (tmp_path / "mine.crt").write_bytes(cert_pem)
    (tmp_path / "mine.key").write_bytes(key_pem)
    running = await start_server(
        hog, tls__mode="files", tls__cert=tmp_path / "mine.crt", tls__key=tmp_path / "mine.key"
    )
    assert running.server.tls_fingerprint == fingerprint(x509.load_pem_x509_certificate(cert_pem))
    async with pinned_channel(running.server.port, cert_pem, name="localhost") as channel:
        assert (await get_status(channel)).server_id == running.server.server_id
    assert not (running.server.config.data_dir / TLS_DIR).exists()


async def test_a_key_of_another_certificate_stops_the_start(
    start_server: StartServer, hog: DetectorSelection, tmp_path: Path
) -> None:
    cert_pem, _ = generate("127.0.0.1")
    _, other_key = generate("127.0.0.1")
    (tmp_path / "mine.crt").write_bytes(cert_pem)
    (tmp_path / "other.key").write_bytes(other_key)
    with pytest.raises(CertificateError, match="does not belong"):
        await start_server(
            hog, tls__mode="files", tls__cert=tmp_path / "mine.crt",
            tls__key=tmp_path / "other.key",
        )
    (tmp_path / "junk.crt").write_text("not a certificate")
    with pytest.raises(CertificateError, match="unusable"):
        await start_server(
            hog, tls__mode="files", tls__cert=tmp_path / "junk.crt",
            tls__key=tmp_path / "other.key",
        )


async def test_default_is_tls_and_a_client_pins_the_fingerprint_it_was_told(
    start_server: StartServer, hog: DetectorSelection, tmp_path: Path
) -> None:
    """Nothing chosen: TLS. The client fetches the certificate, checks its fingerprint against
    the ready file's and trusts that certificate alone from then on."""
    running = await start_server(hog, tls__mode=None)
    server = running.server
    assert server.config.tls.mode == "auto"
    write_ready_file(tmp_path / "ready.json", server)
    announced = json.loads((tmp_path / "ready.json").read_text())["tls_fingerprint"]

    fetched = await asyncio.to_thread(ssl.get_server_certificate, ("127.0.0.1", server.port))
    assert fingerprint(x509.load_pem_x509_certificate(fetched.encode())) == announced
    async with pinned_channel(server.port, fetched.encode()) as channel:
        assert (await get_status(channel)).server_id == server.server_id
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as plaintext:
            await get_status(channel)
    assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_plaintext_only_when_chosen_and_then_with_a_warning(
    start_server: StartServer, hog: DetectorSelection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gpu_server.server")
    running = await start_server(hog, tls__mode="off")
    assert running.server.tls_fingerprint is None
    assert not (running.server.config.data_dir / TLS_DIR).exists()
    assert (await running.status()).server_id == running.server.server_id
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(message.startswith("TLS is off") for message in warnings)


def test_tls_settings_from_the_environment(tmp_path: Path) -> None:
    assert load_config(env={}).tls.mode == "auto"
    assert load_config(env={"HSAI_TLS": "OFF"}).tls.mode == "off"
    config = load_config(
        env={"HSAI_TLS": "Files", "HSAI_TLS_CERT": "/certs/a.pem", "HSAI_TLS_KEY": "/certs/a.key"}
    )
    assert config.tls.mode == "files"
    assert config.tls.cert == Path("/certs/a.pem")
    assert load_config(env={"HSAI_TLS": "auto"}).tls.mode == "auto"
    with pytest.raises(ConfigError, match=r"tls.cert and tls.key"):
        load_config(env={"HSAI_TLS": "files"})
    with pytest.raises(ConfigError):
        load_config(env={"HSAI_TLS": "on"})


async def test_ready_file_and_health_probe_over_tls(
    start_server: StartServer, hog: DetectorSelection, tmp_path: Path
) -> None:
    running = await start_server(hog, tls__mode="auto")
    server = running.server
    write_ready_file(tmp_path / "ready.json", server)
    ready = json.loads((tmp_path / "ready.json").read_text())
    assert ready["tls_fingerprint"] == server.tls_fingerprint

    token_file = tmp_path / "token"
    token_file.write_text(server.token)
    probe = [
        "--host", "127.0.0.1", "--port", str(server.port), "--token-file", str(token_file),
        "--data-dir", str(server.config.data_dir),
    ]
    env = {"HSAI_TLS": "auto"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        # The probe is a blocking client; the server answers on this loop meanwhile.
        assert await asyncio.to_thread(healthcheck.main, probe) == 0
        patch.setenv("HSAI_TLS", "off")
        assert await asyncio.to_thread(healthcheck.main, [*probe, "--timeout", "2"]) == 1
