"""deploy/prometheus and deploy/grafana: the alert rules pass `promtool check rules` and their
own unit tests (`promtool test rules`), and every query of the rules and of the dashboard names
only metrics that the running service exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import ROOT, wait_until

RULES_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "progress.json"
# Series Prometheus makes itself for every target.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan",
}  # fmt: skip


def require(program: str) -> str:
    """The path of Debian's prometheus or promtool; skipped without it, unless CI asks for it
    (.ci/run installs the package and sets PROGRESS_REQUIRE_PROMETHEUS=1)."""
    path = shutil.which(program)
    if path is None:
        if os.environ.get("PROGRESS_REQUIRE_PROMETHEUS") == "1":
            pytest.fail(f"{program} is missing (apt-get install prometheus)")
        pytest.skip(f"{program} is not installed (apt-get install prometheus)")
    return path


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers left once label matchers,
    strings, ranges, grouping clauses and function calls are taken out."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\$\w+", "", expr)  # Grafana variables ($__rate_interval)
    names = re.findall(r"(?<![\w.])([A-Za-z_:][\w:]*)\b(?!\s*\()", expr)
    return {name for name in names if name.lower() not in PROMQL_WORDS}


def test_metric_names_are_found_in_queries():
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{job="x", le="1"}[5m])))'
        ' / on (route) group_left b_total > 0 and absent(up{job="y"}) or c offset 5m'
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "up", "c"}


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((RULES_DIR / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_promtool_checks_the_rules():
    promtool = require("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", "alerts.yml"], cwd=RULES_DIR, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


def test_promtool_runs_the_rules_unit_tests():
    promtool = require("promtool")
    result = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=RULES_DIR,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {
        test["alertname"]
        for case in yaml.safe_load((RULES_DIR / "alerts_test.yml").read_text())["tests"]
        for test in case["alert_rule_test"]
        if test["exp_alerts"]
    }
    rules = yaml.safe_load((RULES_DIR / "alerts.yml").read_text())
    assert tested == {rule["alert"] for group in rules["groups"] for rule in group["rules"]}


def exported_names(live_service) -> set[str]:
    live_service.get("status", jobid="no such job")  # a request, so the latency histogram has one

    def names() -> set[str]:
        text = requests.get(f"{live_service.url}/metrics", timeout=5).text
        found = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
        return found if "progress_http_request_duration_seconds_count" in found else set()

    return wait_until(names, 10, what="the request's latency to reach /metrics")


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_query_uses_exported_metrics(live_service, source):
    exprs = alert_exprs() if source == "alerts" else dashboard_exprs()
    used = set().union(*(metric_names(expr) for expr in exprs))
    exported = exported_names(live_service)
    assert used - exported - PROMETHEUS_OWN == set()
    assert len(used & exported) >= (4 if source == "alerts" else 12)  # the check saw names
