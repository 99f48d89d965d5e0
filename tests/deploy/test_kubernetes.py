"""The Kubernetes manifests under deploy/kubernetes/: every document validates against the
official schemas of the Kubernetes version they target (kubernetes-validate, strict: unknown
fields are errors), and the documents agree with each other (selectors match the pods they
mean, references name objects that exist). No cluster runs here: this is all that is checked.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from sandgate.settings import REPO_ROOT

VERSION = "1.30.0"
FILES = sorted((REPO_ROOT / "deploy" / "kubernetes").glob("*.yaml"))


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in FILES for doc in yaml.safe_load_all(path.read_text()) if doc]


DOCS = _documents()


def _named(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _p, d in DOCS if d["kind"] == kind}


def _pod_labels() -> list[dict[str, str]]:
    workloads = [d for _p, d in DOCS if d["kind"] in ("Deployment", "DaemonSet")]
    return [w["spec"]["template"]["metadata"]["labels"] for w in workloads]


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        if expression["operator"] != "In":
            raise AssertionError(f"unchecked operator {expression['operator']}")
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


@pytest.mark.parametrize(
    "path, doc", DOCS, ids=[f"{p.name}:{d['kind']}:{d['metadata']['name']}" for p, d in DOCS]
)
def test_when_a_manifest_is_checked_then_the_official_schema_accepts_it(
    path: Path, doc: dict[str, Any]
) -> None:
    kubernetes_validate.validate(doc, VERSION, strict=True)


def test_when_a_manifest_is_broken_then_the_schema_check_refuses_it() -> None:
    worker = copy.deepcopy(_named("DaemonSet")["sandgate-worker"])
    worker["spec"]["template"]["spec"]["runtimeClassName"] = 42
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, VERSION, strict=True)
    api = copy.deepcopy(_named("Deployment")["sandgate-api"])
    api["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, VERSION, strict=True)


def test_when_the_parts_are_listed_then_every_one_the_design_names_is_there() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for _p, d in DOCS}
    for wanted in [
        ("Deployment", "sandgate-api"),
        ("DaemonSet", "sandgate-worker"),
        ("RuntimeClass", "gvisor"),
        ("HorizontalPodAutoscaler", "sandgate-capacity"),
        ("PodDisruptionBudget", "sandgate-api"),
        ("PodDisruptionBudget", "sandgate-worker"),
        ("NetworkPolicy", "default-deny"),
    ]:
        assert wanted in kinds, wanted
    capacity = _named("HorizontalPodAutoscaler")["sandgate-capacity"]["spec"]
    (metric,) = capacity["metrics"]
    assert (
        metric["type"] == "Object" and metric["object"]["metric"]["name"] == "sandgate_queue_depth"
    )


def test_when_selectors_and_references_are_followed_then_each_finds_its_object() -> None:
    workloads = {**_named("Deployment"), **_named("DaemonSet")}
    for name, workload in workloads.items():
        selector = workload["spec"]["selector"]
        assert _matches(selector, workload["spec"]["template"]["metadata"]["labels"]), name
    for hpa in _named("HorizontalPodAutoscaler").values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in _named("Deployment")
    services = _named("Service")
    for service in services.values():
        assert any(_matches({"matchLabels": service["spec"]["selector"]}, p) for p in _pod_labels())
    for budget in _named("PodDisruptionBudget").values():
        assert any(_matches(budget["spec"]["selector"], p) for p in _pod_labels())
    for policy in _named("NetworkPolicy").values():
        selector = policy["spec"]["podSelector"]
        engines = any(
            e.get("key") == "app.kubernetes.io/name" for e in selector.get("matchExpressions", [])
        )
        assert not selector or engines or any(_matches(selector, p) for p in _pod_labels())
    config_maps, runtime = _named("ConfigMap"), _named("RuntimeClass")["gvisor"]
    worker = workloads["sandgate-worker"]["spec"]["template"]["spec"]
    assert worker["nodeSelector"] == runtime["scheduling"]["nodeSelector"]
    for workload in workloads.values():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
