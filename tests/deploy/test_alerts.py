"""The alert rules and the dashboard (issue 17): the rules parse and hold the guide's thresholds,
promtool checks them and runs their unit tests when Debian's `prometheus` package is installed,
and every series they read is one the real service exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandgate.settings import REPO_ROOT
from tests.inproc import inproc

PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "sandgate.json"
_SERIES = re.compile(r"\b(sandgate_[a-z_]+)")
_RECORDED = re.compile(r"\b(sandgate:[a-z0-9_:]+)")


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alert(name: str) -> dict[str, Any]:
    return next(rule for rule in _rules() if rule.get("alert") == name)


def test_when_the_rules_are_read_then_each_alert_holds_the_guides_threshold() -> None:
    assert "> 10" in _alert("SandgateStepSlow")["expr"]
    assert "> 0.05" in _alert("SandgateErrorRateHigh")["expr"]
    assert (
        "[15m]"
        in next(r for r in _rules() if r.get("record", "").endswith("ratio_rate15m"))["expr"]
    )
    assert "< 0.9" in _alert("SandgateExecutionSuccessLow")["expr"]
    assert "> 2 *" in _alert("SandgateCostHigh")["expr"]
    assert all(rule["expr"].strip() for rule in _rules())


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not installed (Debian's `prometheus` package; .ci/setup test installs it)",
)
def test_when_promtool_is_there_then_it_accepts_the_rules_and_their_tests_pass() -> None:
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        done = subprocess.run(
            ["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


def _exposed(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            names |= {name} | (
                {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else set()
            )
            if kind == "counter":
                names.add(f"{name}_total")
    return names


def test_when_the_service_runs_then_every_series_the_rules_and_dashboard_read_exists(
    tmp_path: Path,
) -> None:
    with inproc(tmp_path / "state") as service:
        service.request("POST", "/execute", json={"code": "1"})
        service.request("POST", "/screen", json={"text": "x", "stage": "input"})
        exposed = _exposed(service.request("GET", "/metrics").text)
    rules = (PROMETHEUS / "alerts.yml").read_text()
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    read = set(_SERIES.findall(rules)) | {n for e in exprs for n in _SERIES.findall(e)}
    assert read and read <= exposed, sorted(read - exposed)
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    used = {n for e in exprs for n in _RECORDED.findall(e)} | set(_RECORDED.findall(rules))
    assert used <= recorded, sorted(used - recorded)
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
