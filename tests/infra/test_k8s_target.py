"""The k8s stack (any existing cluster): its objects, checked on the declarations under mocks.

Every object of every variant is validated against the Kubernetes OpenAPI schema (strict) for the
oldest and newest Kubernetes versions the target supports
(`infra.targets.k8s.config.KUBERNETES_VERSIONS`).
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path
from typing import Any, cast

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from infra.config import ConfigError
from infra.targets.k8s.config import KUBERNETES_VERSIONS
from tests.infra.harness import MOCK_LB_IP, MOCK_NODE_PORT, REPO_ROOT, StackRun

from .k8s import DEPLOYMENT, HPA, INGRESS, K8S_PROVIDER, NAMESPACE, SECRET, SERVICE, manifest
from .k8s import manifests as k8s_manifests
from .k8s_stack import API_KEY, IMAGE, K8S_VARIANTS, run_k8s, run_variant

IMAGE_BUILD = "docker-build:index:Image"


@cache
def variant(name: str) -> StackRun:
    return run_variant(name)


def pod(run: StackRun) -> dict[str, Any]:
    spec: dict[str, Any] = manifest(run, DEPLOYMENT)["spec"]["template"]["spec"]
    return spec


def container(run: StackRun) -> dict[str, Any]:
    (only,) = pod(run)["containers"]
    result: dict[str, Any] = only
    return result


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", sorted(K8S_VARIANTS))
def test_objects_match_the_kubernetes_schema(name: str, version: str) -> None:
    kinds = []
    for resource, obj in k8s_manifests(variant(name)):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{resource.type} {resource.name} invalid for {version}: {error.message}")
        kinds.append(obj["kind"])
    assert {"Deployment", "Service", "PodDisruptionBudget", "ServiceAccount"} <= set(kinds)


def test_the_floor_is_real() -> None:
    """Below the oldest supported version the schema rejects what we declare (preStop sleep).

    1.29 still validates (the field exists there, behind an alpha feature gate that is off), so
    the documented floor is 1.30, where the gate is on by default.
    """
    obj = manifest(variant("loadbalancer"), DEPLOYMENT)
    with pytest.raises(kubernetes_validate.ValidationError, match="sleep"):
        kubernetes_validate.validate(obj, "1.28.0", strict=True)


# --------------------------------------------------------------------------- same app as gke


def _portable(run: StackRun) -> dict[str, Any]:
    """The pod template without what legitimately differs between stacks and targets."""
    template = manifest(run, DEPLOYMENT)["spec"]["template"]
    spec = dict(template["spec"])
    (c,) = spec.pop("containers")
    c = {k: v for k, v in c.items() if k != "image"}
    c["resources"] = {
        kind: {k: v for k, v in quantities.items() if k != "ephemeral-storage"}
        for kind, quantities in c["resources"].items()
    }
    spec["containers"] = [c]
    spec.pop("topologySpreadConstraints")  # selects the stack's own pods
    return spec


def test_the_pod_is_the_one_gke_runs(gke_run: StackRun) -> None:
    """Same probes, resources, security, environment: only image and labels differ."""
    assert _portable(variant("loadbalancer")) == _portable(gke_run)


def test_requests_equal_limits_and_no_autopilot_values() -> None:
    resources = container(variant("loadbalancer"))["resources"]
    assert resources["requests"] == resources["limits"] == {"cpu": "500m", "memory": "512Mi"}


def test_nothing_depends_on_gke() -> None:
    for name in K8S_VARIANTS:
        run = variant(name)
        assert not [r.type for r in run.resources if r.type.startswith("gcp:")]
        text = repr([dict(r.inputs) for r in run.resources]).lower()
        for word in ("google", "gke", "autopilot", "iam.gke.io", "ephemeral-storage"):
            assert word not in text, (name, word)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    "path",
    [
        path
        for folder in ("core", "kubernetes", "targets/k8s")
        for path in sorted((REPO_ROOT / "infra" / folder).glob("*.py"))
    ],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_shared_and_k8s_code_import_nothing_from_a_cloud(path: Path) -> None:
    clouds = ("pulumi_gcp", "pulumi_aws", "infra.targets.gke", "infra.targets.fargate")
    assert not {m for m in _imports(path) if m.startswith(clouds)}


# --------------------------------------------------------------------------- cluster and image


def test_every_object_goes_through_the_kubeconfig_provider() -> None:
    run = variant("loadbalancer")
    provider = run.one(K8S_PROVIDER)
    assert "context" not in provider.inputs  # the kubeconfig's current context
    assert "kubeconfig" not in provider.inputs  # $KUBECONFIG or ~/.kube/config
    for resource, _ in k8s_manifests(run):
        assert resource.provider_urn == provider.urn, resource.name
    assert run.outputs["context"] == "(current context)"


def test_the_context_comes_from_config() -> None:
    run = variant("private")
    assert run.one(K8S_PROVIDER).inputs["context"] == "kubernetes-admin@kubeadm"


def test_a_digest_reference_is_deployed_as_given() -> None:
    run = variant("loadbalancer")
    assert container(run)["image"] == IMAGE == run.outputs["image"]
    assert container(run)["imagePullPolicy"] == "IfNotPresent"
    assert not run.of_type(IMAGE_BUILD)


def test_a_tag_is_pulled_every_time_with_the_pull_secret() -> None:
    run = variant("private")
    assert container(run)["imagePullPolicy"] == "Always"
    assert pod(run)["imagePullSecrets"] == [{"name": "registry-credentials"}]


def test_the_stack_can_build_and_push_to_any_registry() -> None:
    run = run_k8s(
        {"modelship:registry": "registry.example.com:5000/ml"}, unset=("modelship:image",)
    )
    build = run.one(IMAGE_BUILD)
    assert build.inputs["push"] is True
    assert build.inputs["tags"] == ["registry.example.com:5000/ml/modelship:k8s"]
    assert "registries" not in build.inputs  # the machine's `docker login`
    assert container(run)["image"] == build.state["ref"] == run.outputs["image"]
    assert "@sha256:" in container(run)["image"]
    assert container(run)["imagePullPolicy"] == "IfNotPresent"


def test_registry_credentials_are_secret() -> None:
    run = run_k8s(
        {"modelship:registry": "ghcr.io/example", "modelship:registryUsername": "bot"},
        secrets={"modelship:registryPassword": "hunter2"},
        unset=("modelship:image",),
    )
    build = run.one(IMAGE_BUILD)
    assert build.inputs["registries"] == [
        {"address": "ghcr.io", "username": "bot", "password": "hunter2"}
    ]
    # The whole list is marked secret (the password makes it so).
    assert build.secret_paths & {"registries", "registries[0]", "registries[0].password"}


def test_a_preview_needs_no_docker() -> None:
    run = run_k8s(
        {"modelship:registry": "registry.example.com/ml"}, unset=("modelship:image",), preview=True
    )
    assert "ref" not in run.one(IMAGE_BUILD).state


# --------------------------------------------------------------------------- exposure


def test_loadbalancer_is_the_default() -> None:
    run = variant("loadbalancer")
    assert manifest(run, SERVICE)["spec"]["type"] == "LoadBalancer"
    assert run.outputs["url"] == f"http://{MOCK_LB_IP}"
    assert not run.of_type(INGRESS)


def test_nodeport_for_bare_metal() -> None:
    run = variant("nodeport")
    (port,) = manifest(run, SERVICE)["spec"]["ports"]
    assert manifest(run, SERVICE)["spec"]["type"] == "NodePort"
    assert port["nodePort"] == 30123
    assert run.outputs["node_port"] == 30123
    assert run.outputs["url"] == "http://192.0.2.7:30123"


def test_nodeport_picked_by_kubernetes() -> None:
    run = variant("nodeport-auto")
    (port,) = manifest(run, SERVICE)["spec"]["ports"]
    assert "nodePort" not in port
    assert run.outputs["node_port"] == MOCK_NODE_PORT
    assert run.outputs["url"] == ""  # no node address configured: docs show how to find one


def test_ingress_with_class_host_and_tls() -> None:
    run = variant("ingress")
    assert manifest(run, SERVICE)["spec"]["type"] == "ClusterIP"
    ingress = manifest(run, INGRESS)
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [
        {"hosts": ["models.example.com"], "secretName": "models-example-com-tls"}
    ]
    (rule,) = spec["rules"]
    assert rule["host"] == "models.example.com"
    (path,) = rule["http"]["paths"]
    service = manifest(run, SERVICE)
    assert path["backend"]["service"] == {
        "name": service["metadata"]["name"],
        "port": {"number": service["spec"]["ports"][0]["port"]},
    }
    assert ingress["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert run.outputs["url"] == "https://models.example.com"


def test_ingress_defaults_to_the_cluster_default_class_without_tls() -> None:
    spec = manifest(variant("ingress-minimal"), INGRESS)["spec"]
    assert "ingressClassName" not in spec
    assert "tls" not in spec
    assert variant("ingress-minimal").outputs["url"] == "http://models.example.com"


def test_clusterip_url_is_the_in_cluster_name() -> None:
    run = variant("clusterip")
    assert manifest(run, SERVICE)["spec"]["type"] == "ClusterIP"
    assert run.outputs["url"] == "http://modelship.modelship.svc.cluster.local:80"


# --------------------------------------------------------------------------- api key, namespace


def test_api_key_from_an_existing_secret() -> None:
    run = variant("private")
    assert not run.of_type(SECRET)
    volume = next(v for v in pod(run)["volumes"] if v["name"] == "api-key")
    assert volume["secret"]["secretName"] == "modelship-api-key"
    assert volume["secret"]["items"] == [{"key": "api-key", "path": "api-key"}]
    env = {e["name"]: e["value"] for e in container(run)["env"]}
    assert env["MODELSHIP_API_KEY_FILE"] == "/var/run/secrets/modelship/api-key"
    mount = next(m for m in container(run)["volumeMounts"] if m["name"] == "api-key")
    assert mount == {
        "name": "api-key",
        "mountPath": "/var/run/secrets/modelship",
        "readOnly": True,
    }


def test_api_key_from_config_becomes_a_secret() -> None:
    run = run_k8s(secrets={"modelship:apiKey": API_KEY})
    secret = run.one(SECRET)
    assert secret.inputs["stringData"] == {"api-key": API_KEY}
    assert secret.secret_paths & {"stringData", "stringData.api-key"}
    volume = next(v for v in pod(run)["volumes"] if v["name"] == "api-key")
    assert volume["secret"]["secretName"] == secret.state["metadata"]["name"]


def test_an_existing_namespace_is_used_not_created() -> None:
    run = variant("private")
    assert not run.of_type(NAMESPACE)
    for _, obj in k8s_manifests(run):
        assert obj["metadata"]["namespace"] == "ml-serving"
    assert run.outputs["namespace"] == "ml-serving"


def test_parked_service_has_no_autoscaler() -> None:
    run = variant("parked")
    assert not run.of_type(HPA)
    assert manifest(run, DEPLOYMENT)["spec"]["replicas"] == 0


# --------------------------------------------------------------------------- bad config


def config_error(
    overrides: dict[str, Any],
    *,
    unset: tuple[str, ...] = (),
    secrets: dict[str, str] | None = None,
) -> str:
    """The message a preview fails with (no resource is declared before it)."""
    with pytest.raises(ConfigError) as info:
        run_k8s(overrides, unset=unset, secrets=secrets, preview=True)
    return str(info.value)


def test_unknown_exposure_names_the_allowed_modes() -> None:
    message = config_error({"modelship:exposure": "Route"})
    assert "modelship:exposure = 'Route'" in message
    assert "LoadBalancer, NodePort, Ingress, ClusterIP" in message


def test_ingress_needs_a_host() -> None:
    message = config_error({"modelship:exposure": "Ingress"})
    assert "modelship:ingressHost = (not set): required with modelship:exposure Ingress" in message
    assert "fully qualified" in message


@pytest.mark.parametrize(
    "image",
    [
        "Registry.example.com/Team/ModelShip",  # uppercase in the repository path
        "registry.example.com/modelship@sha256:abc",  # digest too short
        "registry.example.com/modelship:",  # empty tag
        "registry.example.com//modelship",
        "https://registry.example.com/modelship",
        "modelship@latest",
        "registry.example.com/modelship:tag with space",
    ],
)
def test_malformed_image_reference(image: str) -> None:
    message = config_error({"modelship:image": image})
    assert f"modelship:image = {image!r}" in message
    assert "an image reference the cluster can pull" in message


@pytest.mark.parametrize(
    "image",
    [
        IMAGE,
        "modelship",
        "ghcr.io/org/modelship:v1.2.3",
        "localhost:5000/modelship:dev",
        "registry.example.com/a/b/c:1@" + "sha256:" + "0" * 64,
    ],
)
def test_good_image_references(image: str) -> None:
    assert container(run_k8s({"modelship:image": image}))["image"] == image


@pytest.mark.parametrize(
    ("overrides", "unset", "expected"),
    [
        ({}, ("modelship:image",), "modelship:image = (not set): required unless"),
        (
            {"modelship:registry": "registry.example.com"},
            (),
            "only one of modelship:image (deploy an existing image) or modelship:registry",
        ),
        (
            {"modelship:registry": "team/modelship"},
            ("modelship:image",),
            "a registry host with an optional path",
        ),
        ({"modelship:nodePort": 8080, "modelship:exposure": "NodePort"}, (), "from 30000 to 32767"),
        ({"modelship:nodePort": 30080}, (), "only used with modelship:exposure NodePort"),
        (
            {"modelship:ingressHost": "a.example.com"},
            (),
            "only used with modelship:exposure Ingress",
        ),
        (
            {"modelship:exposure": "Ingress", "modelship:ingressHost": "localhost"},
            (),
            "modelship:ingressHost = 'localhost': a fully qualified",
        ),
        (
            {"modelship:serviceAnnotations": {"bad key!": "x"}},
            (),
            "modelship:serviceAnnotations",
        ),
        ({"modelship:imagePullSecret": "Not_A_Name"}, (), "a Kubernetes object name"),
        ({"modelship:exposure": "LoadBalancer", "modelship:minReplica": 2}, (), "unknown key"),
        (
            {"modelship:registryUsername": "bot"},
            (),
            "modelship:registryPassword = (not set): registry username and password go together",
        ),
    ],
)
def test_bad_config(overrides: dict[str, Any], unset: tuple[str, ...], expected: str) -> None:
    assert expected in config_error(overrides, unset=unset)


def test_api_key_twice() -> None:
    message = config_error(
        {"modelship:apiKeySecret": "modelship-api-key"}, secrets={"modelship:apiKey": API_KEY}
    )
    assert "only one of modelship:apiKey" in message
    assert API_KEY not in message


def test_no_clear_text_key_in_rendered_yaml(tmp_path: Path) -> None:
    message = config_error(
        {"modelship:renderDir": str(tmp_path)}, secrets={"modelship:apiKey": API_KEY}
    )
    assert "modelship:apiKey = '[secret]': not with modelship:renderDir" in message
    assert API_KEY not in message


def test_docs_list_every_k8s_key() -> None:
    """docs/k8s.md stays true to the code: every key the target reads is documented."""
    from infra.targets.k8s import config

    docs = (REPO_ROOT / "docs" / "k8s.md").read_text()
    keys = [value for name, value in vars(config).items() if name.startswith("KEY_")]
    assert len(keys) > 15
    missing = [key for key in keys if f"`{key}`" not in docs]
    assert not missing, f"not in docs/k8s.md: {missing}"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"service_type": "ExternalName"}, "service_type must be one of"),
        ({"service_type": "LoadBalancer", "node_port": 30080}, "node_port can only be given"),
        (
            {"api_key": "k", "api_key_secret_name": "s"},
            "Only one of `api_key` or `api_key_secret_name`",
        ),
        ({"image_pull_policy": "Never"}, "image_pull_policy must be one of"),
    ],
)
def test_the_shared_component_refuses_contradictions(extra: dict[str, Any], message: str) -> None:
    from infra.kubernetes.app import KubernetesAppArgs, _check_args

    args = cast("KubernetesAppArgs", {"service_type": "ClusterIP", **extra})
    with pytest.raises(ValueError, match=re.escape(message)):
        _check_args(args)
