"""Config flow for Home Security AI."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.selector import (
    BooleanSelector,
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
    TimeSelector,
)
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from homeassistant.util.yaml import dump as yaml_dump
from homeassistant.util.yaml import parse_yaml

from .alerts.alerting import WEEKDAYS
from .client import (
    AuthFailed,
    CannotConnect,
    HomeSecurityAIClient,
    ServerStatus,
    TlsUnavailable,
    certificate_fingerprint,
    fetch_server_certificate,
)
from .const import (
    CONF_BATCH_WINDOW,
    CONF_CAMERAS,
    CONF_ESCALATE,
    CONF_IDLE_TIMEOUT,
    CONF_KEEP_MEDIA_ON_REMOVAL,
    CONF_MEDIA_RETENTION_DAYS,
    CONF_MIN_LEVELS,
    CONF_MIN_SCORES,
    CONF_MOTION_SENSORS,
    CONF_PRESENCE_PERSONS,
    CONF_QUIET_DAYS,
    CONF_QUIET_END,
    CONF_QUIET_START,
    CONF_QUIET_WINDOWS,
    CONF_SNAPSHOT_INTERVAL,
    CONF_THREAT_MINUTES,
    CONF_TLS_CERTIFICATE,
    CONF_UPLOAD_FOLDERS,
    CONF_ZONES,
    DEFAULT_MEDIA_RETENTION_DAYS,
    DEFAULT_PORT,
    DEFAULT_SNAPSHOT_INTERVAL,
    DEFAULT_THREAT_MINUTES,
    DOMAIN,
    MAX_MEDIA_RETENTION_DAYS,
    MAX_SNAPSHOT_INTERVAL,
)
from .runtime import HomeSecurityAIConfigEntry
from .vocabulary import MAX_BATCH_SECONDS, RISK_LEVELS
from .zones import InvalidZones, validate_zone_map

# The zones editor of the options: YAML mapping camera ids to their zones.
CONF_ZONES_YAML = "zones_yaml"
# The connection form's TLS switch; the entry keeps the pinned certificate instead.
CONF_USE_TLS = "use_tls"
# The user's answer to "does this fingerprint match the one the sidecar printed?".
CONF_FINGERPRINT_MATCHES = "fingerprint_matches"
# A sidecar that did not answer in plaintext is asked for TLS this long.
_TLS_PROBE_TIMEOUT = 5.0

_LOGGER = logging.getLogger(__name__)

_PORT_SELECTOR = NumberSelector(
    NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)
)
_TOKEN_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))

STEP_USER_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_HOST): TextSelector(),
        vol.Required(CONF_PORT, default=DEFAULT_PORT): _PORT_SELECTOR,
        vol.Required(CONF_TOKEN): _TOKEN_SELECTOR,
        # On, as the sidecar's own default; plaintext only when the user turns it off.
        vol.Required(CONF_USE_TLS, default=True): BooleanSelector(),
    }
)
STEP_REAUTH_SCHEMA = vol.Schema({vol.Required(CONF_TOKEN): _TOKEN_SELECTOR})
STEP_ZEROCONF_CONFIRM_SCHEMA = STEP_REAUTH_SCHEMA
STEP_TLS_CONFIRM_SCHEMA = vol.Schema(
    {vol.Required(CONF_FINGERPRINT_MATCHES, default=False): BooleanSelector()}
)


async def _async_try_connect(
    host: str, port: int, token: str, tls_certificate: str | None = None
) -> tuple[ServerStatus | None, dict[str, str]]:
    """Ask the sidecar for its status; return it or the form errors."""
    client = HomeSecurityAIClient(host, port, token, tls_certificate=tls_certificate)
    try:
        return await client.get_status(), {}
    except CannotConnect:
        return None, {CONF_HOST: "cannot_connect"}
    except AuthFailed:
        return None, {CONF_TOKEN: "invalid_auth"}
    except Exception:
        _LOGGER.exception("Unexpected error while connecting to the sidecar")
        return None, {"base": "unknown"}
    finally:
        await client.close()


def _connection_data(user_input: Mapping[str, Any]) -> dict[str, Any]:
    data = {
        CONF_HOST: str(user_input[CONF_HOST]).strip(),
        CONF_PORT: int(user_input[CONF_PORT]),
        CONF_TOKEN: str(user_input[CONF_TOKEN]),
    }
    if cert_pem := user_input.get(CONF_TLS_CERTIFICATE):
        data[CONF_TLS_CERTIFICATE] = str(cert_pem)
    return data


def _form_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """The connection form's values for entry data: TLS is on when a certificate is pinned."""
    return {**data, CONF_USE_TLS: CONF_TLS_CERTIFICATE in data}


