"""TLS on the gRPC port: the certificate the server presents, made on first start or the user's own.

Home Assistant pins the certificate (it is the only root it trusts), so a self-signed one is
enough; its SHA-256 fingerprint lets the user check that the pinned certificate is ours.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gpu_server.config import ServerConfig
from gpu_server.identity import write_private

_LOGGER = logging.getLogger(__name__)

TLS_DIR = "tls"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
# In every generated certificate: clients dialling an IP address check the certificate
# against this name instead.
SERVER_NAME = "home-security-ai.local"
_VALIDITY = dt.timedelta(days=365 * 30)
_DNS_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")


class CertificateError(OSError):
    """The certificate or key cannot be read or used; the server does not start."""


@dataclass(frozen=True, kw_only=True)
class ServerCertificate:
    cert_pem: bytes
    key_pem: bytes
    fingerprint: str


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate, as colon-separated hex pairs (openssl's notation)."""
    return ":".join(f"{byte:02X}" for byte in cert.fingerprint(hashes.SHA256()))


def certificate_file(config: ServerConfig) -> Path:
    """Where the certificate the server presents lives."""
    if config.tls.mode == "files" and config.tls.cert is not None:
        return config.tls.cert
    return config.data_dir / TLS_DIR / CERT_FILE


def server_name(cert_pem: bytes) -> str:
    """A name the certificate is valid for: clients check it instead of the address they dial."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    names = [str(name) for name in san.get_values_for_type(x509.DNSName)]
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    names += [str(attr.value) for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if not names:
        raise CertificateError("the certificate names no host (no subject alternative name)")
    return names[0]


def _subject_names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.DNSName(SERVER_NAME),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    host = host.strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if _DNS_NAME.match(host) and host.lower() not in {SERVER_NAME, "localhost"}:
            names.append(x509.DNSName(host))
    else:
        if not address.is_unspecified and not address.is_loopback:
            names.append(x509.IPAddress(address))
    return names


def generate(host: str) -> tuple[bytes, bytes]:
    """Return a new self-signed certificate and its private key (ECDSA P-256), both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # A day back, so a client whose clock lags does not find it "not yet valid".
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(_subject_names(host)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def load_files(cert_path: Path, key_path: Path) -> ServerCertificate:
    """Read a certificate and its key; refuse a pair that does not belong together."""
    try:
        cert_pem = cert_path.read_bytes()
        key_pem = key_path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read the TLS certificate or key: {exc}") from exc
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(
            f"unusable TLS certificate {cert_path} or key {key_path}: {exc}"
        ) from exc
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = serialization.Encoding.PEM
    if key.public_key().public_bytes(pem, public) != cert.public_key().public_bytes(pem, public):
        raise CertificateError(f"the key {key_path} does not belong to the certificate {cert_path}")
    if cert.issuer != cert.subject:
        # Home Assistant trusts the pinned certificate alone, so it must be its own issuer.
        _LOGGER.warning(
            "the TLS certificate %s is not self-signed; Home Assistant will not accept it",
            cert_path,
        )
    if cert.not_valid_after_utc < dt.datetime.now(dt.UTC):
        _LOGGER.warning("the TLS certificate %s expired on %s", cert_path, cert.not_valid_after_utc)
    return ServerCertificate(cert_pem=cert_pem, key_pem=key_pem, fingerprint=fingerprint(cert))


def load_or_create(data_dir: Path, host: str) -> ServerCertificate:
    """Return the certificate kept in <data_dir>/tls, making it on first start.

    It is never replaced: Home Assistant pinned it, and a new one would need a new pin.
    """
    folder = data_dir / TLS_DIR
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    if not cert_path.exists():
        cert_pem, key_pem = generate(host)
        # The key first: a certificate on disk always has its key next to it.
        write_private(key_path, key_pem.decode())
        write_private(cert_path, cert_pem.decode())
        _LOGGER.info("created a self-signed TLS certificate in %s", cert_path)
    return load_files(cert_path, key_path)


def load_server_certificate(config: ServerConfig) -> ServerCertificate:
    """The certificate for `config.tls.mode` (`auto` or `files`)."""
    if config.tls.mode == "files" and config.tls.cert is not None and config.tls.key is not None:
        return load_files(config.tls.cert, config.tls.key)
    return load_or_create(config.data_dir, config.host)
