"""The README's metrics catalogue and the Grafana dashboard against a real daemon's scrape.

Both documents name metrics by hand, and a renamed or added family would leave them
quietly wrong (a dashboard panel over a name that no longer exists just shows "No data").
So one daemon is started with everything that registers metrics switched on (carrier,
partner server with partners, scenarios), given some traffic (partner submits with
receipts, an order, an MO through a scenario) so that labelled families have samples,
and scraped once; the tests then compare:

- every exposed family is in the catalogue, with its type and labels, and every family
  in the catalogue is exposed (the catalogue cannot drift either way);
- labels stay low-cardinality: no label named like a number or an id, no label value
  that looks like a phone number or a long id;
- every series a dashboard query reads exists.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
from carrier_fixtures import wait_for
from partner_fixtures import partner_daemon, smpplib_partner
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from smppgw.store import NewOrder, OrderKind

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DASHBOARD = ROOT / "config" / "grafana-dashboard.json"
SUBSCRIBER = "84912345678"

#: Label names that would carry one series per subscriber or per message.
FORBIDDEN_LABELS = frozenset(
    {
        "msisdn",
        "destination",
        "destination_addr",
        "source_addr",
        "phone",
        "number",
        "message_id",
        "carrier_id",
        "id",
        "member_id",
    }
)
#: Labels the exposition adds itself (bucket bounds, quantiles), not ours.
_STRUCTURAL = frozenset({"le", "quantile"})
_NUMBER_LIKE = re.compile(r"\+?[0-9]{8,}")
#: Series suffixes each family type may be queried with.
_SUFFIXES: Mapping[str, tuple[str, ...]] = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count", ""),
}
_CATALOGUE_ROW = re.compile(r"^\|\s*`(smppgw_[a-z0-9_]+)`\s*\|\s*([a-z]+)\s*\|([^|]*)\|")
_METRIC_NAME = re.compile(r"\bsmppgw_[a-z0-9_]+")


@dataclass(frozen=True, slots=True)
class Family:
    """One exposed family as the scrape shows it."""

    name: str  # as queried: counters with ``_total``
    type: str
    labels: frozenset[str]  # from the samples; empty if the family has none yet
    label_values: tuple[tuple[tuple[str, str], ...], ...]
    samples: int


@dataclass(frozen=True, slots=True)
class Row:
    """One row of the README catalogue."""

    name: str
    type: str
    labels: frozenset[str]


def _query_name(name: str, kind: str) -> str:
    """The name a query uses: ``prometheus_client`` strips ``_total`` from the family."""
    return f"{name}_total" if kind == "counter" else name


def _parse(text: str) -> dict[str, Family]:
    out: dict[str, Family] = {}
    for f in text_string_to_metric_families(text):
        label_sets = tuple(
            tuple(sorted((k, v) for k, v in s.labels.items() if k not in _STRUCTURAL))
            for s in f.samples
        )
        labels = frozenset(k for labels in label_sets for k, _ in labels)
        name = _query_name(f.name, f.type)
        out[name] = Family(name, f.type, labels, label_sets, len(f.samples))
    return out


async def _scrape_busy_daemon(tmp_path: Path) -> str:
    """A daemon with carrier, partners, an order and scenarios, after some traffic."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    shutil.copy(ROOT / "scenarios" / "registration.yaml", folder)
    async with partner_daemon(tmp_path) as (daemon, port):
        await wait_for(lambda: sum(r.client.binds_up for r in daemon.carriers.values()) == 1)
        assert daemon.store is not None
        await daemon.store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=10))
        run = await trio.to_thread.run_sync(partial(smpplib_partner, port, count=2, receipts=2))
        assert [r.status for r in run.responses] == [0, 0]
        sim = daemon.simulator
        scenarios = daemon.scenarios
        assert sim is not None
        assert scenarios is not None
        sim.inject_mo(SUBSCRIBER, "8055", "DK Nguyen Van An HN")  # type: ignore[attr-defined]
        await wait_for(lambda: sum(scenarios.engine.outcomes.values()) >= 1)
        assert daemon.server is not None
        await daemon.server.refresh_quota()
        return generate_latest(daemon.registry).decode()


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Family]:
    """One daemon for the whole module: starting it is most of the cost."""
    text = trio.run(_scrape_busy_daemon, tmp_path_factory.mktemp("catalogue"))
    return _parse(text)


def _metrics_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Metrics\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _catalogue() -> dict[str, Row]:
    rows: dict[str, Row] = {}
    for line in _metrics_section().splitlines():
        m = _CATALOGUE_ROW.match(line)
        if m is None:
            continue
        name, kind, labels = m[1], m[2], m[3]
        assert name not in rows, f"{name} is twice in the README catalogue"
        rows[name] = Row(name, kind, frozenset(re.findall(r"`([a-z_]+)`", labels)))
    return rows