class HomeSecurityAIConfigFlow(ConfigFlow, domain=DOMAIN):
    """Connects Home Assistant to a Home Security AI sidecar.

    With TLS the sidecar's certificate is fetched and its fingerprint shown before the token
    is sent, so the token only ever goes to a certificate the user accepted.
    """

    VERSION = 1
    MINOR_VERSION = 1

    def __init__(self) -> None:
        """Start with no connection pending and no certificate accepted."""
        self._pending: dict[str, Any] = {}
        self._trusted: set[str] = set()
        # The fingerprint a discovery announced: the certificate fetched must have it.
        self._announced_fingerprint: str | None = None
        self._discovered_name = ""

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: HomeSecurityAIConfigEntry) -> OptionsFlow:
        """Return the options flow."""
        return HomeSecurityAIOptionsFlow()

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask where the sidecar is, for its token and whether it uses TLS."""
        errors: dict[str, str] = {}
        if user_input is not None:
            self._pending = _connection_data(user_input)
            errors = await self._async_fetch_certificate(bool(user_input.get(CONF_USE_TLS)))
            if not errors:
                return await self._async_continue()
        return self._async_show_connection_form(errors, user_input)

    async def async_step_hassio(self, discovery_info: HassioServiceInfo) -> ConfigFlowResult:
        """The Home Security AI add-on announced itself through the Supervisor.

        The Supervisor is trusted: its discovery carries the token and the fingerprint, so the
        user only confirms.
        """
        config = discovery_info.config
        self._pending = {
            CONF_HOST: str(config.get(CONF_HOST, "")),
            CONF_PORT: int(config.get(CONF_PORT, DEFAULT_PORT)),
            CONF_TOKEN: str(config.get(CONF_TOKEN, "")),
        }
        if server_id := str(config.get("server_id", "")):
            await self.async_set_unique_id(server_id)
            # A reinstalled or moved add-on: the entry follows its address and token.
            self._abort_if_unique_id_configured(updates=self._pending)
        self._announced_fingerprint = str(config.get("tls_fingerprint") or "") or None
        self._discovered_name = discovery_info.name
        self.context["title_placeholders"] = {"name": discovery_info.name}
        return await self.async_step_hassio_confirm()

    async def async_step_hassio_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """One click: connect to the add-on with what the Supervisor handed over."""
        if user_input is None:
            return self.async_show_form(
                step_id="hassio_confirm",
                description_placeholders={"addon": self._discovered_name},
            )
        if reason := await self._async_pin_announced_certificate():
            return self.async_abort(reason=reason)
        return await self._async_connect_and_save()

    async def async_step_zeroconf(
        self, discovery_info: ZeroconfServiceInfo
    ) -> ConfigFlowResult:
        """A sidecar announced itself on the network: host, port and fingerprint, no token."""
        properties = discovery_info.properties
        server_id = str(properties.get("id") or "")
        if not server_id or discovery_info.port is None:
            return self.async_abort(reason="not_home_security_ai")
        host = str(discovery_info.ip_address)
        await self.async_set_unique_id(server_id)
        # The sidecar moved (a new address from DHCP, another port): follow it.
        self._abort_if_unique_id_configured(
            updates={CONF_HOST: host, CONF_PORT: discovery_info.port}
        )
        self._pending = {CONF_HOST: host, CONF_PORT: discovery_info.port}
        self._announced_fingerprint = str(properties.get("fp") or "") or None
        self.context["title_placeholders"] = {"name": f"{host}:{discovery_info.port}"}
        return await self.async_step_zeroconf_confirm()

    async def async_step_zeroconf_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask only for the token: an announcement is public, so it never carries one."""
        errors: dict[str, str] = {}
        if user_input is not None:
            self._pending[CONF_TOKEN] = str(user_input[CONF_TOKEN])
            if reason := await self._async_pin_announced_certificate():
                errors = {"base": reason}
            else:
                return await self._async_connect_and_save()
        return self.async_show_form(
            step_id="zeroconf_confirm",
            data_schema=STEP_ZEROCONF_CONFIRM_SCHEMA,
            description_placeholders={
                CONF_HOST: self._pending[CONF_HOST],
                CONF_PORT: str(self._pending[CONF_PORT]),
                "fingerprint": self._announced_fingerprint or "-",
            },
            errors=errors,
        )

    async def _async_pin_announced_certificate(self) -> str | None:
        """Fetch the discovered sidecar's certificate; it must have the announced fingerprint.

        Return the reason it cannot be used, or None. The user saw the announced fingerprint
        (or the Supervisor vouched for it), so a matching certificate is trusted.
        """
        announced = self._announced_fingerprint
        if announced is None:
            return None  # the sidecar chose plaintext
        if await self._async_fetch_certificate(use_tls=True):
            return "cannot_connect"
        cert_pem: str = self._pending[CONF_TLS_CERTIFICATE]
        if certificate_fingerprint(cert_pem).upper() != announced.upper():
            return "certificate_mismatch"
        self._trusted.add(cert_pem)
        return None

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Start a reauthentication after the sidecar refused the token."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the new token; a TLS entry keeps its pinned certificate."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = _connection_data({**entry.data, CONF_TOKEN: user_input[CONF_TOKEN]})
            status, errors = await _async_try_connect(**data)
            if status is not None:
                await self.async_set_unique_id(status.server_id)
                self._abort_if_unique_id_mismatch(reason="wrong_server")
                return self.async_update_reload_and_abort(
                    entry, data_updates={CONF_TOKEN: data[CONF_TOKEN]}
                )
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=STEP_REAUTH_SCHEMA,
            description_placeholders={CONF_HOST: entry.data[CONF_HOST]},
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change where the sidecar is, its token or TLS."""
        entry = self._get_reconfigure_entry()
        if pinned := entry.data.get(CONF_TLS_CERTIFICATE):
            self._trusted.add(pinned)
        errors: dict[str, str] = {}
        if user_input is not None:
            self._pending = _connection_data(user_input)
            errors = await self._async_fetch_certificate(bool(user_input.get(CONF_USE_TLS)))
            if not errors:
                return await self._async_continue()
        return self._async_show_connection_form(errors, user_input or _form_values(entry.data))

    async def async_step_tls_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the certificate's fingerprint for the user to compare with the sidecar's."""
        cert_pem: str = self._pending[CONF_TLS_CERTIFICATE]
        if user_input is not None:
            if not user_input[CONF_FINGERPRINT_MATCHES]:
                return self.async_abort(reason="certificate_not_trusted")
            self._trusted.add(cert_pem)
            return await self._async_connect_and_save()
        return self.async_show_form(
            step_id="tls_confirm",
            data_schema=STEP_TLS_CONFIRM_SCHEMA,
            description_placeholders={
                CONF_HOST: self._pending[CONF_HOST],
                "fingerprint": certificate_fingerprint(cert_pem),
            },
        )

    async def _async_fetch_certificate(self, use_tls: bool) -> dict[str, str]:
        """With TLS, put the certificate the sidecar presents into the pending data."""
        if not use_tls:
            return {}
        host, port = self._pending[CONF_HOST], self._pending[CONF_PORT]
        try:
            self._pending[CONF_TLS_CERTIFICATE] = await self.hass.async_add_executor_job(
                fetch_server_certificate, host, port
            )
        except TlsUnavailable:
            return {CONF_USE_TLS: "tls_unavailable"}
        except CannotConnect:
            return {CONF_HOST: "cannot_connect"}
        return {}

    async def _async_continue(self) -> ConfigFlowResult:
        """Have a certificate not accepted yet checked by the user; else connect and save."""
        cert_pem = self._pending.get(CONF_TLS_CERTIFICATE)
        if cert_pem is not None and cert_pem not in self._trusted:
            return await self.async_step_tls_confirm()
        return await self._async_connect_and_save()

    async def _async_connect_and_save(self) -> ConfigFlowResult:
        """Test the pending connection; create the entry or update the reconfigured one."""
        data = self._pending
        status, errors = await _async_try_connect(**data)
        if status is None:
            if errors.get(CONF_HOST) == "cannot_connect":
                if CONF_TLS_CERTIFICATE in data:
                    # It presented this certificate a moment ago, yet refused it when pinned.
                    errors = {CONF_USE_TLS: "certificate_rejected"}
                elif await self._async_speaks_tls(data[CONF_HOST], data[CONF_PORT]):
                    errors = {CONF_USE_TLS: "tls_required"}
            return self._async_show_connection_form(errors, _form_values(data))
        await self.async_set_unique_id(status.server_id)
        if self.source == SOURCE_RECONFIGURE:
            self._abort_if_unique_id_mismatch(reason="wrong_server")
            entry = self._get_reconfigure_entry()
            kept = {key: value for key, value in entry.data.items() if key != CONF_TLS_CERTIFICATE}
            return self.async_update_reload_and_abort(entry, data={**kept, **data})
        self._abort_if_unique_id_configured()
        return self.async_create_entry(title=f"Home Security AI ({data[CONF_HOST]})", data=data)

    async def _async_speaks_tls(self, host: str, port: int) -> bool:
        """Whether a sidecar that refused plaintext answers with TLS."""
        try:
            await self.hass.async_add_executor_job(
                fetch_server_certificate, host, port, _TLS_PROBE_TIMEOUT
            )
        except CannotConnect:
            return False
        return True

    def _async_show_connection_form(
        self, errors: dict[str, str], values: Mapping[str, Any] | None
    ) -> ConfigFlowResult:
        step_id = "reconfigure" if self.source == SOURCE_RECONFIGURE else "user"
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(STEP_USER_SCHEMA, values),
            errors=errors,
        )


