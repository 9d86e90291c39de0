"""Pinning the sidecar's TLS certificate: fetch it once, show its fingerprint, trust only it."""

from __future__ import annotations

import hashlib
import socket
import ssl

# Home Assistant itself depends on cryptography, so it is always there.
from cryptography import x509

from .errors import CannotConnect, TlsUnavailable

FETCH_TIMEOUT = 10.0


def fetch_server_certificate(host: str, port: int, timeout: float = FETCH_TIMEOUT) -> str:
    """Return the certificate the sidecar presents, as PEM (blocking: run it in an executor).

    Nothing is verified here: the user compares the fingerprint with the one the sidecar
    printed before the certificate is trusted.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        sock = socket.create_connection((host.strip("[]"), port), timeout=timeout)
    except OSError as err:
        raise CannotConnect(f"Cannot reach the sidecar at {host}:{port}: {err}") from err
    with sock:
        try:
            with context.wrap_socket(sock) as tls:
                der = tls.getpeercert(binary_form=True)
        except OSError as err:
            # A plaintext gRPC port answers a TLS hello with HTTP/2 bytes or by hanging up.
            raise TlsUnavailable(f"The sidecar at {host}:{port} does not speak TLS: {err}") from err
    if not der:
        raise TlsUnavailable(f"The sidecar at {host}:{port} presented no certificate")
    return ssl.DER_cert_to_PEM_cert(der)


def certificate_fingerprint(cert_pem: str) -> str:
    """SHA-256 of the certificate as colon-separated hex pairs, as the sidecar prints it."""
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_pem)).digest()
    return ":".join(f"{byte:02X}" for byte in digest)


def certificate_server_name(cert_pem: str) -> str | None:
    """A name the certificate is valid for: the channel checks it instead of the address dialled.

    The user may type an IP address that is not in the certificate; pinning already makes
    sure the certificate is the one the user accepted.
    """
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    names = [str(name) for name in san.get_values_for_type(x509.DNSName)]
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    names += [
        str(attr.value) for attr in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    ]
    return names[0] if names else None
