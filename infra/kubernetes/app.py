"""The service on Kubernetes: the shared container description turned into Kubernetes objects.

Namespace (Pod Security `restricted`), ServiceAccount (no token), optional API-key Secret,
Deployment (zero-downtime rolling update, three probes, requests = limits, hardened pod), Service,
HorizontalPodAutoscaler (autoscaling/v2, CPU) and PodDisruptionBudget. Every object goes through
the Kubernetes provider given in `opts` (`providers=[...]`), which children inherit.

Nothing here is specific to a cloud: it is used as-is by the `k8s` target (any cluster) and by
the `gke` target, which passes its own values in (Autopilot's ephemeral-storage request, the NEG
and BackendConfig annotations of a GKE Ingress). Cloud-specific values belong in the target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from infra.core.components import child_opts
from infra.core.container import PRE_STOP_SLEEP_SECONDS, ContainerSpec, Probe
from infra.kubernetes.monitoring import (
    POD_MONITOR_OFF,
    POD_MONITORS,
    pod_monitor_manifest,
    scrape_annotations,
)

API_KEY_VOLUME = "api-key"
TMP_VOLUME = "tmp"
SERVICE_PORT = 80
DEPLOY_TIMEOUTS = pulumi.CustomTimeouts(create="15m", update="15m", delete="10m")
SERVICE_TYPES = ("LoadBalancer", "NodePort", "ClusterIP")
PULL_POLICIES = ("IfNotPresent", "Always")


class KubernetesAppArgs(TypedDict):
    """Inputs of `KubernetesApp`."""

    namespace: str
    app_name: str
    image: pulumi.Input[str]
    container: ContainerSpec
    labels: Mapping[str, str]
    selector: Mapping[str, str]
    service_type: str
    """`LoadBalancer` (external address, the URL), `NodePort` (every node's IP on a port of
    30000-32767) or `ClusterIP` (in-cluster only, or behind an Ingress)."""
    node_port: NotRequired[int | None]
    """With `NodePort`: a fixed node port; None lets Kubernetes pick a free one."""
    api_key: NotRequired[pulumi.Input[str] | None]
    """The API key itself: stored in a Secret this component creates (auto-named)."""
    api_key_secret_name: NotRequired[str | None]
    """An existing Secret (key `api-key`) to mount instead; never created or read by Pulumi."""
    service_annotations: NotRequired[Mapping[str, pulumi.Input[str]]]
    extra_resources: NotRequired[Mapping[str, str]]
    """More resource quantities beside cpu/memory, requested = limited (gke: ephemeral-storage)."""
    image_pull_policy: NotRequired[str]
    """`IfNotPresent` (default; right for digest references) or `Always` (mutable tags)."""
    image_pull_secrets: NotRequired[Sequence[str]]
    """Names of existing `kubernetes.io/dockerconfigjson` Secrets for a private registry."""
    create_namespace: NotRequired[bool]
    """False: the namespace exists already (made by the cluster's owners); only use it."""
    patch_force: NotRequired[bool]
    """Annotate the Deployment `pulumi.com/patchForce` (default True); off for plain YAML."""
    service_account_annotations: NotRequired[Mapping[str, pulumi.Input[str]]]
    """On the pods' ServiceAccount (gke: the Workload Identity binding to a Google account)."""
    pod_monitor: NotRequired[str]
    """`off` (default: the pods' prometheus.io annotations only), `prometheus-operator` (a
    PodMonitor) or `gke-managed` (a PodMonitoring); see infra/kubernetes/monitoring.py."""


class KubernetesApp(pulumi.ComponentResource):
    """Namespace + Deployment + Service + HPA + PDB (+ Secret) for one container description."""

    namespace: k8s.core.v1.Namespace | None
    namespace_name: pulumi.Output[str]
    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service
    autoscaler: k8s.autoscaling.v2.HorizontalPodAutoscaler | None
    disruption_budget: k8s.policy.v1.PodDisruptionBudget
    pod_monitor: k8s.apiextensions.CustomResource | None
    api_key_secret: k8s.core.v1.Secret | None
    load_balancer_address: pulumi.Output[str]
    node_port: pulumi.Output[int | None]
    service_account: k8s.core.v1.ServiceAccount
    objects: list[pulumi.CustomResource]
    """Every Kubernetes object declared, in declaration order (the k8s target renders them)."""

    def __init__(
        self, name: str, args: KubernetesAppArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:kubernetes:KubernetesApp", name, None, opts)
        _check_args(args)
        spec = args["container"]
        self.namespace = _namespace(name, args, child_opts(self, opts))
        scope = _Scope(
            name=name,
            app_name=args["app_name"],
            namespace=args["namespace"] if self.namespace is None else self.namespace.metadata.name,
            labels={**args["labels"], **args["selector"]},
            selector=dict(args["selector"]),
            parent=self,
            opts=opts,
        )
        self.service_account = _service_account(scope, args)
        self.api_key_secret = _api_key_secret(scope, args, spec)
        secret_name: pulumi.Input[str] | None = args.get("api_key_secret_name")
        if self.api_key_secret is not None:
            secret_name = self.api_key_secret.metadata.name
        volumes, mounts = _volumes(spec, secret_name)
        pod = _pod_spec(scope, args, self.service_account, _container(args, mounts), volumes)
        self.deployment = _deployment(scope, args, pod)
        self.service = _service(scope, args)
        self.namespace_name = pulumi.Output.from_input(scope.namespace)
        self.load_balancer_address = self.service.status.apply(_ingress_address)
        self.node_port = self.service.spec.apply(_node_port)
        self.autoscaler = _autoscaler(scope, spec, self.deployment)
        self.disruption_budget = _disruption_budget(scope)
        self.pod_monitor = _pod_monitor(scope, args)

        self.objects = [
            o
            for o in (
                self.namespace,
                self.service_account,
                self.api_key_secret,
                self.deployment,
                self.service,
                self.autoscaler,
                self.disruption_budget,
                self.pod_monitor,
            )
            if o is not None
        ]
        self.register_outputs(
            {
                "namespace": self.namespace_name,
                "deployment": self.deployment.metadata.name,
                "service": self.service.metadata.name,
                "load_balancer_address": self.load_balancer_address,
            }
        )


@dataclass(frozen=True)
class _Scope:
    """Where and how every object of one app is declared: its logical-name prefix, the
    namespace, labels and selector, and the options of a child of the component."""

    name: str
    app_name: str
    namespace: pulumi.Input[str]
    labels: dict[str, str]
    selector: dict[str, str]
    parent: pulumi.Resource
    opts: pulumi.ResourceOptions | None

    def meta(self, object_name: str | None = None, **extra: Any) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(
            name=object_name, namespace=self.namespace, labels=self.labels, **extra
        )

    def child(self, **extra: Any) -> pulumi.ResourceOptions:
        return child_opts(self.parent, self.opts, **extra)


def _namespace(
    name: str, args: KubernetesAppArgs, child: pulumi.ResourceOptions
) -> k8s.core.v1.Namespace | None:
    """The namespace, unless the cluster's owners made it (`create_namespace` False)."""
    if not args.get("create_namespace", True):
        return None
    return k8s.core.v1.Namespace(
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


def _service_account(scope: _Scope, args: KubernetesAppArgs) -> k8s.core.v1.ServiceAccount:
    """The pods' own identity, without a mounted API token."""
    return k8s.core.v1.ServiceAccount(
        f"{scope.name}-sa",
        metadata=scope.meta(
            scope.app_name,
            annotations=dict(args.get("service_account_annotations", {})) or None,
        ),
        automount_service_account_token=False,
        opts=scope.child(),
    )


def _api_key_secret(
    scope: _Scope, args: KubernetesAppArgs, spec: ContainerSpec
) -> k8s.core.v1.Secret | None:
    """A Secret holding the API key, when one is given and the container reads one."""
    api_key = args.get("api_key")
    if api_key is None or spec.api_key_dir is None:
        return None
    # Auto-named: a new key gets a new Secret name, which rolls the Deployment.
    return k8s.core.v1.Secret(
        f"{scope.name}-api-key",
        metadata=scope.meta(),
        type="Opaque",
        string_data={spec.api_key_file_name: api_key},
        opts=scope.child(),
    )


def _volumes(
    spec: ContainerSpec, secret_name: pulumi.Input[str] | None
) -> tuple[list[k8s.core.v1.VolumeArgs], list[k8s.core.v1.VolumeMountArgs]]:
    """The writable /tmp, and the API-key Secret read-only where the service looks for it."""
    volumes = [
        k8s.core.v1.VolumeArgs(
            name=TMP_VOLUME,
            empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit=spec.tmp_size_limit),
        )
    ]
    mounts = [k8s.core.v1.VolumeMountArgs(name=TMP_VOLUME, mount_path=spec.tmp_dir)]
    if secret_name is not None and spec.api_key_dir is not None:
        volumes.append(
            k8s.core.v1.VolumeArgs(
                name=API_KEY_VOLUME,
                secret=k8s.core.v1.SecretVolumeSourceArgs(
                    secret_name=secret_name,
                    default_mode=0o440,
                    # Only the key the service reads: a Secret without it fails to mount
                    # (the pod says why) instead of starting a service with no key.
                    items=[
                        k8s.core.v1.KeyToPathArgs(
                            key=spec.api_key_file_name, path=spec.api_key_file_name
                        )
                    ],
                ),
            )
        )
        mounts.append(
            k8s.core.v1.VolumeMountArgs(
                name=API_KEY_VOLUME, mount_path=spec.api_key_dir, read_only=True
            )
        )
    return volumes, mounts


def _container(
    args: KubernetesAppArgs, mounts: Sequence[k8s.core.v1.VolumeMountArgs]
) -> k8s.core.v1.ContainerArgs:
    """The shared container description as a Kubernetes container."""
    spec = args["container"]
    resources = {"cpu": spec.cpu, "memory": spec.memory, **args.get("extra_resources", {})}
    return k8s.core.v1.ContainerArgs(
        name=spec.name,
        image=args["image"],
        image_pull_policy=args.get("image_pull_policy", "IfNotPresent"),
        ports=[
            k8s.core.v1.ContainerPortArgs(
                name=spec.port_name, container_port=spec.port, protocol="TCP"
            )
        ],
        env=[k8s.core.v1.EnvVarArgs(name=key, value=value) for key, value in spec.env],
        # requests = limits: Guaranteed QoS (the gke target relies on it for Autopilot too).
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
        security_context=container_security(spec.run_as_user, spec.run_as_group),
        volume_mounts=list(mounts),
    )


def _pod_spec(
    scope: _Scope,
    args: KubernetesAppArgs,
    service_account: k8s.core.v1.ServiceAccount,
    container: k8s.core.v1.ContainerArgs,
    volumes: Sequence[k8s.core.v1.VolumeArgs],
) -> k8s.core.v1.PodSpecArgs:
    """The hardened pod around the container, spread over zones."""
    spec = args["container"]
    return k8s.core.v1.PodSpecArgs(
        service_account_name=service_account.metadata.name,
        automount_service_account_token=False,
        image_pull_secrets=[
            k8s.core.v1.LocalObjectReferenceArgs(name=secret)
            for secret in args.get("image_pull_secrets", ())
        ]
        or None,
        termination_grace_period_seconds=spec.termination_grace_seconds,
        security_context=pod_security(spec.run_as_user, spec.run_as_group),
        # Spread replicas over zones when possible (regional clusters), never block scheduling.
        topology_spread_constraints=[
            k8s.core.v1.TopologySpreadConstraintArgs(
                max_skew=1,
                topology_key="topology.kubernetes.io/zone",
                when_unsatisfiable="ScheduleAnyway",
                label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=scope.selector),
            )
        ],
        containers=[container],
        volumes=list(volumes),
    )


def _deployment(
    scope: _Scope, args: KubernetesAppArgs, pod: k8s.core.v1.PodSpecArgs
) -> k8s.apps.v1.Deployment:
    """The Deployment: zero-downtime rolling updates; replicas left to the HPA when it scales."""
    spec = args["container"]
    return k8s.apps.v1.Deployment(
        f"{scope.name}-deployment",
        # The HPA takes ownership of spec.replicas (scale subresource); parking at zero must
        # take it back, which server-side apply refuses as a conflict unless forced.
        metadata=scope.meta(
            scope.app_name,
            annotations={"pulumi.com/patchForce": "true"}
            if args.get("patch_force", True)
            else None,
        ),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            # With an HPA the HPA owns the count: leave `replicas` out (Kubernetes' advice), so
            # an `up` never resets a scaled-out Deployment. Parked: exactly 0.
            replicas=None if spec.autoscaling else spec.desired_replicas,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=scope.selector),
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
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    labels=scope.labels, annotations=scrape_annotations(spec.port)
                ),
                spec=pod,
            ),
        ),
        opts=scope.child(custom_timeouts=DEPLOY_TIMEOUTS),
    )