def _seconds(maximum: int, unit: str = "s") -> NumberSelector:
    return NumberSelector(
        NumberSelectorConfig(
            min=0, max=maximum, step=1, mode=NumberSelectorMode.BOX, unit_of_measurement=unit
        )
    )


def _parse_zones(text: str) -> dict[str, list[dict[str, Any]]]:
    """Read the zones editor's YAML; raise InvalidZones with a translation key."""
    if not text.strip():
        return {}
    try:
        raw = parse_yaml(text)
    except HomeAssistantError as err:
        raise InvalidZones("invalid_yaml", str(err)) from err
    return validate_zone_map(raw)


def _zones_to_yaml(zones: Mapping[str, Any]) -> str:
    if not zones:
        return ""
    return str(yaml_dump(dict(zones)))


def _check_folders(hass: HomeAssistant, folders: list[str]) -> str | None:
    """Return the first problem with the upload folders (runs in the executor)."""
    for folder in folders:
        if not os.path.isabs(folder) or not hass.config.is_allowed_path(folder):
            return "folder_not_allowed"
        if not os.path.isdir(folder):
            return "folder_not_found"
    return None


# The alerts form's check box that leads to one more quiet-hours window.
MORE_QUIET_WINDOWS = "more_quiet_windows"
# A quiet-hours window, and whether another follows: on the alerts form and each window's own.
_QUIET_WINDOW_FIELDS: dict[vol.Marker, Any] = {
    vol.Optional(CONF_QUIET_DAYS): SelectSelector(
        SelectSelectorConfig(
            options=list(WEEKDAYS),
            multiple=True,
            mode=SelectSelectorMode.LIST,
            translation_key="weekday",
        )
    ),
    vol.Optional(CONF_QUIET_START): TimeSelector(),
    vol.Optional(CONF_QUIET_END): TimeSelector(),
    vol.Optional(MORE_QUIET_WINDOWS, default=False): BooleanSelector(),
}
ALERTS_SCHEMA = vol.Schema(
    {
        vol.Optional(CONF_PRESENCE_PERSONS): EntitySelector(
            EntitySelectorConfig(domain="person", multiple=True)
        ),
        vol.Required(CONF_ESCALATE, default=True): BooleanSelector(),
        **_QUIET_WINDOW_FIELDS,
    }
)
QUIET_WINDOW_SCHEMA = vol.Schema(_QUIET_WINDOW_FIELDS)


