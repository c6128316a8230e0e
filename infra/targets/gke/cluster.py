"""The GKE cluster (Autopilot by default, Standard by config), its node service account, and a
Kubernetes provider wired to it through a kubeconfig that uses `gke-gcloud-auth-plugin`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from infra.core.components import child_opts
from infra.targets.gke.network import PODS_RANGE, SERVICES_RANGE, Network

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# The least project role a GKE node service account needs (logs, metrics, node registration).
NODE_ROLE = "roles/container.defaultNodeServiceAccount"
AUTH_PLUGIN = "gke-gcloud-auth-plugin"
AUTH_PLUGIN_HINT = (
    "Install gke-gcloud-auth-plugin for use with kubectl and Pulumi: "
    "gcloud components install gke-gcloud-auth-plugin (see docs/gke.md)"
)
CLUSTER_TIMEOUTS = pulumi.CustomTimeouts(create="45m", update="45m", delete="45m")


class GkeClusterArgs(TypedDict):
    project: str
    region: str
    autopilot: bool
    release_channel: str
    deletion_protection: bool
    network: Network
    machine_type: str
    node_min_count: int
    node_max_count: int
    spot: bool
    service_account_id: str
    labels: Mapping[str, str]
    depends_on: Sequence[pulumi.Resource]


class GkeCluster(pulumi.ComponentResource):
    """Cluster + dedicated node service account (+ node pool in Standard mode) + k8s provider."""

    cluster: gcp.container.Cluster
    node_pool: gcp.container.NodePool | None
    node_service_account: gcp.serviceaccount.Account
    node_member: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(
        self, name: str, args: GkeClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:gke:GkeCluster", name, None, opts)
        project, region = args["project"], args["region"]
        labels = dict(args["labels"])
        child = child_opts(self, opts)

        # A dedicated node identity instead of the Compute Engine default service account (which
        # is over-privileged, or disabled in hardened organisations).
        self.node_service_account = gcp.serviceaccount.Account(
            f"{name}-nodes",
            project=project,
            account_id=args["service_account_id"],
            display_name="modelship GKE nodes (managed by Pulumi)",
            opts=child_opts(self, opts, depends_on=list(args["depends_on"])),
        )
        self.node_member = pulumi.Output.concat("serviceAccount:", self.node_service_account.email)
        node_role = gcp.projects.IAMMember(
            f"{name}-nodes-role",
            project=project,
            role=NODE_ROLE,
            member=self.node_member,
            opts=child,
        )

        network = args["network"]
        common: dict[str, Any] = {
            "project": project,
            "location": region,
            "network": network.network.id,
            "subnetwork": network.subnetwork.id,
            "ip_allocation_policy": gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name=PODS_RANGE,
                services_secondary_range_name=SERVICES_RANGE,
            ),
            "release_channel": gcp.container.ClusterReleaseChannelArgs(
                channel=args["release_channel"]
            ),
            # Off by default so `pulumi destroy` works; it must be applied by an `up` before a
            # destroy can delete the cluster (pulumi-gcp defaults it to true, and a destroy then
            # fails with "Cannot destroy cluster because deletion_protection is set to true").
            # Turn on for production.
            "deletion_protection": args["deletion_protection"],
            "resource_labels": labels,
        }
        cluster_opts = child_opts(
            self,
            opts,
            depends_on=[*args["depends_on"], node_role],
            custom_timeouts=CLUSTER_TIMEOUTS,
        )
        if args["autopilot"]:
            # Autopilot: keep the arguments minimal (no node_config: it would replace the cluster
            # on the next up). Workload Identity is always on in Autopilot.
            self.cluster = gcp.container.Cluster(
                f"{name}-cluster",
                enable_autopilot=True,
                cluster_autoscaling=gcp.container.ClusterClusterAutoscalingArgs(
                    auto_provisioning_defaults=gcp.container.ClusterClusterAutoscalingAutoProvisioningDefaultsArgs(
                        service_account=self.node_service_account.email,
                        oauth_scopes=[CLOUD_PLATFORM_SCOPE],
                    ),
                ),
                **common,
                opts=cluster_opts,
            )
            self.node_pool = None
        else:
            self.cluster = gcp.container.Cluster(
                f"{name}-cluster",
                networking_mode="VPC_NATIVE",
                workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                    workload_pool=f"{project}.svc.id.goog",
                ),
                # The default pool is created and removed at once; the node pool below is ours.
                remove_default_node_pool=True,
                initial_node_count=1,
                node_config=gcp.container.ClusterNodeConfigArgs(
                    service_account=self.node_service_account.email,
                    oauth_scopes=[CLOUD_PLATFORM_SCOPE],
                ),
                **common,
                opts=cluster_opts,
            )
            self.node_pool = gcp.container.NodePool(
                f"{name}-pool",
                project=project,
                location=region,
                cluster=self.cluster.name,
                autoscaling=gcp.container.NodePoolAutoscalingArgs(
                    total_min_node_count=args["node_min_count"],
                    total_max_node_count=args["node_max_count"],
                    location_policy="BALANCED",
                ),
                management=gcp.container.NodePoolManagementArgs(
                    auto_repair=True, auto_upgrade=True
                ),
                upgrade_settings=gcp.container.NodePoolUpgradeSettingsArgs(
                    max_surge=1, max_unavailable=0
                ),
                node_config=gcp.container.NodePoolNodeConfigArgs(
                    machine_type=args["machine_type"],
                    spot=args["spot"],
                    disk_size_gb=50,
                    disk_type="pd-balanced",
                    service_account=self.node_service_account.email,
                    oauth_scopes=[CLOUD_PLATFORM_SCOPE],
                    resource_labels=labels,
                    workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                        mode="GKE_METADATA",
                    ),
                    shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
                        enable_secure_boot=True,
                        enable_integrity_monitoring=True,
                    ),
                ),
                opts=child_opts(self, opts, custom_timeouts=CLUSTER_TIMEOUTS),
            )

        self.kubeconfig = pulumi.Output.secret(
            kubeconfig(
                project,
                region,
                self.cluster.name,
                self.cluster.endpoint,
                self.cluster.master_auth.cluster_ca_certificate,
            )
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            # If the cluster is already gone, drop its objects from state rather than fail destroy.
            delete_unreachable=True,
            opts=child_opts(
                self, opts, depends_on=[self.node_pool] if self.node_pool is not None else []
            ),
        )
        self.register_outputs(
            {
                "cluster_name": self.cluster.name,
                "kubeconfig": self.kubeconfig,
                "node_service_account": self.node_service_account.email,
            }
        )


def kubeconfig(
    project: str,
    region: str,
    cluster_name: pulumi.Input[str],
    endpoint: pulumi.Input[str],
    ca_certificate: pulumi.Input[str | None],
) -> pulumi.Output[str]:
    """A kubeconfig (JSON, which is valid YAML) that authenticates with gke-gcloud-auth-plugin."""
    context = pulumi.Output.concat("gke_", project, "_", region, "_", cluster_name)
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {
                    "server": pulumi.Output.concat("https://", endpoint),
                    "certificate-authority-data": ca_certificate,
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
        "preferences": {},
        "users": [
            {
                "name": context,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": AUTH_PLUGIN,
                        "installHint": AUTH_PLUGIN_HINT,
                        "provideClusterInfo": True,
                        "interactiveMode": "IfAvailable",
                    }
                },
            }
        ],
    }
    return pulumi.Output.json_dumps(document)
