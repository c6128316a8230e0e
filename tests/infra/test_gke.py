"""What matters in the gke stack's resource graph, checked on the declarations under mocks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.targets.gke.apis import REQUIRED_APIS
from tests.infra.harness import MOCK_LB_IP, StackRun

from .conftest import API_KEY, SERVICE_CONTRACT_ENV
from .k8s import (
    CLUSTER,
    DEPLOYMENT,
    HPA,
    INGRESS,
    K8S_PROVIDER,
    NAMESPACE,
    NODE_POOL,
    PDB,
    SECRET,
    SERVICE,
    manifest,
)

STANDARD_LABELS = {"project": "modelship", "stack": "gke", "managed-by": "pulumi"}


def container(run: StackRun) -> dict[str, Any]:
    (only,) = manifest(run, DEPLOYMENT)["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = only
    return result


# --------------------------------------------------------------------------- image and rollout


def test_deployment_runs_the_image_by_digest(gke_run: StackRun) -> None:
    image = container(gke_run)["image"]
    assert "@sha256:" in image
    assert image == gke_run.outputs["image"]
    assert image == gke_run.named("modelship-image-build").state["ref"]


def test_rolling_update_never_drops_below_the_desired_count(gke_run: StackRun) -> None:
    strategy = manifest(gke_run, DEPLOYMENT)["spec"]["strategy"]
    assert strategy == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }


def test_hpa_owns_the_replica_count(gke_run: StackRun) -> None:
    assert "replicas" not in manifest(gke_run, DEPLOYMENT)["spec"]
    spec = manifest(gke_run, HPA)["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 4)
    assert spec["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 70},
            },
        }
    ]


# --------------------------------------------------------------------------- container


def test_probes_hit_the_service_paths_on_the_container_port(gke_run: StackRun) -> None:
    c = container(gke_run)
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    probes = {
        kind: c[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["startupProbe"]["path"] == "/healthz"
    assert {p["port"] for p in probes.values()} == {8080}


def test_environment_follows_the_service_contract(gke_run: StackRun) -> None:
    env = {e["name"]: e["value"] for e in container(gke_run)["env"]}
    assert env == SERVICE_CONTRACT_ENV
    pod = manifest(gke_run, DEPLOYMENT)["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > 20


def test_requests_equal_limits_within_autopilot_bounds(gke_run: StackRun) -> None:
    resources = container(gke_run)["resources"]
    assert resources["requests"] == resources["limits"]
    assert resources["requests"]["cpu"] == "500m"
    assert resources["requests"]["memory"] == "512Mi"


def test_pod_security(gke_run: StackRun) -> None:
    pod = manifest(gke_run, DEPLOYMENT)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = container(gke_run)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # The one writable directory.
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert "emptyDir" in tmp
    assert {"name": "tmp", "mountPath": "/tmp"} in container(gke_run)["volumeMounts"]
    labels = manifest(gke_run, NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


# --------------------------------------------------------------------------- service, hpa, pdb


def test_service_targets_the_container_port(gke_run: StackRun) -> None:
    spec = manifest(gke_run, SERVICE)["spec"]
    assert spec["type"] == "LoadBalancer"
    (port,) = spec["ports"]
    assert port["port"] == 80
    named = {p["name"]: p["containerPort"] for p in container(gke_run)["ports"]}
    assert named[port["targetPort"]] == 8080


def test_url_comes_from_the_load_balancer_ingress_ip(gke_run: StackRun) -> None:
    assert gke_run.outputs["url"] == f"http://{MOCK_LB_IP}"


def test_service_hpa_and_pdb_select_the_deployment_pods(gke_run: StackRun) -> None:
    deployment = manifest(gke_run, DEPLOYMENT)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert manifest(gke_run, SERVICE)["spec"]["selector"] == selector
    assert manifest(gke_run, PDB)["spec"]["selector"]["matchLabels"] == selector
    assert manifest(gke_run, PDB)["spec"]["maxUnavailable"] == 1
    target = manifest(gke_run, HPA)["spec"]["scaleTargetRef"]
    assert target == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }


def test_everything_lives_in_the_namespace(gke_run: StackRun) -> None:
    for r in gke_run.resources:
        if r.type.startswith("kubernetes:") and r.type != NAMESPACE:
            assert r.inputs["metadata"]["namespace"] == "modelship", r.name


# --------------------------------------------------------------------------- providers and labels


def test_every_kubernetes_object_goes_through_the_cluster_provider(gke_variant: StackRun) -> None:
    provider = gke_variant.one(K8S_PROVIDER)
    cluster = gke_variant.one(CLUSTER)
    assert cluster.urn in provider.dependencies
    objects = [r for r in gke_variant.resources if r.type.startswith("kubernetes:")]
    assert objects
    for r in objects:
        assert r.provider_urn == provider.urn, r.name


def test_kubeconfig_uses_the_auth_plugin_and_is_secret(gke_run: StackRun) -> None:
    assert "kubeconfig" in gke_run.secret_outputs
    config = json.loads(gke_run.outputs["kubeconfig"])
    assert config["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert config["clusters"][0]["cluster"]["server"].startswith("https://")
    provider = gke_run.one(K8S_PROVIDER)
    assert json.loads(provider.inputs["kubeconfig"]) == config


def test_labels_are_on_everything(gke_variant: StackRun) -> None:
    for r in gke_variant.resources:
        inputs = r.inputs
        if r.type.startswith("kubernetes:"):
            labels = inputs["metadata"]["labels"]
        elif r.type == CLUSTER:
            labels = inputs["resourceLabels"]
        elif r.type == NODE_POOL:
            labels = inputs["nodeConfig"]["resourceLabels"]
        elif r.type == "docker-build:index:Image":
            labels = {k.removeprefix("org.modelship."): v for k, v in inputs["labels"].items()}
        elif r.type in {
            "gcp:artifactregistry/repository:Repository",
            "gcp:compute/globalAddress:GlobalAddress",
            "gcp:storage/bucket:Bucket",
        }:
            labels = inputs["labels"]
        else:
            continue  # the resource type has no labels (APIs, IAM, networks, components, providers)
        assert STANDARD_LABELS.items() <= labels.items(), r.name


def test_components_follow_the_naming_convention(gke_run: StackRun) -> None:
    for r in gke_run.resources:
        if r.type.startswith("modelship:"):
            _, module, _ = r.type.split(":")
            assert module in {"gke", "image", "kubernetes"}
            assert r.name.startswith("modelship-")


# --------------------------------------------------------------------------- cluster


def test_apis_enabled_and_kept_on_destroy(gke_run: StackRun) -> None:
    services = gke_run.of_type("gcp:projects/service:Service")
    assert {s.inputs["service"] for s in services} == set(REQUIRED_APIS)
    assert all(s.inputs["disableOnDestroy"] is False for s in services)
    cluster = gke_run.one(CLUSTER)
    assert {s.urn for s in services} <= set(cluster.dependencies)


def test_autopilot_cluster_by_default_with_deletion_protection_off(gke_run: StackRun) -> None:
    cluster = gke_run.one(CLUSTER).inputs
    assert cluster["enableAutopilot"] is True
    assert cluster["deletionProtection"] is False
    assert cluster["releaseChannel"] == {"channel": "REGULAR"}
    assert "nodeConfig" not in cluster  # would replace an Autopilot cluster on the next up
    assert cluster["ipAllocationPolicy"] == {
        "clusterSecondaryRangeName": "pods",
        "servicesSecondaryRangeName": "services",
    }
    assert gke_run.of_type(NODE_POOL) == []


def test_standard_mode_has_its_own_autoscaled_node_pool(gke_standard: StackRun) -> None:
    cluster = gke_standard.one(CLUSTER).inputs
    assert cluster.get("enableAutopilot") is not True
    assert cluster["removeDefaultNodePool"] is True
    assert cluster["deletionProtection"] is False
    assert cluster["workloadIdentityConfig"] == {"workloadPool": "modelship-test.svc.id.goog"}
    pool = gke_standard.one(NODE_POOL).inputs
    assert pool["autoscaling"]["totalMinNodeCount"] == 1
    assert pool["autoscaling"]["totalMaxNodeCount"] == 3
    assert pool["nodeConfig"]["spot"] is True
    assert pool["nodeConfig"]["machineType"] == "e2-standard-2"
    assert pool["nodeConfig"]["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}


def test_vpc_native_network_with_secondary_ranges(gke_run: StackRun) -> None:
    network = gke_run.one("gcp:compute/network:Network").inputs
    assert network["autoCreateSubnetworks"] is False
    subnet = gke_run.one("gcp:compute/subnetwork:Subnetwork").inputs
    ranges = {r["rangeName"]: r["ipCidrRange"] for r in subnet["secondaryIpRanges"]}
    assert set(ranges) == {"pods", "services"}
    assert subnet["privateIpGoogleAccess"] is True


def test_nodes_pull_with_the_least_role(gke_run: StackRun) -> None:
    grant = gke_run.one("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember").inputs
    assert grant["role"] == "roles/artifactregistry.reader"
    account = gke_run.named("modelship-gke-nodes").state["email"]
    assert grant["member"] == f"serviceAccount:{account}"
    cluster = gke_run.one(CLUSTER).inputs
    defaults = cluster["clusterAutoscaling"]["autoProvisioningDefaults"]
    assert defaults["serviceAccount"] == account
    roles = {m.inputs["role"] for m in gke_run.of_type("gcp:projects/iAMMember:IAMMember")}
    assert roles == {"roles/container.defaultNodeServiceAccount"}


def test_registry_keeps_the_last_images(gke_run: StackRun) -> None:
    repo = gke_run.one("gcp:artifactregistry/repository:Repository").inputs
    assert repo["format"] == "DOCKER"
    policies = {p["id"]: p for p in repo["cleanupPolicies"]}
    assert policies["keep-most-recent"]["action"] == "KEEP"
    assert policies["keep-most-recent"]["mostRecentVersions"]["keepCount"] == 10
    assert policies["delete-old-versions"]["action"] == "DELETE"


# --------------------------------------------------------------------------- variants


def test_api_key_secret_is_mounted_and_announced(gke_https: StackRun) -> None:
    secret = gke_https.one(SECRET)
    assert secret.inputs["stringData"] == {"api-key": API_KEY}
    assert "stringData" in secret.secret_paths
    c = container(gke_https)
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["MODELSHIP_API_KEY_FILE"] == "/var/run/secrets/modelship/api-key"
    mount = next(m for m in c["volumeMounts"] if m["name"] == "api-key")
    assert mount == {"name": "api-key", "mountPath": "/var/run/secrets/modelship", "readOnly": True}


def test_no_api_key_no_secret(gke_run: StackRun) -> None:
    assert gke_run.of_type(SECRET) == []
    assert "MODELSHIP_API_KEY_FILE" not in {e["name"] for e in container(gke_run)["env"]}


def test_https_with_a_domain(gke_https: StackRun) -> None:
    assert gke_https.outputs["url"] == "https://api.example.com"
    assert manifest(gke_https, SERVICE)["spec"]["type"] == "ClusterIP"
    ingress = manifest(gke_https, INGRESS)
    annotations = ingress["metadata"]["annotations"]
    assert annotations["kubernetes.io/ingress.class"] == "gce"
    cert = manifest(gke_https, "kubernetes:networking.gke.io/v1:ManagedCertificate")
    assert cert["spec"] == {"domains": ["api.example.com"]}
    assert annotations["networking.gke.io/managed-certificates"] == cert["metadata"]["name"]
    frontend = manifest(gke_https, "kubernetes:networking.gke.io/v1beta1:FrontendConfig")
    assert frontend["spec"]["redirectToHttps"]["enabled"] is True
    backend = manifest(gke_https, "kubernetes:cloud.google.com/v1:BackendConfig")
    assert backend["spec"]["healthCheck"]["requestPath"] == "/readyz"
    assert backend["spec"]["healthCheck"]["port"] == 8080
    service_annotations = manifest(gke_https, SERVICE)["metadata"]["annotations"]
    assert json.loads(service_annotations["cloud.google.com/backend-config"]) == {
        "default": backend["metadata"]["name"]
    }
    assert ingress["spec"]["defaultBackend"]["service"]["port"] == {"number": 80}
    address = gke_https.one("gcp:compute/globalAddress:GlobalAddress")
    assert annotations["kubernetes.io/ingress.global-static-ip-name"] == address.state["name"]


def test_scale_to_zero_keeps_the_cluster(gke_parked: StackRun) -> None:
    assert manifest(gke_parked, DEPLOYMENT)["spec"]["replicas"] == 0
    assert gke_parked.of_type(HPA) == []
    assert len(gke_parked.of_type(CLUSTER)) == 1


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"modelship:deletionProtection": True}, True),
        ({}, False),
    ],
)
def test_deletion_protection_is_a_switch(overrides: dict[str, object], expected: bool) -> None:
    from tests.infra.harness import run_stack

    run = run_stack("gke", {"gcp:project": "modelship-test", **overrides})
    assert run.one(CLUSTER).inputs["deletionProtection"] is expected


API_OF_TYPE = {
    "gcp:compute/": "compute.googleapis.com",
    "gcp:container/": "container.googleapis.com",
    "gcp:artifactregistry/": "artifactregistry.googleapis.com",
    "gcp:serviceaccount/": "iam.googleapis.com",
    "gcp:projects/iAMMember": "cloudresourcemanager.googleapis.com",
}


def transitive_dependencies(run: StackRun, urn: str) -> set[str]:
    seen: set[str] = set()
    stack = [urn]
    while stack:
        for dep in run.by_urn(stack.pop()).dependencies:
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


def test_every_google_resource_waits_for_its_api(gke_variant: StackRun) -> None:
    """A fresh project has the APIs off: nothing may be created before its API is enabled."""
    api_urn = {
        s.inputs["service"]: s.urn for s in gke_variant.of_type("gcp:projects/service:Service")
    }
    checked = 0
    for r in gke_variant.resources:
        api = next((a for prefix, a in API_OF_TYPE.items() if r.type.startswith(prefix)), None)
        if api is None:
            continue
        assert api_urn[api] in transitive_dependencies(gke_variant, r.urn), (
            f"{r.name} does not wait for {api}"
        )
        checked += 1
    assert checked >= 6


def test_workload_waits_for_the_pull_permission(gke_run: StackRun) -> None:
    grant = gke_run.one("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
    assert grant.urn in gke_run.one(DEPLOYMENT).dependencies


def test_parking_at_zero_can_take_replicas_back_from_the_hpa(gke_parked: StackRun) -> None:
    annotations = manifest(gke_parked, DEPLOYMENT)["metadata"]["annotations"]
    assert annotations["pulumi.com/patchForce"] == "true"