def _fields_named(names: dict[str, str]) -> str:
    """Tell the form's fields (named by camera ids) by their cameras' names: "Porch: porch"."""
    return "; ".join(
        f"{name}: {field}" if name != field else field for field, name in names.items()
    )


def _score_key(camera: str) -> str:
    """The options form's field for a camera's minimum score, beside its minimum level."""
    return f"{camera} (score)"


_SCORE_SELECTOR = NumberSelector(
    NumberSelectorConfig(min=0, max=100, step=1, mode=NumberSelectorMode.BOX)
)
_LEVEL_SELECTOR = SelectSelector(
    SelectSelectorConfig(
        options=list(RISK_LEVELS), mode=SelectSelectorMode.DROPDOWN, translation_key="risk_level"
    )
)


MEDIA_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_MEDIA_RETENTION_DAYS, default=DEFAULT_MEDIA_RETENTION_DAYS): (
            NumberSelector(
                NumberSelectorConfig(
                    min=1,
                    max=MAX_MEDIA_RETENTION_DAYS,
                    step=1,
                    mode=NumberSelectorMode.BOX,
                    unit_of_measurement="d",
                )
            )
        ),
        vol.Required(CONF_KEEP_MEDIA_ON_REMOVAL, default=False): BooleanSelector(),
    }
)


