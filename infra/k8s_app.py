"""The service on Kubernetes: the shared container description turned into Kubernetes objects.

Namespace (Pod Security `restricted`), ServiceAccount (no token), optional API-key Secret,
Deployment (zero-downtime rolling update, three probes, requests = limits, hardened pod), Service,
HorizontalPodAutoscaler (autoscaling/v2, CPU) and PodDisruptionBudget. Every object goes through
the Kubernetes provider given in `opts` (`providers=[...]`), which children inherit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from infra.components import child_opts
from infra.container import PRE_STOP_SLEEP_SECONDS, ContainerSpec, Probe

EPHEMERAL_STORAGE = "1Gi"
API_KEY_VOLUME = "api-key"
TMP_VOLUME = "tmp"
SERVICE_PORT = 80
DEPLOY_TIMEOUTS = pulumi.CustomTimeouts(create="15m", update="15m", delete="10m")


class KubernetesAppArgs(TypedDict):
    """Inputs of `KubernetesApp`."""

    namespace: str
    app_name: str
    image: pulumi.Input[str]
    container: ContainerSpec
    labels: Mapping[str, str]
    selector: Mapping[str, str]
    service_type: str
    """`LoadBalancer` (public IP, the URL) or `ClusterIP` (behind an Ingress)."""
    api_key: NotRequired[pulumi.Input[str] | None]
    service_annotations: NotRequired[Mapping[str, pulumi.Input[str]]]


class KubernetesApp(pulumi.ComponentResource):
    """Namespace + Deployment + Service + HPA + PDB (+ Secret) for one container description."""

    namespace: k8s.core.v1.Namespace
    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service
    autoscaler: k8s.autoscaling.v2.HorizontalPodAutoscaler | None
    disruption_budget: k8s.policy.v1.PodDisruptionBudget
    api_key_secret: k8s.core.v1.Secret | None
    load_balancer_address: pulumi.Output[str]

    def __init__(
        self, name: str, args: KubernetesAppArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:kubernetes:KubernetesApp", name, None, opts)
        spec = args["container"]
        labels = {**args["labels"], **args["selector"]}
        selector = dict(args["selector"])
        app_name = args["app_name"]
        child = child_opts(self, opts)

        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args["namespace"],
                labels={
                    **args["labels"],
                    # The pods meet the `restricted` Pod Security Standard; enforce it.
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            ),
            opts=child,
        )
        namespace = self.namespace.metadata.name

        def meta(object_name: str | None = None, **extra: Any) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(
                name=object_name, namespace=namespace, labels=labels, **extra
            )

        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=meta(app_name),
            automount_service_account_token=False,
            opts=child,
        )

        volumes = [
            k8s.core.v1.VolumeArgs(
                name=TMP_VOLUME,
                empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit=spec.tmp_size_limit),
            )
        ]
        mounts = [k8s.core.v1.VolumeMountArgs(name=TMP_VOLUME, mount_path=spec.tmp_dir)]
        api_key = args.get("api_key")
        self.api_key_secret = None
        if api_key is not None and spec.api_key_dir is not None:
            # Auto-named: a new key gets a new Secret name, which rolls the Deployment.
            self.api_key_secret = k8s.core.v1.Secret(
                f"{name}-api-key",
                metadata=meta(),
                type="Opaque",
                string_data={spec.api_key_file_name: api_key},
                opts=child,
            )
            volumes.append(
                k8s.core.v1.VolumeArgs(
                    name=API_KEY_VOLUME,
                    secret=k8s.core.v1.SecretVolumeSourceArgs(
                        secret_name=self.api_key_secret.metadata.name,
                        default_mode=0o440,
                    ),
                )
            )
            mounts.append(
                k8s.core.v1.VolumeMountArgs(
                    name=API_KEY_VOLUME, mount_path=spec.api_key_dir, read_only=True
                )
            )

        resources = {"cpu": spec.cpu, "memory": spec.memory, "ephemeral-storage": EPHEMERAL_STORAGE}
        container = k8s.core.v1.ContainerArgs(
            name=spec.name,
            image=args["image"],
            image_pull_policy="IfNotPresent",
            ports=[
                k8s.core.v1.ContainerPortArgs(
                    name=spec.port_name, container_port=spec.port, protocol="TCP"
                )
            ],
            env=[k8s.core.v1.EnvVarArgs(name=key, value=value) for key, value in spec.env],
            # requests = limits: Guaranteed QoS, and stable diffs on Autopilot (CLOUD-PITFALLS 22).
            resources=k8s.core.v1.ResourceRequirementsArgs(requests=resources, limits=resources),
            startup_probe=_probe(spec.startup, spec.port),
            liveness_probe=_probe(spec.liveness, spec.port),
            readiness_probe=_probe(spec.readiness, spec.port),
            # Let the load balancer stop routing to the pod before the service gets SIGTERM.
            lifecycle=k8s.core.v1.LifecycleArgs(
                pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                    sleep=k8s.core.v1.SleepActionArgs(seconds=PRE_STOP_SLEEP_SECONDS)
                )
            ),
            security_context=k8s.core.v1.SecurityContextArgs(
                allow_privilege_escalation=False,
                privileged=False,
                read_only_root_filesystem=True,
                run_as_non_root=True,
                run_as_user=spec.run_as_user,
                run_as_group=spec.run_as_group,
                capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
                seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
            ),
            volume_mounts=mounts,
        )
        pod = k8s.core.v1.PodSpecArgs(
            service_account_name=service_account.metadata.name,
            automount_service_account_token=False,
            termination_grace_period_seconds=spec.termination_grace_seconds,
            security_context=k8s.core.v1.PodSecurityContextArgs(
                run_as_non_root=True,
                run_as_user=spec.run_as_user,
                run_as_group=spec.run_as_group,
                fs_group=spec.run_as_group,
                seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
            ),
            # Spread replicas over zones when possible (regional clusters), never block scheduling.
            topology_spread_constraints=[
                k8s.core.v1.TopologySpreadConstraintArgs(
                    max_skew=1,
                    topology_key="topology.kubernetes.io/zone",
                    when_unsatisfiable="ScheduleAnyway",
                    label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                )
            ],
            containers=[container],
            volumes=volumes,
        )
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            # The HPA takes ownership of spec.replicas (scale subresource); parking at zero must
            # take it back, which server-side apply refuses as a conflict unless forced.
            metadata=meta(app_name, annotations={"pulumi.com/patchForce": "true"}),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                # With an HPA the HPA owns the count: leave `replicas` out (Kubernetes' advice), so
                # an `up` never resets a scaled-out Deployment. Parked: exactly 0.
                replicas=None if spec.autoscaling else spec.desired_replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    # Never below the desired count: start a new pod, wait for ready, then stop one.
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                        max_surge=1, max_unavailable=0
                    ),
                ),
                min_ready_seconds=5,
                progress_deadline_seconds=600,
                revision_history_limit=5,
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=pod,
                ),
            ),
            opts=child_opts(self, opts, custom_timeouts=DEPLOY_TIMEOUTS),
        )

        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta(app_name, annotations=dict(args.get("service_annotations", {})) or None),
            spec=k8s.core.v1.ServiceSpecArgs(
                type=args["service_type"],
                selector=selector,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name=spec.port_name,
                        port=SERVICE_PORT,
                        target_port=spec.port_name,
                        protocol="TCP",
                    )
                ],
            ),
            opts=child_opts(self, opts, custom_timeouts=DEPLOY_TIMEOUTS),
        )
        self.load_balancer_address = self.service.status.apply(_ingress_address)

        self.autoscaler = None
        if spec.autoscaling:
            self.autoscaler = k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-hpa",
                metadata=meta(app_name),
                spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
                    scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                        api_version="apps/v1",
                        kind="Deployment",
                        name=self.deployment.metadata.name,
                    ),
                    min_replicas=spec.min_replicas,
                    max_replicas=spec.max_replicas,
                    metrics=[
                        k8s.autoscaling.v2.MetricSpecArgs(
                            type="Resource",
                            resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                                name="cpu",
                                target=k8s.autoscaling.v2.MetricTargetArgs(
                                    type="Utilization",
                                    average_utilization=spec.cpu_target_percent,
                                ),
                            ),
                        )
                    ],
                    behavior=k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs(
                        scale_down=k8s.autoscaling.v2.HPAScalingRulesArgs(
                            stabilization_window_seconds=300
                        ),
                    ),
                ),
                opts=child,
            )

        # maxUnavailable (not minAvailable): a node drain may always evict one pod, so a
        # single-replica or parked service never blocks cluster upgrades.
        self.disruption_budget = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=meta(app_name),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
            ),
            opts=child,
        )
        self.register_outputs(
            {
                "namespace": namespace,
                "deployment": self.deployment.metadata.name,
                "service": self.service.metadata.name,
                "load_balancer_address": self.load_balancer_address,
            }
        )


def _probe(probe: Probe, port: int) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=probe.path, port=port, scheme="HTTP"),
        initial_delay_seconds=probe.initial_delay_seconds,
        period_seconds=probe.period_seconds,
        timeout_seconds=probe.timeout_seconds,
        failure_threshold=probe.failure_threshold,
    )


def _ingress_address(status: Any) -> str:
    """The first ingress IP (or hostname) of a LoadBalancer Service; "" until it exists.

    None-safe at every level: during preview and while GCP provisions the load balancer the
    status has no ingress yet (CLOUD-PITFALLS 20).
    """
    balancer = _field(status, "load_balancer", "loadBalancer")
    ingress = _field(balancer, "ingress", "ingress") or []
    if not ingress:
        return ""
    first = ingress[0]
    return str(_field(first, "ip", "ip") or _field(first, "hostname", "hostname") or "")


def _field(obj: Any, attribute: str, key: str) -> Any:
    """Typed output objects (attribute, snake_case) or plain dicts (key, camelCase)."""
    if obj is None:
        return None
    if type(obj) is dict:
        return obj.get(key)
    return getattr(obj, attribute, None)
