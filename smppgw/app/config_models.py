"""Configuration models: what an operator may write in ``smppgw.yaml``, and its limits.

The daemon reads one YAML file (see ``config/smppgw.example.yaml``); these models are
its schema. :mod:`smppgw.app.config_load` turns a file into a :class:`Config` and every
problem into ``file:line: key.path: reason``.

Rules:

- Every model is frozen and forbids unknown keys: a typo (``windw: 50``) is an error
  with its line, never a setting silently ignored while the default applies.
- Ranges are checked here, once; components trust a :class:`Config` they are given.
- Rules that span fields live on the smallest model that sees them all. The ones on
  :class:`Config` (unique carrier names, routes naming real carriers) raise
  :class:`CrossFieldError`, which carries one location per problem so the loader can
  point at the exact line of each.
- Relative paths are relative to the daemon's working directory (systemd's
  ``WorkingDirectory=``), not to the config file: one rule for every path, and the
  repository's ``config/smppgw.yaml`` can say ``var/smppgw.sqlite``.
- Secrets are :class:`~pydantic.SecretStr`: ``repr``, ``str`` and ``model_dump`` show
  ``**********``. A carrier's password comes from exactly one of ``password``,
  ``password_env`` or ``password_file`` and is resolved during validation, so an unset
  variable fails ``check-config`` rather than the first bind at 3 a.m.
- Where a component already names a concept (``IdFormat``, ``SplitMode``,
  ``Durability``), the model uses that enum, so the YAML words and the code agree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Self

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from smppgw.app.config_base import (
    _DIGITS,
    _NAME,
    MAX_ADDRESS_RANGE,
    MAX_SERVICE_TYPE,
    MAX_SYSTEM_ID,
    MAX_SYSTEM_TYPE,
    NPI_VALUES,
    BindMode,
    CrossFieldError,
    DefaultAlphabet,
    Endpoint,
    EndpointField,
    LogFormat,
    LogLevel,
    _check_password,
    _env,
    _Model,
    _read_secret_file,
    dotted_key,
)
from smppgw.protocol.framer import DEFAULT_MAX_COMMAND_LENGTH
from smppgw.protocol.message_id import IdFormat
from smppgw.protocol.smpp_time import ValidityFormat
from smppgw.protocol.text.parts import SplitMode
from smppgw.protocol.tlv import Tag, is_vendor_tag
from smppgw.store.config import Durability, StoreConfig

__all__ = [
    "BindMode",
    "CarrierSettings",
    "Config",
    "CrossFieldError",
    "DataCodingSettings",
    "DefaultAlphabet",
    "Durability",
    "Endpoint",
    "IdFormat",
    "LogFormat",
    "LogLevel",
    "LoggingSettings",
    "MetricsSettings",
    "ReceiptOutcomes",
    "ReconnectSettings",
    "RouteSettings",
    "SimAccount",
    "SimMoSettings",
    "SimReceiptSettings",
    "SimulatorSettings",
    "SplitMode",
    "StoreSettings",
    "TlsSettings",
    "ValidityFormat",
    "dotted_key",
]


_STORE_DEFAULTS = StoreConfig()


class StoreSettings(_Model):
    """The SQLite journal; defaults are the store's own (see :mod:`smppgw.store.config`)."""

    path: Path = Path("var/smppgw.sqlite")
    durability: Durability = _STORE_DEFAULTS.durability
    batch_max: int = Field(default=_STORE_DEFAULTS.max_batch_items, ge=1, le=100_000)
    linger_ms: float = Field(default=_STORE_DEFAULTS.linger * 1000, ge=0, le=1000)
    #: Background WAL checkpoints every this many ms (0: inside the commits, SQLite's way).
    checkpoint_ms: float = Field(
        default=_STORE_DEFAULTS.checkpoint_interval * 1000, ge=0, le=60_000
    )

    def to_store_config(self) -> StoreConfig:
        """The store's own settings object, in its units (seconds, items)."""
        return StoreConfig(
            durability=self.durability,
            max_batch_items=self.batch_max,
            linger=self.linger_ms / 1000,
            checkpoint_interval=self.checkpoint_ms / 1000,
        )


class MetricsSettings(_Model):
    """The Prometheus scrape endpoint (``/metrics``, ``/healthz``)."""

    enabled: bool = True
    listen: EndpointField = Endpoint("127.0.0.1", 9464)


