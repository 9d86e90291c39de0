"""The client over TLS against a real sidecar that made its own certificate."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from cryptography import x509
from integration.certificates import self_signed
from integration.sidecar_process import Sidecar

from custom_components.home_security_ai.client import (
    CannotConnect,
    HomeSecurityAIClient,
    TlsUnavailable,
    certificate_fingerprint,
    certificate_server_name,
    fetch_server_certificate,
)

# The certificate is fetched with a plain Python socket, which the Home Assistant test plugin
# blocks unless asked.
pytestmark = pytest.mark.usefixtures("socket_enabled")


async def test_pinned_certificate(tls_sidecar: Sidecar) -> None:
    """The fetched certificate is the sidecar's; pinned, it carries the calls."""
    cert_pem = await asyncio.to_thread(fetch_server_certificate, tls_sidecar.host, tls_sidecar.port)
    assert certificate_fingerprint(cert_pem) == tls_sidecar.tls_fingerprint
    assert certificate_server_name(cert_pem) == "home-security-ai.local"

    client = HomeSecurityAIClient(
        tls_sidecar.host, tls_sidecar.port, tls_sidecar.token, tls_certificate=cert_pem
    )
    try:
        status = await client.get_status()
    finally:
        await client.close()
    assert status.server_id == tls_sidecar.server_id


async def test_other_certificate_or_plaintext_cannot_connect(tls_sidecar: Sidecar) -> None:
    """A client pinning another certificate, or none, does not get through."""
    for certificate in (self_signed(x509.DNSName("home-security-ai.local")), None):
        client = HomeSecurityAIClient(
            tls_sidecar.host, tls_sidecar.port, tls_sidecar.token, tls_certificate=certificate,
            timeout=5,
        )
        try:
            with pytest.raises(CannotConnect):
                await client.get_status()
        finally:
            await client.close()


async def test_fetch_from_plaintext_or_closed_port(
    shared_sidecar: Sidecar, unused_tcp_port: int
) -> None:
    """A plaintext sidecar is told apart from one that is not there."""
    with pytest.raises(TlsUnavailable):
        await asyncio.to_thread(
            fetch_server_certificate, shared_sidecar.host, shared_sidecar.port, 5
        )
    with pytest.raises(CannotConnect) as closed:
        await asyncio.to_thread(fetch_server_certificate, "127.0.0.1", unused_tcp_port, 5)
    assert not isinstance(closed.value, TlsUnavailable)


def test_server_name_of_other_certificates() -> None:
    """The name checked is the certificate's first DNS name, else its IP, else its subject."""
    ip = ipaddress.ip_address("192.168.1.20")
    assert certificate_server_name(self_signed(x509.IPAddress(ip))) == "192.168.1.20"
    assert certificate_server_name(self_signed(common_name="gpu-box")) == "gpu-box"
    both = self_signed(x509.DNSName("a.lan"), x509.IPAddress(ip))
    assert certificate_server_name(both) == "a.lan"
