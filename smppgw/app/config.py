"""The daemon's configuration: import models and loaders from here.

The models (:mod:`smppgw.app.config_models`) and the YAML loader with its line-numbered
errors (:mod:`smppgw.app.config_load`) live in two modules to stay readable; this one
is the single place other code imports them from.
"""

from __future__ import annotations

from smppgw.app.config_default import default_config
from smppgw.app.config_load import ConfigError, Problem, load_config, load_config_text
from smppgw.app.config_models import (
    BindMode,
    CarrierSettings,
    Config,
    CrossFieldError,
    DataCodingSettings,
    DefaultAlphabet,
    Durability,
    Endpoint,
    IdFormat,
    LogFormat,
    LoggingSettings,
    LogLevel,
    MetricsSettings,
    ReceiptOutcomes,
    ReconnectSettings,
    RouteSettings,
    SimAccount,
    SimMoSettings,
    SimReceiptSettings,
    SimulatorSettings,
    SplitMode,
    StoreSettings,
    TlsSettings,
)
from smppgw.app.partner_models import (
    Billing,
    ContentPolicy,
    Moderation,
    OnViolation,
    PartnerSettings,
    ServerSettings,
    ServerTlsSettings,
    TrafficClass,
    partner_map,
)

__all__ = [
    "Billing",
    "BindMode",
    "CarrierSettings",
    "Config",
    "ConfigError",
    "ContentPolicy",
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
    "Moderation",
    "OnViolation",
    "PartnerSettings",
    "Problem",
    "ReceiptOutcomes",
    "ReconnectSettings",
    "RouteSettings",
    "ServerSettings",
    "ServerTlsSettings",
    "SimAccount",
    "SimMoSettings",
    "SimReceiptSettings",
    "SimulatorSettings",
    "SplitMode",
    "StoreSettings",
    "TlsSettings",
    "TrafficClass",
    "default_config",
    "load_config",
    "load_config_text",
    "partner_map",
]
