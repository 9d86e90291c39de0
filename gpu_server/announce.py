"""Telling Home Assistant where the sidecar is, so nobody types a host, a port or a token.

Two ways, both optional and both best effort (a failure is logged, never stops the server):
- Zeroconf (mDNS) on the local network: `_home-sec-ai._tcp` with the server id, the version and
  the certificate's fingerprint. The token is never announced: anyone on the network can read
  an announcement. Home Assistant fills in the host and port and asks the user for the token.
- Supervisor discovery, inside a Home Assistant add-on (where `SUPERVISOR_TOKEN` is set): the
  Supervisor is trusted, so the token and the fingerprint are handed over with the address and
  the integration sets itself up after one click.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
from dataclasses import dataclass
from typing import Final

import httpx
import ifaddr
from zeroconf import InterfaceChoice, IPVersion
from zeroconf._utils.net import InterfacesType
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from gpu_server import __version__
from gpu_server.config import DiscoveryConfig

_LOGGER = logging.getLogger(__name__)

# Service names are at most 15 characters (RFC 6335), so "home-security-ai" does not fit.
ZEROCONF_TYPE: Final = "_home-sec-ai._tcp.local."
# The integration's domain: Supervisor hands a discovery to the integration of this name.
SUPERVISOR_SERVICE: Final = "home_security_ai"
_SUPERVISOR_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True, kw_only=True)
class Listening:
    """What a client needs to reach this sidecar."""

    host: str  # the address the server listens on (0.0.0.0: every interface)
    port: int
    server_id: str
    tls_fingerprint: str | None
    token: str


def zeroconf_properties(listening: Listening) -> dict[str, str]:
    """The TXT record: enough to recognise the server and check its certificate, no secret."""
    properties = {"id": listening.server_id, "version": __version__}
    properties["tls"] = "1" if listening.tls_fingerprint else "0"
    if listening.tls_fingerprint:
        properties["fp"] = listening.tls_fingerprint
    return properties


def _is_unspecified(host: str) -> bool:
    try:
        return host == "" or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _announced_addresses(host: str) -> list[str]:
    """The IPv4 addresses to announce: the one listened on, else every non-loopback one."""
    if not _is_unspecified(host):
        return [socket.gethostbyname(host)]
    found = [
        str(ip.ip)
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if isinstance(ip.ip, str) and not ipaddress.ip_address(ip.ip).is_loopback
    ]
    return found or ["127.0.0.1"]


class Announcer:
    """Announces the listening server by the ways the configuration allows; `stop` withdraws."""

    def __init__(self, config: DiscoveryConfig) -> None:
        self._config = config
        self._zeroconf: AsyncZeroconf | None = None
        self._service: AsyncServiceInfo | None = None
        self._discovery_uuid: str | None = None

    async def start(self, listening: Listening) -> None:
        if self._config.zeroconf:
            await self._start_zeroconf(listening)
        if self._config.supervisor and os.environ.get("SUPERVISOR_TOKEN"):
            await self._announce_to_supervisor(listening)

    async def stop(self) -> None:
        if self._discovery_uuid is not None:
            await self._withdraw_from_supervisor(self._discovery_uuid)
            self._discovery_uuid = None
        if self._zeroconf is not None:
            try:
                if self._service is not None:
                    await self._zeroconf.async_unregister_service(self._service)
            except Exception:  # withdrawing is best effort at shutdown
                _LOGGER.debug("zeroconf: the announcement could not be withdrawn", exc_info=True)
            await self._zeroconf.async_close()
            self._zeroconf = self._service = None

    async def _start_zeroconf(self, listening: Listening) -> None:
        try:
            addresses = await asyncio.to_thread(_announced_addresses, listening.host)
            # Listening on one address: announce on that interface only (loopback included).
            interfaces: InterfacesType = (
                InterfaceChoice.All if _is_unspecified(listening.host) else addresses
            )
            zeroconf = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
            # One name per server: two sidecars on a network never claim the same one.
            instance = f"Home Security AI {listening.server_id[:8]}"
            hostname = socket.gethostname().split(".")[0] or "home-security-ai"
            service = AsyncServiceInfo(
                ZEROCONF_TYPE,
                f"{instance}.{ZEROCONF_TYPE}",
                addresses=[socket.inet_aton(address) for address in addresses],
                port=listening.port,
                properties=zeroconf_properties(listening),
                server=f"{hostname}.local.",
            )
            await zeroconf.async_register_service(service, allow_name_change=True)
        except Exception as exc:  # the server works without the announcement
            _LOGGER.warning("zeroconf: the sidecar could not be announced: %s", exc)
            return
        self._zeroconf, self._service = zeroconf, service
        _LOGGER.info(
            "announced as %r (%s) on %s port %d", instance, ZEROCONF_TYPE, addresses, listening.port
        )

    def _supervisor_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {os.environ.get('SUPERVISOR_TOKEN', '')}"}

    async def _announce_to_supervisor(self, listening: Listening) -> None:
        host = self._config.advertised_host or socket.gethostname()
        payload = {
            "service": SUPERVISOR_SERVICE,
            "config": {
                "host": host,
                "port": listening.port,
                "token": listening.token,
                "server_id": listening.server_id,
                "tls_fingerprint": listening.tls_fingerprint or "",
            },
        }
        try:
            async with httpx.AsyncClient(timeout=_SUPERVISOR_TIMEOUT_S) as http:
                response = await http.post(
                    f"{self._config.supervisor_url}/discovery",
                    json=payload,
                    headers=self._supervisor_headers(),
                )
                response.raise_for_status()
                self._discovery_uuid = str(response.json()["data"]["uuid"])
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            _LOGGER.warning("Supervisor discovery failed: %s", str(exc)[:200])
            return
        _LOGGER.info("announced to the Supervisor as %s:%d", host, listening.port)

    async def _withdraw_from_supervisor(self, uuid: str) -> None:
        try:
            async with httpx.AsyncClient(timeout=_SUPERVISOR_TIMEOUT_S) as http:
                await http.delete(
                    f"{self._config.supervisor_url}/discovery/{uuid}",
                    headers=self._supervisor_headers(),
                )
        except httpx.HTTPError as exc:
            _LOGGER.debug("Supervisor discovery could not be withdrawn: %s", exc)
