"""deploy/kubernetes: every manifest valid against the Kubernetes API schemas (kubernetes-validate ships them: no
cluster, no network), and the properties a reviewer would otherwise check by eye: probes, non-root, read-only root
file system, replicas, resources, disruption budget, selectors that select, secrets that exist, settings that the
service knows."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml

from cds_service.service.security import load_issuers
from cds_service.service.settings import Settings

from .deployment_files import DEPLOY, ROOT, known_settings, nginx_size

MANIFESTS = DEPLOY / "kubernetes"
SECRET_TEMPLATE = "secret.template.yaml"
# The oldest Kubernetes these manifests are for (autoscaling/v2, policy/v1 and the restricted Pod Security Standard
# are all older), and the newest whose schemas the package ships, so that an API removed since is caught too.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())


@functools.cache
def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text(encoding="utf-8")) if d]


def kustomization() -> dict:
    return documents("kustomization.yaml")[0]


@functools.cache
def resources() -> dict[str, dict]:
    """Every object the kustomization applies, and the Secret template, by kind (one of each here)."""
    found: dict[str, dict] = {}
    for name in [*kustomization()["resources"], SECRET_TEMPLATE]:
        for document in documents(name):
            assert document["kind"] not in found, f"two {document['kind']} objects: the tests below expect one"
            found[document["kind"]] = document
    return found


def pod_spec(kind: str) -> dict:
    return resources()[kind]["spec"]["template"]["spec"]


def pod_labels(kind: str) -> dict:
    return resources()[kind]["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def test_the_kustomization_applies_every_manifest_but_the_secret_template():
    files = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml", SECRET_TEMPLATE}
    assert sorted(kustomization()["resources"]) == sorted(files)
    assert SECRET_TEMPLATE not in kustomization()["resources"], "placeholders must never be applied"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", sorted(p.name for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml"))
def test_every_manifest_is_valid_for_kubernetes(name, version):
    for document in documents(name):
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name} ({document['kind']}) is not valid for Kubernetes {version}: {error.message} "
                        f"at {'/'.join(map(str, error.path))}")


def test_the_deployment_runs_at_least_two_replicas_and_the_autoscaler_keeps_them():
    deployment, hpa = resources()["Deployment"], resources()["HorizontalPodAutoscaler"]
    assert deployment["spec"]["replicas"] >= 2
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    # A rollout never drops below the replicas asked for.
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_the_probes_call_healthz_for_liveness_and_readyz_for_readiness_on_the_service_port():
    container = pod_spec("Deployment")["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert ports[container[probe]["httpGet"]["port"]] == 8080
    assert "EXPOSE 8080" in (ROOT / "Dockerfile").read_text()


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_pods_run_non_root_on_a_read_only_root_file_system_without_capabilities(kind):
    spec = pod_spec(kind)
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    for container in spec["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert context["seccompProfile"]["type"] == "RuntimeDefault"
        assert context.get("runAsUser", pod["runAsUser"]) == 10001, "the image's user (Dockerfile: uid 10001)"


def test_the_only_writable_places_are_empty_dirs_for_tmp_and_home():
    spec = pod_spec("Deployment")
    empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    # HOME of the image (gunicorn's control socket) and /tmp (the JWT replay cache until the database holds it).
    assert "HOME=/home/cds" in (ROOT / "Dockerfile").read_text()
    assert mounts["/tmp"] in empty_dirs and mounts["/home/cds"] in empty_dirs
    writable = {path for path, name in mounts.items() if name in empty_dirs}
    assert writable == {"/tmp", "/home/cds"}


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_every_container_has_cpu_and_memory_requests_within_its_limits(kind):
    units = {"": 1, "m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}

    def quantity(value) -> float:
        text = str(value)
        suffix = next((s for s in ("Ki", "Mi", "Gi", "m") if text.endswith(s)), "")
        return float(text[: len(text) - len(suffix)]) * units[suffix]

    for container in pod_spec(kind)["containers"]:
        resources_ = container["resources"]
        for resource in ("cpu", "memory"):
            assert quantity(resources_["requests"][resource]) <= quantity(resources_["limits"][resource])
    if kind == "Deployment":
        # The image runs GUNICORN_WORKERS processes, one core each at full load (docs/performance.md).
        limits = pod_spec(kind)["containers"][0]["resources"]["limits"]
        assert quantity(limits["cpu"]) >= int(resources()["ConfigMap"]["data"]["GUNICORN_WORKERS"])


def test_the_disruption_budget_keeps_one_replica_and_lets_a_drain_proceed():
    pdb = resources()["PodDisruptionBudget"]
    assert pdb["spec"]["minAvailable"] >= 1
    assert pdb["spec"]["minAvailable"] < resources()["Deployment"]["spec"]["replicas"]
    assert selects(pdb["spec"]["selector"], pod_labels("Deployment"))
    assert not selects(pdb["spec"]["selector"], pod_labels("Job")), "a migration pod is no replica"


def test_the_service_and_the_network_policy_select_the_replicas():
    service, policy = resources()["Service"], resources()["NetworkPolicy"]
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels("Deployment"))
    assert not selects({"matchLabels": service["spec"]["selector"]}, pod_labels("Job"))
    port_names = {p["name"] for p in pod_spec("Deployment")["containers"][0]["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    for kind in ("Deployment", "Job"):
        assert selects(policy["spec"]["podSelector"], pod_labels(kind))


def test_the_network_policy_lets_in_only_the_ingress_controller_and_out_dns_postgresql_and_https():
    spec = resources()["NetworkPolicy"]["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    [ingress] = spec["ingress"]
    assert [p["port"] for p in ingress["ports"]] == [8080]
    assert all("namespaceSelector" in source for source in ingress["from"])
    egress_ports = {(p["port"], p["protocol"]) for rule in spec["egress"] for p in rule["ports"]}
    assert egress_ports == {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (443, "TCP")}


def test_the_ingress_limits_bodies_to_the_services_own_limit_and_buffers_requests():
    ingress, config = resources()["Ingress"], resources()["ConfigMap"]["data"]
    annotations = ingress["metadata"]["annotations"]
    assert nginx_size(annotations["nginx.ingress.kubernetes.io/proxy-body-size"]) == int(config["CDS_MAX_BODY_BYTES"])
    assert annotations["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "on"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > int(config["GUNICORN_TIMEOUT"])
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == resources()["Service"]["metadata"]["name"]


def test_shutdown_fits_the_grace_period():
    spec, config = pod_spec("Deployment"), resources()["ConfigMap"]["data"]
    pause = int(spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pause + int(config["GUNICORN_GRACEFUL_TIMEOUT"]) < spec["terminationGracePeriodSeconds"]


def env_names(kind: str) -> set[str]:
    return {e["name"] for c in pod_spec(kind)["containers"] for e in c.get("env", [])}


def test_every_variable_the_manifests_set_is_a_setting_the_service_reads():
    names = set(resources()["ConfigMap"]["data"]) | env_names("Deployment") | env_names("Job")
    unknown = names - known_settings()
    assert not unknown, f"not read by the service or its gunicorn configuration: {sorted(unknown)}"


def test_the_secret_template_holds_placeholders_for_every_key_the_pods_read():
    secret = resources()["Secret"]["stringData"]
    wanted = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for kind in ("Deployment", "Job")
        for c in pod_spec(kind)["containers"]
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    wanted |= {item["key"] for v in pod_spec("Deployment")["volumes"] if "secret" in v for item in v["secret"]["items"]}
    assert wanted <= set(secret)
    for key, value in secret.items():
        assert "REPLACE" in value, f"{key} of the template must be a placeholder, not a value"


def test_the_configmap_and_the_secret_templates_issuers_file_are_settings_the_service_accepts(tmp_path):
    issuers = tmp_path / "issuers.json"
    issuers.write_text(resources()["Secret"]["stringData"]["issuers.json"])
    assert list(load_issuers(issuers)) == ["https://REPLACE-EHR-ISSUER.example.org"]
    environment = {**resources()["ConfigMap"]["data"], "CDS_ISSUERS": str(issuers)}
    settings = Settings.from_env(environment)
    assert settings.auth == "required" and settings.public_url and not settings.fhir_allow_http
    json.loads(resources()["Secret"]["stringData"]["issuers.json"])


def test_the_migration_job_runs_a_command_the_image_has():
    [container] = pod_spec("Job")["containers"]
    command = container["command"]
    assert command[:2] == ["python", "-m"], "the Job runs a module of the service"
    module, arguments = command[2], command[3:]
    # The same module and arguments, asked for their usage: it must exist and accept the subcommand.
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert all(argument in result.stdout for argument in arguments)
    assert {e["name"] for e in container["env"]} == {"CDS_DATABASE_URL"}