class HomeSecurityAIOptionsFlow(OptionsFlow):
    """Chooses the frame sources, the rules for alerts, or how long media is kept."""

    def __init__(self) -> None:
        """Start with no pending choices."""
        self._options: dict[str, Any] = {}
        # Which of the kept quiet-hours windows the next window form offers.
        self._window_step = 0

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Offer the groups of options."""
        return self.async_show_menu(step_id="init", menu_options=["sources", "alerts", "media"])

    async def async_step_sources(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Pick camera entities, the snapshot interval and upload folders."""
        errors: dict[str, str] = {}
        if user_input is not None:
            folders = list(
                dict.fromkeys(
                    folder.strip()
                    for folder in user_input.get(CONF_UPLOAD_FOLDERS, [])
                    if folder.strip()
                )
            )
            error = await self.hass.async_add_executor_job(_check_folders, self.hass, folders)
            zones: dict[str, list[dict[str, Any]]] = {}
            try:
                zones = _parse_zones(str(user_input.get(CONF_ZONES_YAML, "")))
            except InvalidZones as err:
                errors[CONF_ZONES_YAML] = err.key
            if error is not None:
                errors[CONF_UPLOAD_FOLDERS] = error
            if not errors:
                self._options = {
                    **self.config_entry.options,
                    CONF_CAMERAS: list(user_input.get(CONF_CAMERAS, [])),
                    CONF_SNAPSHOT_INTERVAL: int(
                        user_input.get(CONF_SNAPSHOT_INTERVAL, DEFAULT_SNAPSHOT_INTERVAL)
                    ),
                    CONF_UPLOAD_FOLDERS: folders,
                    CONF_BATCH_WINDOW: int(user_input.get(CONF_BATCH_WINDOW, 0)),
                    CONF_IDLE_TIMEOUT: int(user_input.get(CONF_IDLE_TIMEOUT, 0)),
                    CONF_THREAT_MINUTES: int(
                        user_input.get(CONF_THREAT_MINUTES, DEFAULT_THREAT_MINUTES)
                    ),
                    CONF_ZONES: zones,
                }
                if self._options[CONF_CAMERAS]:
                    return await self.async_step_motion()
                return self.async_create_entry(data={**self._options, CONF_MOTION_SENSORS: {}})

        schema = vol.Schema(
            {
                # Not this integration's own cameras: their frames would come back as input.
                vol.Optional(CONF_CAMERAS): EntitySelector(
                    EntitySelectorConfig(
                        domain="camera", multiple=True, exclude_entities=self._own_cameras()
                    )
                ),
                vol.Required(
                    CONF_SNAPSHOT_INTERVAL, default=DEFAULT_SNAPSHOT_INTERVAL
                ): NumberSelector(
                    NumberSelectorConfig(
                        min=0,
                        max=MAX_SNAPSHOT_INTERVAL,
                        step=1,
                        mode=NumberSelectorMode.BOX,
                        unit_of_measurement="s",
                    )
                ),
                vol.Optional(CONF_UPLOAD_FOLDERS): TextSelector(TextSelectorConfig(multiple=True)),
                vol.Required(CONF_BATCH_WINDOW, default=0): _seconds(MAX_BATCH_SECONDS),
                vol.Required(CONF_IDLE_TIMEOUT, default=0): _seconds(MAX_BATCH_SECONDS),
                vol.Required(CONF_THREAT_MINUTES, default=DEFAULT_THREAT_MINUTES): _seconds(
                    1440, "min"
                ),
                vol.Optional(CONF_ZONES_YAML): TextSelector(TextSelectorConfig(multiline=True)),
            }
        )
        current = user_input or {
            **self.config_entry.options,
            CONF_ZONES_YAML: _zones_to_yaml(self.config_entry.options.get(CONF_ZONES, {})),
        }
        return self.async_show_form(
            step_id="sources",
            data_schema=self.add_suggested_values_to_schema(schema, current),
            errors=errors,
        )

    def _own_cameras(self) -> list[str]:
        """Return the camera entities of every entry of this integration."""
        registry = er.async_get(self.hass)
        return sorted(
            entity.entity_id
            for entry in self.hass.config_entries.async_entries(DOMAIN)
            for entity in er.async_entries_for_config_entry(registry, entry.entry_id)
            if entity.domain == "camera"
        )

    async def async_step_motion(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Pick an optional motion sensor per camera; motion triggers a snapshot."""
        cameras: list[str] = self._options[CONF_CAMERAS]
        if user_input is not None:
            motion = {camera: user_input[camera] for camera in cameras if user_input.get(camera)}
            return self.async_create_entry(data={**self._options, CONF_MOTION_SENSORS: motion})
        current: dict[str, str] = self.config_entry.options.get(CONF_MOTION_SENSORS, {})
        schema = vol.Schema(
            {
                vol.Optional(camera): EntitySelector(EntitySelectorConfig(domain="binary_sensor"))
                for camera in cameras
            }
        )
        return self.async_show_form(
            step_id="motion",
            data_schema=self.add_suggested_values_to_schema(schema, current),
            description_placeholders={"cameras": _fields_named(self._entity_names(cameras))},
        )

    async def async_step_alerts(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Pick who must be home, escalation and quiet hours; then per-camera minimum levels."""
        errors: dict[str, str] = {}
        if user_input is not None:
            days = [day for day in WEEKDAYS if day in user_input.get(CONF_QUIET_DAYS, [])]
            start, end = user_input.get(CONF_QUIET_START), user_input.get(CONF_QUIET_END)
            if days and not (start and end):
                errors["base"] = "quiet_hours_incomplete"
            else:
                self._options = {
                    **self.config_entry.options,
                    CONF_PRESENCE_PERSONS: list(user_input.get(CONF_PRESENCE_PERSONS, [])),
                    CONF_ESCALATE: bool(user_input.get(CONF_ESCALATE, True)),
                    CONF_QUIET_DAYS: days,
                    CONF_QUIET_START: start or None,
                    CONF_QUIET_END: end or None,
                    CONF_QUIET_WINDOWS: [],
                }
                if user_input.get(MORE_QUIET_WINDOWS):
                    return await self.async_step_quiet_window()
                return await self._after_quiet_hours()
        current = user_input or {
            **self.config_entry.options,
            MORE_QUIET_WINDOWS: bool(self.config_entry.options.get(CONF_QUIET_WINDOWS)),
        }
        return self.async_show_form(
            step_id="alerts",
            data_schema=self.add_suggested_values_to_schema(ALERTS_SCHEMA, current),
            errors=errors,
        )

    async def async_step_quiet_window(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """One more quiet-hours window (the ones kept so far are offered one by one; a window
        left empty is dropped), then another or the minimum levels."""
        windows: list[dict[str, Any]] = self._options[CONF_QUIET_WINDOWS]
        kept: list[dict[str, Any]] = self.config_entry.options.get(CONF_QUIET_WINDOWS, [])
        errors: dict[str, str] = {}
        if user_input is not None:
            days = [day for day in WEEKDAYS if day in user_input.get(CONF_QUIET_DAYS, [])]
            start, end = user_input.get(CONF_QUIET_START), user_input.get(CONF_QUIET_END)
            if bool(days) != bool(start and end):
                errors["base"] = "quiet_hours_incomplete"
            else:
                if days:
                    windows.append({"days": days, "start": start, "end": end})
                self._window_step += 1
                if user_input.get(MORE_QUIET_WINDOWS):
                    return await self.async_step_quiet_window()
                return await self._after_quiet_hours()
        suggested: dict[str, Any] = {}
        if user_input is not None:
            suggested = user_input
        elif self._window_step < len(kept):
            previous = kept[self._window_step]
            suggested = {
                CONF_QUIET_DAYS: previous.get("days", []),
                CONF_QUIET_START: previous.get("start"),
                CONF_QUIET_END: previous.get("end"),
                MORE_QUIET_WINDOWS: self._window_step + 1 < len(kept),
            }
        return self.async_show_form(
            step_id="quiet_window",
            data_schema=self.add_suggested_values_to_schema(QUIET_WINDOW_SCHEMA, suggested),
            errors=errors,
            description_placeholders={"number": str(len(windows) + 2)},
        )

    async def _after_quiet_hours(self) -> ConfigFlowResult:
        if self._known_cameras():
            return await self.async_step_alert_levels()
        return self.async_create_entry(data=self._options)

    async def async_step_media(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Pick how long snapshots and clips are kept, and whether they outlive the entry."""
        if user_input is not None:
            return self.async_create_entry(
                data={
                    **self.config_entry.options,
                    CONF_MEDIA_RETENTION_DAYS: int(user_input[CONF_MEDIA_RETENTION_DAYS]),
                    CONF_KEEP_MEDIA_ON_REMOVAL: bool(user_input[CONF_KEEP_MEDIA_ON_REMOVAL]),
                }
            )
        return self.async_show_form(
            step_id="media",
            data_schema=self.add_suggested_values_to_schema(
                MEDIA_SCHEMA, dict(self.config_entry.options)
            ),
        )

    def _known_cameras(self) -> list[str]:
        """Return the ids of the entry's cameras, and of those that have a minimum level."""
        known = set(self.config_entry.options.get(CONF_MIN_LEVELS, {}))
        if self.config_entry.state is ConfigEntryState.LOADED:
            known.update(self.config_entry.runtime_data.cameras)
        return sorted(known)

    def _entity_names(self, entity_ids: list[str]) -> dict[str, str]:
        """Each camera entity's friendly name, as the user knows it."""
        return {
            entity_id: state.name if (state := self.hass.states.get(entity_id)) else entity_id
            for entity_id in entity_ids
        }

    def _camera_names(self, cameras: list[str]) -> dict[str, str]:
        """Each camera id's name, as the entry's cameras know it."""
        names = {camera: camera for camera in cameras}
        if self.config_entry.state is ConfigEntryState.LOADED:
            for camera in cameras:
                if (state := self.config_entry.runtime_data.cameras.get(camera)) is not None:
                    names[camera] = state.name
        return names

    async def async_step_alert_levels(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Pick per camera the lowest risk level that alerts (critical always does)."""
        cameras = self._known_cameras()
        if user_input is not None:
            levels = {
                camera: user_input[camera]
                for camera in cameras
                if user_input.get(camera, RISK_LEVELS[0]) != RISK_LEVELS[0]
            }
            scores = {
                camera: int(user_input[_score_key(camera)])
                for camera in cameras
                if user_input.get(_score_key(camera))
            }
            return self.async_create_entry(
                data={**self._options, CONF_MIN_LEVELS: levels, CONF_MIN_SCORES: scores}
            )
        current: dict[str, str] = self.config_entry.options.get(CONF_MIN_LEVELS, {})
        scores_now: dict[str, int] = self.config_entry.options.get(CONF_MIN_SCORES, {})
        fields: dict[vol.Marker, Any] = {}
        for camera in cameras:
            fields[vol.Required(camera, default=current.get(camera, RISK_LEVELS[0]))] = (
                _LEVEL_SELECTOR
            )
            fields[
                vol.Optional(
                    _score_key(camera),
                    description={"suggested_value": scores_now.get(camera)},
                )
            ] = _SCORE_SELECTOR
        schema = vol.Schema(fields)
        return self.async_show_form(
            step_id="alert_levels",
            data_schema=schema,
            description_placeholders={"cameras": _fields_named(self._camera_names(cameras))},
        )
