"""The embedded default configuration: what ``smppgw run`` uses with no file.

SQLite under ``var/``, the built-in simulator as the carrier, the partner server on
loopback with one unmetered demo partner. ``config/smppgw.yaml`` spells out the same
thing (a test holds them equal), so a fresh checkout runs with no file written by hand.
"""

from __future__ import annotations

from pydantic import SecretStr

from smppgw.app import partner_models
from smppgw.app.config_models import (
    CarrierSettings,
    Config,
    Durability,
    Endpoint,
    SimulatorSettings,
    StoreSettings,
)

__all__ = ["DEMO_PASSWORD_HASH", "default_config"]


def default_config() -> Config:
    """The embedded default: SQLite under ``var/``, the built-in simulator as the carrier.

    ``config/smppgw.yaml`` spells out the same thing (a test holds them equal), so
    ``smppgw run`` from a fresh checkout works with no file written by hand.
    """
    return Config(
        store=StoreSettings(durability=Durability.PROCESS),
        simulator=SimulatorSettings(
            enabled=True, process=True, control=Endpoint("127.0.0.1", 2777)
        ),
        carriers=(
            CarrierSettings(
                name="sim",
                host="127.0.0.1",
                port=2776,
                system_id="smppgw",
                password=SecretStr("smppgw"),
                window=64,
            ),
        ),
        default_route=("sim",),
        server=partner_models.ServerSettings(listen=Endpoint("127.0.0.1", 2775)),
        partners=(
            partner_models.PartnerSettings(
                system_id="demo",
                password_hash=DEMO_PASSWORD_HASH,
                sources=("DEMO", "8055"),
                billing=partner_models.Billing.UNMETERED,
            ),
        ),
    )


#: ``demo``'s password is ``demo`` (the embedded default is for trying things locally).
DEMO_PASSWORD_HASH = (
    "scrypt$16384$8$1$c21wcGd3LWRlbW8tc2FsdA==$xQvSO5y1WBlt0Dgs8NEcYKkfvetah2UIEBCHTF5VpJg="
)