class LoggingSettings(_Model):
    level: LogLevel = LogLevel.INFO
    format: LogFormat = LogFormat.JSON
    #: Subscriber numbers are personal data: logs keep only their ends (849*****678).
    mask_numbers: bool = True

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class SimAccount(_Model):
    """A system_id/password the built-in simulator accepts in bind requests."""

    system_id: str = Field(min_length=1, max_length=MAX_SYSTEM_ID)
    password: SecretStr

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr) -> SecretStr:
        _check_password(value.get_secret_value())
        return value


class ReceiptOutcomes(_Model):
    """Relative weights of the final states the simulator reports in receipts."""

    DELIVRD: float = Field(default=1.0, ge=0)
    UNDELIV: float = Field(default=0.0, ge=0)
    EXPIRED: float = Field(default=0.0, ge=0)
    REJECTD: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> Self:
        if self.DELIVRD + self.UNDELIV + self.EXPIRED + self.REJECTD <= 0:
            raise ValueError("at least one outcome needs a weight above 0")
        return self


class SimReceiptSettings(_Model):
    delay_ms: float = Field(default=50.0, ge=0, le=3_600_000)
    outcomes: ReceiptOutcomes = ReceiptOutcomes()


class SimMoSettings(_Model):
    """Defaults for mobile-originated messages the simulator injects."""

    short_code: str = Field(default="8055", min_length=1, max_length=20)
    source_addr: str = Field(default="84912345678", min_length=1, max_length=20)


class SimulatorSettings(_Model):
    """The built-in SMSC simulator, the carrier of the embedded default."""

    enabled: bool = False
    #: In a child process of the daemon (``smppgw.app.sim_process``: it then does not
    #: share the gateway's interpreter lock); false: in the daemon's own process.
    process: bool = False
    listen: EndpointField = Endpoint("127.0.0.1", 2776)
    accounts: tuple[SimAccount, ...] = Field(
        default=(SimAccount(system_id="smppgw", password=SecretStr("smppgw")),), min_length=1
    )
    id_format: Literal["hex", "decimal"] = "hex"
    receipt: SimReceiptSettings = SimReceiptSettings()
    mo: SimMoSettings = SimMoSettings()
    #: Its HTTP control endpoint (``smppgw sim mo|messages|faults --control``); None: off.
    control: EndpointField | None = None


class TlsSettings(_Model):
    enabled: bool = True
    #: PEM bundle of CAs to trust; None uses the system's trust store.
    ca_file: Path | None = None
    verify: bool = True
    #: Name to check the certificate against (and send as SNI); None uses ``host``.
    server_hostname: str | None = None

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not os.access(value, os.R_OK):
            raise ValueError(f"cannot read CA file {str(value)!r}")
        return value


