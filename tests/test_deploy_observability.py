"""deploy/grafana/asgate.json and deploy/prometheus/alerts.yml: every metric their queries name is one
that asgate's /metrics exposes (scraped from a running control plane and an access server with
data-plane workers), and the rules (and the dashboard's queries) are valid PromQL for Prometheus.

``promtool check rules`` runs when promtool is installed (Debian's ``prometheus`` package, which
.ci/run installs); without it the rules file's structure is checked from its YAML.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.access.split import split_deployment
from tests.access.system import bearer

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "asgate.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
# Series Prometheus itself makes for every target.
SYNTHETIC = {"up"}
# Names in PromQL that are not metrics: keywords and aggregation modifiers (functions are followed by "(").
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
            "offset", "inf", "nan"}  # fmt: skip
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":  # label_values(METRIC, label): the metric is a query of its own
            found = re.fullmatch(r"label_values\((\w+),\s*\w+\)", variable["query"]["query"])
            assert found, variable
            queries.append(found.group(1))
    return queries


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for found in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        name, call = found.group(1), found.group(2)
        if call is None and name.lower() not in KEYWORDS:
            names.add(name)
    return names


def documented_metrics() -> set[str]:
    """The metric names in the first column of the tables of docs/operations.md's "## Monitoring"."""
    text = OPERATIONS.read_text(encoding="utf-8")
    start = text.index("\n## Monitoring\n")
    section = text[start : text.index("\n## ", start + 1)]
    rows = re.findall(r"^\| ([^|]*) \|", section, re.MULTILINE)
    return {name for row in rows for name in re.findall(r"`(asgate_\w+)`", row)}


def families(text: str) -> set[str]:
    """asgate's metric families as documented: counters with _total, the others by their name."""
    return {
        family.name + ("_total" if family.type == "counter" else "")
        for family in text_string_to_metric_families(text)
        # (a counter's or histogram's _created is a gauge family of its own in the text format)
        if family.name.startswith("asgate_") and not family.name.endswith("_created")
    }


def exposed(text: str) -> set[str]:
    """Every sample name the exposition can carry, from its families (incl. ones without samples)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def test_the_queries_name_metrics_this_check_can_see() -> None:
    # The parser of this test, on the forms the files use.
    assert metric_names('sum by (le) (rate(a_bucket{job=~"$job"}[$__rate_interval]))') == {"a_bucket"}
    assert metric_names("max(b) / clamp_min(sum(max by (state) (c)), 1e-9) > 0.25") == {"b", "c"}
    assert metric_names('up{job=~"asgate.*"} == 0 and deriv(d[10m]) > 0') == {"up", "d"}
    queries = dashboard_queries() + [rule["expr"] for rule in alert_rules()]
    assert len(queries) >= 30 and all(metric_names(q) for q in queries)


def test_the_alert_rules_are_valid() -> None:
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= {
        "AsgateDown",
        "AsgateOutboxStuck",
        "AsgateCsc15LagGrowing",
        "AsgateSas5xxRatioHigh",
        "AsgateInstancesMassSuspension",
        "AsgateStoreCommitSlow",
    }
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s"))
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus): the structure was checked")
    result = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "asgate" and {v["name"] for v in board["templating"]["list"]} == {
        "datasource",
        "job",
    }
    for panel in board["panels"]:
        assert panel["type"] == "row" or panel["datasource"]["uid"] == "${datasource}"
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    # Grafana's variables as Prometheus would see them once Grafana substituted them.
    exprs = [q.replace("$__rate_interval", "1m").replace("$job", ".*") for q in dashboard_queries()]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"asgate:dashboard_query:{i}", "expr": expr} for i, expr in enumerate(exprs)
    ]}]}  # fmt: skip
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.xdist_group("process")
async def test_every_metric_the_dashboard_and_the_alerts_name_is_exposed(tmp_path: Path) -> None:
    async with split_deployment(tmp_path, sas_workers="2", metrics_public="true") as split:
        # Some traffic, so that the counters have samples as well as their declarations.
        await split.add_app("console-1")
        profile = await split.authorize("console-1")
        base = profile["serviceLocationInformation"]
        alice = bearer(split.user_token("console-1"))
        answer = await split.http.get(f"{base}/items", headers=alice)
        assert answer.status_code == 204, answer.text
        assert (await split.http.get(f"{base}/items")).status_code == 401
        prometheus = bearer(split.token("prometheus", "asgate-metrics"))
        control = await split.http.get(f"{split.registry.url}/metrics", headers=prometheus)
        access = await split.http.get(f"{split.access[0].url}/metrics")
        assert control.status_code == 200 and access.status_code == 200
        names = exposed(control.text) | exposed(access.text) | SYNTHETIC
        all_families = families(control.text) | families(access.text)
    # docs/operations.md lists every metric a control plane and an access server expose.
    assert all_families - documented_metrics() == set()
    assert documented_metrics() - all_families == set()
    for source, queries in (
        ("deploy/grafana/asgate.json", dashboard_queries()),
        ("deploy/prometheus/alerts.yml", [rule["expr"] for rule in alert_rules()]),
    ):
        for query in queries:
            missing = metric_names(query) - names
            assert not missing, f"{source}: {query!r} names {missing}, which /metrics does not expose"