def _service(scope: _Scope, args: KubernetesAppArgs) -> k8s.core.v1.Service:
    """The Service on port 80 in front of the pods' named port."""
    spec = args["container"]
    return k8s.core.v1.Service(
        f"{scope.name}-service",
        metadata=scope.meta(
            scope.app_name, annotations=dict(args.get("service_annotations", {})) or None
        ),
        spec=k8s.core.v1.ServiceSpecArgs(
            type=args["service_type"],
            selector=scope.selector,
            ports=[
                k8s.core.v1.ServicePortArgs(
                    name=spec.port_name,
                    port=SERVICE_PORT,
                    target_port=spec.port_name,
                    protocol="TCP",
                    node_port=args.get("node_port"),
                )
            ],
        ),
        opts=scope.child(custom_timeouts=DEPLOY_TIMEOUTS),
    )


def _autoscaler(
    scope: _Scope, spec: ContainerSpec, deployment: k8s.apps.v1.Deployment
) -> k8s.autoscaling.v2.HorizontalPodAutoscaler | None:
    """A CPU-based HorizontalPodAutoscaler, when the container description autoscales."""
    if not spec.autoscaling:
        return None
    return k8s.autoscaling.v2.HorizontalPodAutoscaler(
        f"{scope.name}-hpa",
        metadata=scope.meta(scope.app_name),
        spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
            scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                api_version="apps/v1",
                kind="Deployment",
                name=deployment.metadata.name,
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
                scale_down=k8s.autoscaling.v2.HPAScalingRulesArgs(stabilization_window_seconds=300),
            ),
        ),
        opts=scope.child(),
    )


