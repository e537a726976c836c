"""The Helm chart: every ci/ values file renders with Helm's engine, every object validates
strictly for several Kubernetes versions, and the objects have the shape the issue asks for.

Running the rendered pods for real is `tests/deploy/test_chart_e2e.py` (slow).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml
from prometheus_client import REGISTRY

from clair_common.config import Config, load_config, validate_for_mode
from tests.fixtures.chart import (
    CHART,
    CI_VALUES,
    KUBE_VERSIONS,
    RenderedChart,
    load_values,
    model,
    render_chart,
    secret_values,
)

SERVICES = ("indexer", "matcher", "notifier")


@pytest.fixture(scope="module")
def default_chart() -> RenderedChart:
    return render_chart()


def _deployments(chart: RenderedChart) -> dict[str, Any]:
    """Component name → V1Deployment."""
    out = {}
    for deployment in chart.models("Deployment"):
        out[deployment.metadata.labels["app.kubernetes.io/component"]] = deployment
    return out


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
def test_every_object_validates_strictly(values_file: Path) -> None:
    chart = render_chart(load_values(values_file))
    assert chart.objects
    for obj in chart.objects:
        where = f"{values_file.name}: {obj['kind']} {obj['metadata']['name']}"
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            # A CRD the validator has no schema for: check it points at a real port instead.
            ports = {p["name"] for s in chart.of_kind("Service") for p in s["spec"]["ports"]}
            assert {e["port"] for e in obj["spec"]["endpoints"]} <= ports, where
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                pytest.fail(f"{where} invalid for Kubernetes {version}: {err}")
        model(obj)  # and the kubernetes client reads it


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
def test_helm_lint_is_clean(values_file: Path) -> None:
    report = helm_python.lint(
        CHART, load_values(values_file), strict=True, kube_version=f"v{KUBE_VERSIONS[0]}"
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # warnings and errors
    assert not problems, problems
    assert not report["errors"]


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"indexr": {"replicas": 3}}, "indexr"),
        ({"indexer": {"replica": 3}}, "replica"),
        ({"ingress": {"hosts": ["a.example"]}}, "hosts"),
        ({"config": {"matchr": {}}}, "matchr"),
        ({"mode": "combined"}, "mode"),
    ],
)
def test_a_typo_in_values_fails_against_the_schema(values: dict[str, Any], key: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as err:
        render_chart(values)
    assert key in str(err.value) or "mode" in str(err.value)


def test_a_notifier_without_delivery_fails_at_install() -> None:
    with pytest.raises(helm_python.HelmError) as err:
        render_chart({"config": {"notifier": {"webhook": None}}})
    assert "notifier needs a delivery mechanism" in str(err.value)
    chart = render_chart(
        {"config": {"notifier": {"webhook": None}}, "notifier": {"enabled": False}}
    )
    assert {d.metadata.name for d in chart.models("Deployment")} == {
        "clair-indexer",
        "clair-matcher",
    }
    (ingress,) = chart.models("Ingress")
    assert [p.path for r in ingress.spec.rules for p in r.http.paths] == ["/indexer", "/matcher"]
    # Combo without a delivery mechanism runs no notifier, so serves no /notifier.
    combo = render_chart({"mode": "combo", "config": {"notifier": {"webhook": None}}})
    (ingress,) = combo.models("Ingress")
    assert [p.path for r in ingress.spec.rules for p in r.http.paths] == ["/indexer", "/matcher"]


def test_default_runs_the_services_apart_with_their_own_probes(
    default_chart: RenderedChart,
) -> None:
    deployments = _deployments(default_chart)
    assert set(deployments) == set(SERVICES)
    for component, deployment in deployments.items():
        pod = deployment.spec.template.spec
        (container,) = pod.containers
        assert container.args[:3] == ["serve", "--mode", component]
        ports = {p.name: p.container_port for p in container.ports}
        assert ports == {"api": 6060, "introspection": 8089}
        probes = {
            "liveness": container.liveness_probe,
            "readiness": container.readiness_probe,
            "startup": container.startup_probe,
        }
        paths = {name: (p.http_get.path, p.http_get.port) for name, p in probes.items()}
        assert paths == {
            "liveness": ("/healthz", "introspection"),
            "readiness": ("/readyz", "introspection"),
            "startup": ("/readyz", "introspection"),
        }
        # Room for first migrations before liveness counts.
        startup = container.startup_probe
        assert startup.period_seconds * startup.failure_threshold >= 300
        assert container.resources.requests and container.resources.limits
        # Non-root, read-only root filesystem, nothing to escalate to.
        assert pod.security_context.run_as_non_root and pod.security_context.run_as_user
        sc = container.security_context
        assert sc.read_only_root_filesystem and sc.allow_privilege_escalation is False
        assert sc.capabilities.drop == ["ALL"]
        mounts = {m.mount_path: m.name for m in container.volume_mounts}
        volumes = {v.name: v for v in pod.volumes}
        assert volumes[mounts["/etc/clair"]].config_map is not None
        assert volumes[mounts["/tmp"]].empty_dir is not None
        if component == "indexer":
            assert volumes[mounts["/var/cache/clair"]].empty_dir.size_limit
        else:
            assert "/var/cache/clair" not in mounts
        annotations = deployment.spec.template.metadata.annotations
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == "8089"
        spread = pod.topology_spread_constraints
        assert spread and all(
            c.label_selector.match_labels["app.kubernetes.io/component"] == component
            for c in spread
        )


def test_default_autoscales_the_indexer_alone(default_chart: RenderedChart) -> None:
    (hpa,) = default_chart.models("HorizontalPodAutoscaler")
    assert hpa.spec.scale_target_ref.kind == "Deployment"
    assert hpa.spec.scale_target_ref.name == "clair-indexer"
    deployments = _deployments(default_chart)
    # The HPA owns the indexer's replica count; the others have theirs.
    assert deployments["indexer"].spec.replicas is None
    assert deployments["matcher"].spec.replicas == 1
    budgets = {
        p.spec.selector.match_labels["app.kubernetes.io/component"]
        for p in default_chart.models("PodDisruptionBudget")
    }
    assert budgets == set(SERVICES)


def test_services_and_ingress_route_to_the_right_pods(default_chart: RenderedChart) -> None:
    deployments = _deployments(default_chart)
    services = {s.metadata.name: s for s in default_chart.models("Service")}
    (ingress,) = default_chart.models("Ingress")
    assert ingress.spec.ingress_class_name == "nginx"
    annotations = ingress.metadata.annotations
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "16m"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 900
    routes = {p.path: p.backend.service for rule in ingress.spec.rules for p in rule.http.paths}
    assert set(routes) == {f"/{s}" for s in SERVICES}
    for service_name in SERVICES:
        backend = routes[f"/{service_name}"]
        service = services[backend.name]
        pod_labels = deployments[service_name].spec.template.metadata.labels
        assert service.spec.selector.items() <= pod_labels.items()
        # The selector picks this service's pods only.
        for other in set(SERVICES) - {service_name}:
            other_labels = deployments[other].spec.template.metadata.labels
            assert not service.spec.selector.items() <= other_labels.items()
        (port,) = [p for p in service.spec.ports if p.name == backend.port.name]
        assert port.target_port == "api"


def _pod_environment(chart: RenderedChart, container: Any) -> dict[str, str]:
    """The container's env as the kubelet resolves it (Secret keys included)."""
    env: dict[str, str] = {}
    for var in container.env:
        if var.value_from is None:
            env[var.name] = var.value
            continue
        ref = var.value_from.secret_key_ref
        try:
            env[var.name] = secret_values(chart, ref.name)[ref.key]
        except KeyError:  # an existing Secret the chart does not make
            env[var.name] = (
                "c2VjcmV0LWtleS1vZi10aGlydHktdHdvLWJ5dGVzISE="
                if "PSK" in var.name
                else "postgresql://clair@db.example.com/clair"
            )
    return env


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
def test_each_pod_gets_a_config_its_mode_accepts(values_file: Path, tmp_path: Path) -> None:
    """Clair's own loader reads the ConfigMap with each pod's env and accepts it for its mode."""
    chart = render_chart(load_values(values_file))
    (configmap,) = [c for c in chart.of_kind("ConfigMap") if "config.yaml" in c["data"]]
    conf = tmp_path / "config.yaml"
    conf.write_text(configmap["data"]["config.yaml"])
    for deployment in chart.models("Deployment"):
        (container,) = deployment.spec.template.spec.containers
        mode = container.args[container.args.index("--mode") + 1]
        assert container.args[container.args.index("--config") + 1] == str(
            Path("/etc/clair") / conf.name
        )
        env = _pod_environment(chart, container)
        config = load_config(conf, env)
        validate_for_mode(config, mode, str(conf))
        services = SERVICES if mode == "combo" else (mode,)
        for service in services:
            if service == "notifier" and config.notifier.delivery is None:
                continue
            assert getattr(config, service).connstring, (mode, service)
        if config.auth.psk is not None:
            assert len(config.auth.psk.key_bytes) >= 32
        # The drain ends before the kubelet's SIGKILL.
        grace = deployment.spec.template.spec.termination_grace_period_seconds
        assert config.shutdown_grace_period.total_seconds() < grace