class ReconnectSettings(_Model):
    """Back-off between bind attempts (see :class:`smppgw.net.backoff.Backoff`)."""

    initial: float = Field(default=1.0, gt=0, le=3600)
    max: float = Field(default=60.0, gt=0, le=86_400)
    multiplier: float = Field(default=2.718281828, ge=1, le=10)
    jitter: float = Field(default=0.2, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max < self.initial:
            raise ValueError(f"max ({self.max}) is below initial ({self.initial})")
        return self


class DataCodingSettings(_Model):
    default_alphabet: DefaultAlphabet = DefaultAlphabet.GSM7
    #: May text that fits Latin-1 but not GSM go out as data_coding 3 (else UCS2)?
    allow_latin1: bool = False


class CarrierSettings(_Model):
    """One carrier SMSC: where it is, how we bind, and what it expects of our PDUs."""

    name: str
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    tls: TlsSettings | None = None
    system_id: str = Field(min_length=1, max_length=MAX_SYSTEM_ID)
    #: After loading, always the resolved password, whichever key gave it.
    password: SecretStr | None = None
    password_env: str | None = None
    password_file: Path | None = None
    system_type: str = Field(default="", max_length=MAX_SYSTEM_TYPE)
    #: The bind's ``address_range``: the addresses this session serves, for an SMSC that
    #: routes MO to receiver binds by it (a short code, or a regular expression).
    address_range: str = Field(default="", max_length=MAX_ADDRESS_RANGE)
    #: The ``service_type`` of every submit_sm (``CMT``, ``WAP``, or the carrier's own
    #: billing value); empty: the SMSC's default.
    service_type: str = Field(default="", max_length=MAX_SERVICE_TYPE)
    #: TLVs (names such as ``ms_validity``, or tag numbers) this carrier is never sent:
    #: partners' TLVs go with their messages, and an SMSC that refuses one of them would
    #: fail every message carrying it.
    drop_tlvs: tuple[int, ...] = ()
    #: Vendor TLV tags (0x1400-0x3FFF) of partners' submits this carrier is sent: a
    #: vendor tag means something to one SMSC only, so none goes unless listed here
    #: (journaled with the message only when some carrier lists its tag).
    vendor_tlvs: tuple[int, ...] = ()
    bind_mode: BindMode = BindMode.TRANSCEIVER
    binds: int = Field(default=1, ge=1, le=64)
    window: int = Field(default=10, ge=1, le=1024)
    #: Message parts a second across all this carrier's binds; 0 means no limit.
    tps: float = Field(default=0.0, ge=0, le=100_000)
    enquire_link_interval: float = Field(default=30.0, gt=0, le=3600)
    response_timeout: float = Field(default=10.0, gt=0, le=600)
    reconnect: ReconnectSettings = ReconnectSettings()
    #: For a message whose own source or destination TON and NPI are both 0 (unknown):
    #: what this carrier gets instead (``gateway/carrier_pdu.py``); 0/0 changes nothing.
    source_ton: int = Field(default=0, ge=0, le=6)
    source_npi: int = 0
    dest_ton: int = Field(default=0, ge=0, le=6)
    dest_npi: int = 0
    message_id_format: IdFormat = IdFormat.STRING
    max_command_length: int = Field(default=DEFAULT_MAX_COMMAND_LENGTH, ge=512, le=1 << 20)
    data_coding: DataCodingSettings = DataCodingSettings()
    split: SplitMode = SplitMode.UDH8
    #: Seconds within which the same MO text from the same number is this carrier
    #: delivering it again (after a lost deliver_sm_resp), not the subscriber sending it
    #: again; 0: never deduplicate MO (see smppgw.gateway.inbound.mo_dedup_keys).
    mo_dedup_window: float = Field(default=120.0, ge=0, le=86_400)
    #: Hours after which a message this carrier accepted but never sent a receipt for
    #: is made final ``expired`` (quota charged, the partner told); 0: wait for ever.
    receipt_timeout_hours: float = Field(default=72.0, ge=0, le=720)
    #: How a partner's validity_period goes to this carrier (see ``ValidityFormat``).
    validity_format: ValidityFormat = ValidityFormat.ABSOLUTE
    #: Where to accept SMSC-initiated connections (``outbind``, SMPP 3.4 section 2.2.1);
    #: None: this carrier never calls us.
    outbind_listen: EndpointField | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if _NAME.fullmatch(value) is None:
            raise ValueError("use 1-32 letters, digits, '_', '.' or '-', starting alphanumeric")
        return value

    @field_validator("split")
    @classmethod
    def _split(cls, value: SplitMode) -> SplitMode:
        if value is SplitMode.PAYLOAD:
            raise ValueError(
                "payload is not offered: long messages are cut at admission, where quota"
                " counts their parts, and go as parts; use udh8, udh16 or sar"
            )
        return value

    @field_validator("system_type", "address_range", "service_type")
    @classmethod
    def _c_octet_string(cls, value: str) -> str:
        if not (value.isascii() and value.isprintable()):
            raise ValueError("use printable ASCII (an SMPP C-octet string)")
        return value

    @field_validator("drop_tlvs", mode="before")
    @classmethod
    def _tlv_tags(cls, value: object) -> object:
        return _tag_list(value, vendor=False)

    @field_validator("vendor_tlvs", mode="before")
    @classmethod
    def _vendor_tags(cls, value: object) -> object:
        return _tag_list(value, vendor=True)

    @field_validator("source_npi", "dest_npi")
    @classmethod
    def _npi(cls, value: int) -> int:
        if value not in NPI_VALUES:
            raise ValueError(f"not an SMPP 3.4 NPI; use one of {sorted(NPI_VALUES)}")
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_password(value.get_secret_value())
        return value

    @field_validator("password_env")
    @classmethod
    def _password_env(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            secret = _env(info).get(value)
            if secret is None:
                raise ValueError(f"environment variable {value} is not set")
            _check_password(secret)
        return value

    @field_validator("password_file")
    @classmethod
    def _password_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:
                secret = _read_secret_file(value)
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ValueError(f"cannot read password file {str(value)!r}: {reason}") from None
            _check_password(secret)
        return value

    @model_validator(mode="after")
    def _resolve_password(self, info: ValidationInfo) -> Self:
        given = [
            key
            for key in ("password", "password_env", "password_file")
            if getattr(self, key) is not None
        ]
        if len(given) != 1:
            which = ", ".join(given) if given else "none"
            raise ValueError(
                f"set exactly one of password, password_env, password_file (got {which})"
            )
        if self.password_env is not None:
            resolved = SecretStr(_env(info)[self.password_env])
        elif self.password_file is not None:
            resolved = SecretStr(_read_secret_file(self.password_file))
        else:
            return self
        # The model is frozen to its users; filling in a derived field during its own
        # validation is the one write, as a frozen dataclass's __post_init__ would do.
        object.__setattr__(self, "password", resolved)
        return self

    @property
    def secret(self) -> SecretStr:
        """The resolved password (never None once the model is validated)."""
        assert self.password is not None
        return self.password

    @property
    def tls_hostname(self) -> str:
        """The name the carrier's certificate must carry."""
        return (self.tls.server_hostname if self.tls else None) or self.host


class RouteSettings(_Model):
    """Destinations starting with ``prefix`` go to ``carriers[0]``, else the next one up."""

    prefix: str
    carriers: tuple[str, ...] = Field(min_length=1)

    @field_validator("prefix", mode="before")
    @classmethod
    def _prefix(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML reads 0123 as octal 83: refuse to guess what was meant.
            raise ValueError('quote the prefix, e.g. "8496" (YAML reads bare 0123 as octal)')
        if isinstance(value, str) and _DIGITS.fullmatch(value) is None:
            raise ValueError("must be 1-15 digits of an international number, without '+'")
        return value

    @field_validator("carriers")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("a carrier is listed twice")
        return value


class Config(_Model):
    """The whole daemon configuration: one YAML file."""

    store: StoreSettings = StoreSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    carriers: tuple[CarrierSettings, ...]
    routes: tuple[RouteSettings, ...] = ()
    #: Carriers for destinations no route prefix matches; empty rejects them.
    default_route: tuple[str, ...] = ()
    #: The admin control socket (a Unix socket, mode 0600) for ``smppgw moderation``;
    #: None turns it off.
    admin_socket: Path | None = Path("var/smppgw.sock")
    #: The SMPP server partners bind to, and the partner accounts.
    server: partner_models.ServerSettings = Field(
        default_factory=lambda: partner_models.ServerSettings()
    )
    partners: tuple[partner_models.PartnerSettings, ...] = ()
    #: The MO scenario engine: where its files are, engine-wide rules.
    scenarios: scenario_models.ScenarioSettings = Field(
        default_factory=lambda: scenario_models.ScenarioSettings()
    )
    #: Order thresholds and content violations told by email and SMS.
    alerts: alert_models.AlertSettings = Field(default_factory=lambda: alert_models.AlertSettings())
    #: How long finished journal rows are kept (the file's growth bound).
    retention: retention_models.RetentionSettings = Field(
        default_factory=lambda: retention_models.RetentionSettings()
    )

    @field_validator("carriers")
    @classmethod
    def _some_carrier(cls, value: tuple[CarrierSettings, ...]) -> tuple[CarrierSettings, ...]:
        # Not ``min_length``: pydantic would also report it when every item is invalid.
        if not value:
            raise ValueError("at least one carrier is needed")
        return value

    @model_validator(mode="after")
    def _cross_check(self) -> Self:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        by_name: dict[str, CarrierSettings] = {}
        for i, carrier in enumerate(self.carriers):
            if carrier.name in by_name:
                problems.append((("carriers", i, "name"), f"duplicate carrier {carrier.name!r}"))
            by_name.setdefault(carrier.name, carrier)

        def target(loc: tuple[str | int, ...], name: str) -> None:
            carrier = by_name.get(name)
            if carrier is None:
                known = ", ".join(sorted(by_name))
                problems.append((loc, f"no carrier named {name!r} (carriers: {known})"))
            elif not carrier.bind_mode.can_send:
                problems.append((loc, f"carrier {name!r} binds as receiver and cannot send MT"))

        seen: set[str] = set()
        for i, route in enumerate(self.routes):
            if route.prefix in seen:
                problems.append((("routes", i, "prefix"), f"duplicate prefix {route.prefix!r}"))
            seen.add(route.prefix)
            for j, name in enumerate(route.carriers):
                target(("routes", i, "carriers", j), name)
        if len(set(self.default_route)) != len(self.default_route):
            problems.append((("default_route",), "a carrier is listed twice"))
        for j, name in enumerate(self.default_route):
            target(("default_route", j), name)
        if (
            self.simulator.enabled
            and self.metrics.enabled
            and self.simulator.listen == self.metrics.listen
        ):
            problems.append((("simulator", "listen"), "the same address as metrics.listen"))
        control = self.simulator.control
        if self.simulator.enabled and control is not None:
            taken = [("simulator.listen", self.simulator.listen)]
            if self.metrics.enabled:
                taken.append(("metrics.listen", self.metrics.listen))
            for key, endpoint in taken:
                if _same_socket(control, endpoint):
                    problems.append((("simulator", "control"), f"the same address as {key}"))
        if self.server.enabled:
            for key, other in (("metrics", self.metrics), ("simulator", self.simulator)):
                if other.enabled and _same_socket(self.server.listen, other.listen):
                    problems.append((("server", "listen"), f"the same address as {key}.listen"))
        problems += partner_models.partner_problems(self.partners)
        if problems:
            raise CrossFieldError(problems)
        return self

    def carrier(self, name: str) -> CarrierSettings:
        """The carrier called ``name``; KeyError if there is none."""
        for carrier in self.carriers:
            if carrier.name == name:
                return carrier
        raise KeyError(name)

    def vendor_tlv_tags(self) -> frozenset[int]:
        """Vendor TLV tags some carrier takes: admission journals these with a message."""
        return frozenset(tag for carrier in self.carriers for tag in carrier.vendor_tlvs)

    def cut_room(self) -> SplitMode:
        """How long the parts of a long message are cut at admission: ``UDH16``'s room
        (one octet less) when some carrier wants a 16-bit reference, so that one cut
        fits every carrier; else ``UDH8``'s (``sar`` parts get the same room)."""
        if any(carrier.split is SplitMode.UDH16 for carrier in self.carriers):
            return SplitMode.UDH16
        return SplitMode.UDH8

    def route_table(self) -> dict[str, tuple[str, ...]]:
        """``{prefix: carriers}``, the shape :class:`smppgw.gateway.routing.PrefixRouter` takes."""
        return {route.prefix: route.carriers for route in self.routes}

    def summary(self) -> str:
        """One line for ``check-config`` and the start-up log."""
        names = ", ".join(c.name for c in self.carriers)
        default = ",".join(self.default_route) or "none"
        parts = [
            f"{len(self.carriers)} carrier(s) [{names}]",
            f"{len(self.routes)} route(s), default -> {default}",
            f"store {self.store.path} ({self.store.durability})",
            f"metrics {self.metrics.listen if self.metrics.enabled else 'off'}",
            f"simulator {self.simulator.listen if self.simulator.enabled else 'off'}",
        ]
        return "; ".join(parts)


_VENDOR_TAG = "a vendor TLV tag (0x1400-0x3FFF)"
_ANY_TAG = "a TLV tag (a name or 1..0xFFFF)"


def _tag_list(value: object, *, vendor: bool) -> object:
    """TLV tags as numbers (``0x1401``, ``"0x1401"``), or SMPP 3.4 names
    (``ms_validity``) unless ``vendor`` (vendor tags, 0x1400-0x3FFF, have none)."""
    if not isinstance(value, list | tuple):
        return value
    tags = []
    for item in value:
        if isinstance(item, str):
            text = item.strip()
            try:
                item = int(text, 0) if vendor or text[:1].isdigit() else int(Tag[text.upper()])
            except (KeyError, ValueError):
                what = "a tag number (0x1400-0x3FFF)" if vendor else "an SMPP 3.4 TLV name"
                raise ValueError(f"{item!r} is not {what}") from None
        if not isinstance(item, int) or isinstance(item, bool):
            valid = False
        else:
            valid = is_vendor_tag(item) if vendor else 0 < item <= 0xFFFF
        if not valid:
            raise ValueError(f"{item!r} is not {_VENDOR_TAG if vendor else _ANY_TAG}")
        tags.append(item)
    return tuple(tags)


def _same_socket(a: Endpoint, b: Endpoint) -> bool:
    wildcard = ("0.0.0.0", "::", "")
    return a.port == b.port and (a.host == b.host or a.host in wildcard or b.host in wildcard)


# At the end: partner_models reuses Endpoint and EndpointField from this module, so it
# cannot be imported before they exist. Config's annotations name it through the module,
# which pydantic resolves on first use, so either module may be imported first.
from smppgw.app import (  # noqa: E402
    alert_models,
    partner_models,
    retention_models,
    scenario_models,
)