def _disruption_budget(scope: _Scope) -> k8s.policy.v1.PodDisruptionBudget:
    # maxUnavailable (not minAvailable): a node drain may always evict one pod, so a
    # single-replica or parked service never blocks cluster upgrades.
    return k8s.policy.v1.PodDisruptionBudget(
        f"{scope.name}-pdb",
        metadata=scope.meta(scope.app_name),
        spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
            max_unavailable=1,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=scope.selector),
        ),
        opts=scope.child(),
    )


def _pod_monitor(scope: _Scope, args: KubernetesAppArgs) -> k8s.apiextensions.CustomResource | None:
    """A PodMonitor or PodMonitoring for the metrics port, when `pod_monitor` asks for one."""
    monitor_kind = args.get("pod_monitor", POD_MONITOR_OFF)
    if monitor_kind == POD_MONITOR_OFF:
        return None
    monitor = pod_monitor_manifest(monitor_kind, args["container"].port_name, scope.selector)
    return k8s.apiextensions.CustomResource(
        f"{scope.name}-pod-monitor",
        api_version=monitor["api_version"],
        kind=monitor["kind"],
        metadata=scope.meta(scope.app_name),
        spec=monitor["spec"],
        opts=scope.child(),
    )


def _check_args(args: KubernetesAppArgs) -> None:
    """Refuse contradictory inputs with the input's name and what is allowed."""
    if args["service_type"] not in SERVICE_TYPES:
        raise ValueError(f"service_type must be one of {', '.join(SERVICE_TYPES)}")
    if args.get("node_port") is not None and args["service_type"] != "NodePort":
        raise ValueError("node_port can only be given with service_type NodePort")
    if args.get("api_key") is not None and args.get("api_key_secret_name") is not None:
        raise ValueError("Only one of `api_key` or `api_key_secret_name` can be provided")
    if args.get("pod_monitor", POD_MONITOR_OFF) not in POD_MONITORS:
        raise ValueError(f"pod_monitor must be one of {', '.join(POD_MONITORS)}")
    if args.get("image_pull_policy", "IfNotPresent") not in PULL_POLICIES:
        raise ValueError(f"image_pull_policy must be one of {', '.join(PULL_POLICIES)}")