def test_schema_knows_every_top_level_clair_key() -> None:
    """values.schema.json lists Clair's top-level keys under `config` (to catch typos there):
    a key added to the config model must be added to the schema too."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    listed = set(schema["properties"]["config"]["properties"])
    missing, stale = set(Config.model_fields) - listed, listed - set(Config.model_fields)
    assert not missing and not stale, (
        f"deploy/helm/clair/values.schema.json, properties.config.properties: add {missing},"
        f" remove {stale}"
    )


def test_combo_is_one_deployment_behind_every_path() -> None:
    chart = render_chart(load_values(CHART / "ci" / "combo-values.yaml"))
    (deployment,) = chart.models("Deployment")
    assert deployment.spec.replicas == 2
    (container,) = deployment.spec.template.spec.containers
    assert container.args[:3] == ["serve", "--mode", "combo"]
    assert not chart.of_kind("HorizontalPodAutoscaler")
    (ingress,) = chart.models("Ingress")
    backends = {p.backend.service.name for r in ingress.spec.rules for p in r.http.paths}
    assert backends == {"clair-combo"}
    assert ingress.spec.tls[0].hosts == ["clair.example.com"]


def test_external_database_and_three_indexers() -> None:
    chart = render_chart(load_values(CHART / "ci" / "distributed-external-db-values.yaml"))
    assert _deployments(chart)["indexer"].spec.replicas == 3
    assert not chart.of_kind("HorizontalPodAutoscaler")
    assert not chart.of_kind("StatefulSet")
    secret = secret_values(chart, "clair-secret")
    assert secret["indexer-connstring"] == secret["matcher-connstring"]
    assert secret["notifier-connstring"].endswith("/notifier?sslmode=require")
    (monitor,) = chart.of_kind("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_existing_secret_is_used_and_none_is_made() -> None:
    chart = render_chart(load_values(CHART / "ci" / "notifier-webhook-values.yaml"))
    assert not chart.of_kind("Secret")
    refs = {
        var.value_from.secret_key_ref.name
        for d in chart.models("Deployment")
        for var in d.spec.template.spec.containers[0].env
        if var.value_from is not None
    }
    assert refs == {"clair-credentials"}


def test_in_chart_postgresql_shares_the_generated_password(
    default_chart: RenderedChart,
) -> None:
    (statefulset,) = default_chart.models("StatefulSet")
    assert statefulset.spec.volume_claim_templates[0].spec.resources.requests["storage"]
    secret = secret_values(default_chart, "clair-secret")
    password = secret["postgres-password"]
    assert len(password) >= 32
    for service in SERVICES:
        assert f":{password}@clair-postgresql:5432/" in secret[f"{service}-connstring"]
    # Fresh renders generate fresh secrets (an upgrade reads the live Secret back instead).
    assert secret_values(render_chart(), "clair-secret")["psk-key"] != secret["psk-key"]


def _registered_metric_names() -> set[str]:
    # Importing the modules registers their metrics, as starting a service does.
    import clair_common.db.pool
    import clair_common.http.observe  # noqa: F401
    import clair_indexer.fetch  # noqa: F401

    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def test_dashboard_queries_only_metrics_the_services_expose(
    default_chart: RenderedChart,
) -> None:
    (configmap,) = [c for c in default_chart.of_kind("ConfigMap") if "clair.json" in c["data"]]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(configmap["data"]["clair.json"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    known = _registered_metric_names()
    for expr in exprs:
        for pattern in re.findall(r'__name__=~"([^"]+)"', expr):
            matched = {n for n in known if re.fullmatch(pattern, n)}
            assert {"indexerv1", "matcherv1", "notificationv1"} <= {
                n.split("_")[2] for n in matched
            }, expr
        bare = re.sub(r'"[^"]*"', "", expr)
        for name in re.findall(r"\b((?:clair|pgxpool)_[a-z0-9_]+)", bare):
            assert name in known, f"{name} in {expr!r}"


def _leaf_keys(values: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if not isinstance(values, dict) or not values:
        return [prefix]
    return [k for key, v in values.items() for k in _leaf_keys(v, (*prefix, key))]


def test_readme_describes_every_value() -> None:
    """Each leaf of values.yaml, or a parent of it below the top level, is in the README."""
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = []
    for leaf in _leaf_keys(values):
        paths = {".".join(leaf[:n]) for n in range(min(2, len(leaf)), len(leaf) + 1)}
        if not any(f"`{path}`" in readme for path in paths):
            missing.append(".".join(leaf))
    assert not missing, f"README.md lacks {missing}"


def test_notes_tell_how_to_reach_the_api(default_chart: RenderedChart) -> None:
    assert "/indexer/api/v1/index_state" in default_chart.notes
    assert "kubectl -n clair get secret clair-secret" in default_chart.notes
