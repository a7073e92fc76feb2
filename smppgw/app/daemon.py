"""``smppgw run``: the daemon as one trio supervision tree.

Theory of operation
-------------------
Nested nurseries give the order of start and stop, so nothing runs half-started and
nothing is stopped out of turn::

    root                      signals (SIGTERM/SIGINT stop, SIGHUP reload), watchdog
      store                   the journal's writer; outlives everything that writes
      services                metrics endpoint, simulator, MT pipeline
        carriers              one task per carrier, each in its own cancel scope

Every service is started with ``nursery.start`` and reports ``started`` only once it is
really up (the store open and migrated, a port listening), so a start-up failure stops
the daemon with that error instead of leaving it half-running. Carriers are the one
exception by design: an SMSC that is down must not stop the gateway starting; their bind
loops keep trying and the metrics show them down.

Stop (SIGTERM or SIGINT): tell systemd ``STOPPING``, unbind every carrier bind politely
(bounded by ``grace``), cancel the services, write every pending outcome to the journal,
then stop the store, whose writer finishes its last commit. The whole stop is bounded by
``stop_timeout``; the daemon exits 0.

Reload (SIGHUP): the config file is read and validated again; a bad file is logged and
ignored (the running config stays). Carriers whose settings did not change keep their
binds; changed ones are restarted, new ones started, removed ones unbound; routes are
swapped at once.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
import trio
from prometheus_client import CollectorRegistry

from smppgw import __version__
from smppgw.alerts.rules import violation_counts
from smppgw.alerts.service import AlertService
from smppgw.app.admin import AdminCommands, serve_admin
from smppgw.app.admin_imports import register_import_commands
from smppgw.app.admin_records import register_record_commands
from smppgw.app.alert_models import alert_problems
from smppgw.app.config import ConfigError, load_config
from smppgw.app.heap import settle_heap
from smppgw.app.logs import configure_logging
from smppgw.app.metrics import GatewayMetrics
from smppgw.app.metrics_http import serve_metrics
from smppgw.app.partner_accounts import load_partners
from smppgw.app.partner_models import partner_map
from smppgw.app.retention_service import register_retention_commands, run_retention
from smppgw.app.scenario_service import ScenarioMetrics, ScenarioService, replay_unprocessed_mo
from smppgw.app.status import snapshot as status_snapshot
from smppgw.app.systemd import Notifier
from smppgw.gateway.admission import Admission
from smppgw.gateway.auth import Authenticator
from smppgw.gateway.mt import MtPipeline
from smppgw.gateway.opt_out import ReleaseCheck
from smppgw.gateway.outbound import CarrierQueue, OutboundMessage
from smppgw.gateway.routing import PrefixRouter
from smppgw.net.carrier import CarrierClient
from smppgw.net.partner_server import PartnerServer
from smppgw.scenarios.builtin.optout import partner_scopes
from smppgw.store import Store, StoreError
from smppgw.store.inbound import unprocessed_inbound

if TYPE_CHECKING:
    from smppgw.app.config import CarrierSettings, Config
    from smppgw.app.partner_models import PartnerSettings
    from smppgw.protocol.pdus import DeliverSm
    from smppgw.store import NewMessage

__all__ = ["Daemon"]

log = structlog.get_logger("smppgw.daemon")


@dataclass
class _RunningCarrier:
    settings: CarrierSettings
    client: CarrierClient
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


class Daemon:
    """The gateway process.

    Args:
        config: the validated configuration.
        config_path: where it came from (reread on SIGHUP); None for the built-in one.
        grace: seconds allowed for polite unbinds at stop.
        stop_timeout: bound on the whole stop.
        handle_signals: install the signal handlers (off in tests that drive
            :meth:`request_stop` and :meth:`reload` themselves).
        settle_heap: once started, freeze the start's objects out of the garbage
            collector's way (``app/heap.py``); for the daemon's own process only, not
            for a test that runs many daemons in one interpreter.
    """

    def __init__(
        self,
        config: Config,
        config_path: Path | None = None,
        *,
        grace: float = 5.0,
        stop_timeout: float = 20.0,
        handle_signals: bool = True,
        settle_heap: bool = False,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.grace = grace
        self.stop_timeout = stop_timeout
        self.handle_signals = handle_signals
        self.settle_heap = settle_heap
        self.registry = CollectorRegistry()
        self.metrics = GatewayMetrics(self.registry)
        self.store: Store | None = None
        self.pipeline: MtPipeline | None = None
        self.simulator: object | None = None  # the in-process one (simulator.process false)
        self.simulator_pid: int | None = None  # the child's (simulator.process true)
        self.metrics_port: int | None = None
        self.carriers: dict[str, _RunningCarrier] = {}
        self.server: PartnerServer | None = None
        self.scenarios: ScenarioService | None = None
        self.alerts: AlertService | None = None
        self.partners: tuple[PartnerSettings, ...] = tuple(config.partners)
        self._stop = trio.Event()
        self.notifier = Notifier.from_environment()
        self._carrier_nursery: trio.Nursery | None = None
        self._started = time.time()
        self._store_path = os.path.abspath(config.store.path)

    # -- life cycle ----------------------------------------------------------------

    def request_stop(self) -> None:
        """Begin the orderly stop (what SIGTERM does)."""
        self._stop.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        cfg = self.config
        Path(cfg.store.path).parent.mkdir(parents=True, exist_ok=True)
        store = self.store = Store(cfg.store.path, config=cfg.store.to_store_config())
        self.metrics.add_store(store)
        async with trio.open_nursery() as root:
            if self.handle_signals:
                root.start_soon(self._signals)
            await root.start(self.notifier.watchdog_loop)
            await root.start(store.run)
            async with trio.open_nursery() as services:
                await self._start_services(services)
                log.info(
                    "smppgw started",
                    version=__version__,
                    store=str(cfg.store.path),
                    durability=str(cfg.store.durability),
                    metrics=(
                        f"http://{cfg.metrics.listen.host}:{self.metrics_port}/metrics"
                        if self.metrics_port
                        else None
                    ),
                    carriers=[c.name for c in cfg.carriers],
                )
                if self.settle_heap:
                    log.debug("heap settled", frozen=settle_heap())
                task_status.started()
                await self.notifier.ready(self._readiness()[1])
                await self._stop.wait()
                await self.notifier.stopping()
                log.info("stopping: unbinding partners and carriers", grace=self.grace)
                with trio.move_on_after(self.stop_timeout) as bounded:
                    if self.server is not None:
                        await self.server.stop(self.grace)
                    await self._stop_carriers(list(self.carriers))
                    services.cancel_scope.cancel()
            with trio.move_on_after(self.stop_timeout), trio.CancelScope(shield=True):
                assert self.pipeline is not None
                try:
                    await self.pipeline.flush()
                except StoreError as exc:  # said plainly, not as a traceback on the way out
                    log.error(
                        "carrier outcomes not written at stop: messages the carriers took"
                        " are sent again after the next start (possible duplicates), their"
                        " receipts replayed from the journal",
                        error=str(exc),
                    )
            if bounded.cancelled_caught:
                log.warning("stop took longer than allowed; pending work stays journaled")
            root.cancel_scope.cancel()
        log.info("smppgw stopped")

    async def _start_services(self, services: trio.Nursery) -> None:
        cfg = self.config
        assert self.store is not None
        if cfg.metrics.enabled:
            self.metrics_port = await services.start(
                partial(
                    serve_metrics,
                    cfg.metrics.listen.host,
                    cfg.metrics.listen.port,
                    self.registry,
                    readiness=self._readiness,
                )
            )
        if cfg.simulator.enabled and cfg.simulator.process:
            from smppgw.app.sim_process import run_simulator_process

            ready = self._simulator_ready
            await services.start(
                partial(run_simulator_process, cfg.simulator, cfg.logging, on_ready=ready)
            )
        elif cfg.simulator.enabled:
            from smppgw.sim.smsc import SimConfig, SimulatedSmsc

            sim = SimulatedSmsc(SimConfig.from_settings(cfg.simulator))
            self.simulator = sim
            await services.start(
                partial(sim.run, host=cfg.simulator.listen.host, port=cfg.simulator.listen.port)
            )
            if cfg.simulator.control is not None:
                from smppgw.sim.control import serve_control

                control = cfg.simulator.control
                await services.start(serve_control, sim, control.host, control.port)
        names = [c.name for c in cfg.carriers]
        pipeline = self.pipeline = MtPipeline(
            self.store, PrefixRouter(cfg.route_table(), cfg.default_route), names
        )
        pipeline.max_pending = cfg.server.max_pending_messages
        self.metrics.add_pipeline(pipeline)
        await services.start(pipeline.run)
        recovered = await pipeline.recover()
        if recovered:
            log.info("recovered unfinished messages from the journal", count=recovered)
        if cfg.scenarios.enabled:
            # Before the carriers: an MO delivered at once must find its scenario.
            scenarios = self.scenarios = ScenarioService(
                cfg.scenarios, self.store, self._submit_replies
            )
            scenarios.engine.cut_room = cfg.cut_room()
            self.registry.register(ScenarioMetrics(scenarios))
            await services.start(scenarios.run)
        # Receipts journaled but not applied when the daemon died (found by the chaos
        # test): the carrier will not send them again. Read before the carriers bind,
        # so that only earlier runs' rows are replayed.
        unapplied = await self.store.read(unprocessed_inbound)
        self._carrier_nursery = await services.start(self._carriers_host)
        for settings in cfg.carriers:
            await self._start_carrier(settings)
        for running_carrier in self.carriers.values():
            await running_carrier.client.inbound.replay_unapplied(unapplied)
        # The config's partners with the accounts changed from the CLI (partner_account).
        self.partners = await load_partners(self.store, cfg.partners)
        self._check_alert_contacts()
        self._check_opt_out_scopes()
        if cfg.server.enabled:
            # Last: partners' work is taken only once the journal, the pipeline and the
            # carriers are in place.
            partners = partner_map(self.partners)
            server = self.server = PartnerServer(
                cfg.server,
                partners,
                store=self.store,
                pipeline=pipeline,
                authenticator=Authenticator(
                    partners,
                    failures_before_delay=cfg.server.bind_failures_before_delay,
                    delay_max=cfg.server.bind_failure_delay_max,
                ),
                admission=Admission(
                    partners,
                    country_code=cfg.server.country_code,
                    vendor_tags=cfg.vendor_tlv_tags(),
                    cut_room=cfg.cut_room(),
                ),
            )
            pipeline.on_receipts = server.receipts_queued
            admission = server.admission
            pipeline.release_check = ReleaseCheck(
                admission.opt_out_applies,
                server.payers,
                lambda: admission.country_code,
                self.store,
            )
            self.metrics.add_server(server)
            await services.start(server.run)
        if cfg.admin_socket is not None:
            commands = AdminCommands(self.store, pipeline)
            member_ids = None
            if self.scenarios is not None:
                self.scenarios.register_admin(commands)
                member_ids = self.scenarios.member_id_format()
            register_import_commands(commands, self.store, member_ids)
            register_record_commands(
                commands,
                self.store,
                config_partners=lambda: self.config.partners,
                on_partners_changed=self._apply_partners,
            )
            register_retention_commands(commands, self.store, cfg.retention)
            commands.register("status", self._status)
            await services.start(serve_admin, Path(cfg.admin_socket), commands)
        if cfg.retention.enabled:
            # After recovery: the unfinished messages are taken before old rows go.
            await services.start(partial(run_retention, self.store, cfg.retention))
        if cfg.alerts.active:
            # After recovery (above): an alert SMS queued before it would be queued twice.
            running = self.server
            self.alerts = AlertService(
                cfg.alerts.plan(),
                self.store,
                self._submit_replies,
                violations=(
                    None if running is None else (lambda: violation_counts(running.statistics()))
                ),
            )
            await services.start(self.alerts.run)
        await replay_unprocessed_mo(self.store, self._on_mo)

    async def _apply_partners(self, partners: tuple[PartnerSettings, ...]) -> None:
        """Partners changed (an admin command, a reload): the server takes the new set;
        live sessions of partners disabled or gone are unbound."""
        before = {p.system_id for p in self.partners if p.enabled}
        self.partners = partners
        self._check_alert_contacts()
        if self.server is None:
            return
        self.server.reconfigure(self.config.server, partner_map(partners))
        gone = before - {p.system_id for p in partners if p.enabled}
        if gone:
            count = await self.server.drop_partners(gone, self.grace)
            log.info("partners disabled: live sessions unbound", partners=sorted(gone), count=count)

    def _check_alert_contacts(self) -> None:
        """``alerts.partner_contacts`` naming no partner: a typo, or a partner removed.
        Warned, not refused: a partner added from the CLI is in the journal, not in the
        config file the contacts are checked against when it is read."""
        known = [p.system_id for p in self.partners]
        for key, reason in alert_problems(self.config.alerts, known):
            log.warning(
                "alert contacts for an unknown partner", key=".".join(map(str, key)), reason=reason
            )

    def _check_opt_out_scopes(self) -> None:
        """An opt-out scenario's ``settings.partner`` naming no partner: a typo, and its
        subscribers' ``TC`` would list them for nobody's marketing. Warned, not refused,
        for the reason above."""
        if self.scenarios is None:
            return
        known = {p.system_id for p in self.partners}
        for scenario, partner in partner_scopes(self.scenarios.engine.table.scenarios.values()):
            if partner not in known:
                log.warning(
                    "opt-out scenario names an unknown partner: its list refuses nobody's messages",
                    scenario=scenario,
                    partner=partner,
                )

    def _submit_replies(self, ids: list[int], messages: list[NewMessage]) -> None:
        """Journaled scenario replies go out like any accepted message."""
        assert self.pipeline is not None
        for message_id, message in zip(ids, messages, strict=True):
            self.pipeline.enqueue(OutboundMessage.of(message_id, message))

    async def _carriers_host(
        self, *, task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started(nursery)
            await trio.sleep_forever()

    # -- carriers ------------------------------------------------------------------

    async def _start_carrier(self, settings: CarrierSettings) -> None:
        assert self._carrier_nursery is not None
        assert self.pipeline is not None
        assert self.store is not None
        if settings.name not in self.pipeline.queues:
            self.pipeline.queues[settings.name] = CarrierQueue(settings.name)
        self.pipeline.receipt_timeouts[settings.name] = settings.receipt_timeout_hours * 3600
        client = CarrierClient(
            settings,
            self.pipeline,
            self.store,
            mo_sink=self._on_mo,
            on_submit_latency=self.metrics.observe_submit_latency,
        )
        running = _RunningCarrier(settings, client)
        self.carriers[settings.name] = running
        self.metrics.remove_carrier(settings.name)
        self.metrics.add_carrier(client)
        await self._carrier_nursery.start(self._run_carrier, running)

    async def _run_carrier(
        self,
        running: _RunningCarrier,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with running.scope:
            await running.client.run(task_status=task_status)

    async def _stop_carriers(self, names: list[str]) -> None:
        async with trio.open_nursery() as nursery:
            for name in names:
                running = self.carriers.get(name)
                if running is not None:
                    nursery.start_soon(self._stop_carrier, running)
        for name in names:
            self.carriers.pop(name, None)
            self.metrics.remove_carrier(name)

    async def _stop_carrier(self, running: _RunningCarrier) -> None:
        with trio.move_on_after(self.grace):
            await running.client.unbind_all(self.grace)
        running.scope.cancel()

    async def _on_mo(self, inbound_id: int, pdu: DeliverSm, carrier: str) -> None:
        """An MO was journaled: a scenario claiming its keyword takes it (and marks it
        processed with its reply); else the partner owning its short code gets it; else
        the help reply of a scenario short code; else it is only logged."""
        short_code = pdu.destination_addr.strip()
        owned = any(short_code in p.short_codes for p in self.partners)
        if self.scenarios is not None and await self.scenarios.on_mo(
            inbound_id, pdu, partner_owned=owned
        ):
            return
        forwarded = self.server is not None and await self.server.forward_mo(pdu)
        if not forwarded:
            log.info(
                "MO for no partner's short code",
                carrier=carrier,
                inbound_id=inbound_id,
                short_code=pdu.destination_addr,
            )
        assert self.store is not None
        await self.store.mark_inbound_processed([inbound_id])

    # -- reload ----------------------------------------------------------------------

    async def reload(self) -> bool:
        """Reread the config file and apply it; False (and logged) if it is invalid."""
        if self.config_path is None:
            log.info("reload: running on the built-in config, nothing to reread")
            return False
        await self.notifier.reloading()
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload refused: the config file is invalid", problems=str(exc))
            await self.notifier.ready("reload refused: invalid config")
            return False
        assert self.pipeline is not None
        assert self.store is not None
        try:  # read before anything changes: a journal that fails now leaves all as it was
            partners = await load_partners(self.store, new.partners)
        except StoreError as exc:
            log.error("reload refused: cannot read the partner accounts", error=str(exc))
            await self.notifier.ready("reload refused: journal unreadable")
            return False
        old = {c.name: c for c in self.config.carriers}
        fresh = {c.name: c for c in new.carriers}
        changed = [n for n in old if n in fresh and fresh[n] != old[n]]
        removed = [n for n in old if n not in fresh]
        added = [n for n in fresh if n not in old]
        self.pipeline.router = PrefixRouter(new.route_table(), new.default_route)
        self.pipeline.max_pending = new.server.max_pending_messages
        self.config = new
        # Partners: the new config's, with the accounts changed from the CLI; the
        # server's settings come along (self.config is the new one already).
        await self._apply_partners(partners)
        if self.server is not None:
            self.server.admission.vendor_tags = new.vendor_tlv_tags()
            self.server.admission.cut_room = new.cut_room()
        if self.scenarios is not None:
            self.scenarios.reload(new.scenarios)
            self.scenarios.engine.cut_room = new.cut_room()
            self._check_opt_out_scopes()
        if self.alerts is not None:
            self.alerts.reconfigure(new.alerts.plan())
        await self._stop_carriers(changed + removed)
        for name in changed + added:
            await self._start_carrier(fresh[name])
        for name in removed:
            queue = self.pipeline.queues.pop(name, None)
            if queue is not None:
                for message in queue.drain():
                    self.pipeline.enqueue(message)
        self.config = new
        log.info(
            "config reloaded",
            changed=changed,
            added=added,
            removed=removed,
            unchanged=[n for n in old if n in fresh and n not in changed],
        )
        await self.notifier.ready(self._readiness()[1])  # systemd: the reload is done
        return True

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    await self.reload()
                else:
                    log.info("signal received", signal=signal.Signals(signum).name)
                    self.request_stop()

    async def _status(self, request: dict[str, Any]) -> dict[str, Any]:
        """The admin socket's ``status`` (``smppgw status``; ``app/status.py``)."""
        assert self.store is not None
        assert self.pipeline is not None
        return await status_snapshot(
            started=self._started,
            store=self.store,
            store_path=self._store_path,
            pipeline=self.pipeline,
            carriers={name: running.client for name, running in self.carriers.items()},
            server=self.server,
            partners=[p.system_id for p in self.partners if p.enabled],
        )

    def _simulator_ready(self, pid: int) -> None:
        self.simulator_pid = pid

    def _readiness(self) -> tuple[bool, str]:
        store_ok = self.store is not None and self.store.available
        up = sum(r.client.binds_up for r in self.carriers.values())
        return store_ok, f"store={'ok' if store_ok else 'unavailable'} binds_up={up}"


async def run_daemon(config: Config, config_path: Path | None) -> None:
    """Configure logging and run the daemon until it is told to stop."""
    configure_logging(config.logging)
    await Daemon(config, config_path, settle_heap=True).run()