def _dashboard_queries() -> Iterator[str]:
    """Every PromQL text of the dashboard: panel targets and templating queries."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))

    def panels(items: list[dict[str, object]]) -> Iterator[dict[str, object]]:
        for p in items:
            yield p
            inner = p.get("panels")
            if isinstance(inner, list):
                yield from panels(inner)

    for panel in panels(dashboard["panels"]):
        targets = panel.get("targets")
        for target in targets if isinstance(targets, list) else []:
            yield str(target["expr"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield str(query["query"] if isinstance(query, dict) else query)


# -- the catalogue -----------------------------------------------------------------------


def test_every_exposed_family_is_in_the_catalogue(scrape: dict[str, Family]) -> None:
    missing = sorted(set(scrape) - set(_catalogue()))
    assert missing == [], f"exposed but not in the README's ## Metrics: {missing}"


def test_every_catalogued_family_is_exposed(scrape: dict[str, Family]) -> None:
    stale = sorted(set(_catalogue()) - set(scrape))
    assert stale == [], f"in the README's ## Metrics but not exposed: {stale}"


def test_catalogue_types_and_labels_match_the_scrape(scrape: dict[str, Family]) -> None:
    wrong = []
    for name, row in _catalogue().items():
        family = scrape.get(name)
        if family is None:
            continue
        if row.type != family.type:
            wrong.append(f"{name}: README says {row.type}, exposed as {family.type}")
        # A family without samples yet (no refusal so far) cannot show its labels.
        if family.samples and row.labels != family.labels:
            wrong.append(f"{name}: README labels {sorted(row.labels)}, {sorted(family.labels)}")
    assert wrong == []


def test_the_scrape_had_samples_for_the_labelled_families(scrape: dict[str, Family]) -> None:
    """The traffic above reached every part, or the label checks would prove nothing."""
    for name in (
        "smppgw_carrier_binds_up",
        "smppgw_queue_depth",
        "smppgw_partner_submit_outcomes_total",
        "smppgw_partner_quota_remaining",
        "smppgw_partner_receipt_latency_seconds",
        "smppgw_scenario_steps_total",
    ):
        assert scrape[name].samples > 0, name


# -- cardinality -------------------------------------------------------------------------


def test_no_label_names_a_number_or_an_id(scrape: dict[str, Family]) -> None:
    bad = {name: sorted(f.labels & FORBIDDEN_LABELS) for name, f in scrape.items()}
    assert {k: v for k, v in bad.items() if v} == {}


def test_no_label_value_looks_like_a_number(scrape: dict[str, Family]) -> None:
    bad = [
        (f.name, key, value)
        for f in scrape.values()
        for labels in f.label_values
        for key, value in labels
        if _NUMBER_LIKE.search(value) or SUBSCRIBER[-6:] in value
    ]
    assert bad == []


def test_series_per_family_stay_few(scrape: dict[str, Family]) -> None:
    """One carrier and three partners: a family with dozens of label sets is growing
    with traffic, not with configuration."""
    for f in scrape.values():
        assert len(set(f.label_values)) <= 40, f.name


# -- the dashboard -----------------------------------------------------------------------


def test_dashboard_is_a_grafana_dashboard_over_a_prometheus_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["schemaVersion"] >= 36
    [ds] = [v for v in dashboard["templating"]["list"] if v["name"] == "DS_PROMETHEUS"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    queried = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert queried
    for panel in queried:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"], panel["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_dashboard_series_exists(scrape: dict[str, Family]) -> None:
    series: set[str] = set()
    for f in scrape.values():
        base = f.name.removesuffix("_total") if f.type == "counter" else f.name
        series.update(base + suffix for suffix in _SUFFIXES[f.type])
    used = {name for expr in _dashboard_queries() for name in _METRIC_NAME.findall(expr)}
    assert used, "no smppgw_ metric in the dashboard"
    assert sorted(used - series) == []


def test_dashboard_covers_the_asked_panels() -> None:
    """The families the issue asks a panel for are all on the dashboard."""
    used = {name for expr in _dashboard_queries() for name in _METRIC_NAME.findall(expr)}
    for name in (
        "smppgw_carrier_binds_up",
        "smppgw_carrier_submits_total",
        "smppgw_carrier_submit_latency_seconds_bucket",
        "smppgw_queue_depth",
        "smppgw_mt_receipts_matched_total",
        "smppgw_mt_receipts_unmatched_total",
        "smppgw_partner_submit_outcomes_total",
        "smppgw_partner_throttled_total",
        "smppgw_partner_content_filtered_total",
        "smppgw_partner_quota_remaining",
        "smppgw_partner_receipt_latency_seconds_bucket",
        "smppgw_store_commit_seconds_sum",
        "smppgw_store_last_batch_items",
        "smppgw_scenario_steps_total",
        "smppgw_carrier_possible_duplicates_total",
    ):
        assert name in used, name