def container_security(user: int, group: int) -> k8s.core.v1.SecurityContextArgs:
    """A container that meets the `restricted` Pod Security Standard, with a read-only root."""
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False,
        privileged=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        run_as_user=user,
        run_as_group=group,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def pod_security(user: int, group: int) -> k8s.core.v1.PodSecurityContextArgs:
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=user,
        run_as_group=group,
        fs_group=group,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
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

    None-safe at every level: during preview, while the cloud provisions the load balancer, and
    for NodePort/ClusterIP Services the status has no ingress (reading `ingress[0]` would
    crash the export).
    """
    balancer = _field(status, "load_balancer", "loadBalancer")
    ingress = _field(balancer, "ingress", "ingress") or []
    if not ingress:
        return ""
    first = ingress[0]
    return str(_field(first, "ip", "ip") or _field(first, "hostname", "hostname") or "")


def _node_port(spec: Any) -> int | None:
    """The node port Kubernetes assigned (or was given) to the Service's one port, if any."""
    ports = _field(spec, "ports", "ports") or []
    if not ports:
        return None
    value = _field(ports[0], "node_port", "nodePort")
    return None if value is None else int(value)


def _field(obj: Any, attribute: str, key: str) -> Any:
    """Typed output objects (attribute, snake_case) or plain dicts (key, camelCase)."""
    if obj is None:
        return None
    if type(obj) is dict:
        return obj.get(key)
    return getattr(obj, attribute, None)
