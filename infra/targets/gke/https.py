"""Optional HTTPS for the gke target: GKE Ingress + Google-managed certificate for a domain.

A global static IP (point the domain's A record at the `ingress_ip` output), a ManagedCertificate,
a FrontendConfig that redirects HTTP to HTTPS, a BackendConfig whose health check is the service's
readiness path, and the Ingress in front of the (ClusterIP, NEG-backed) Service.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TypedDict

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from infra.core.components import child_opts
from infra.core.labels import label_value
from infra.kubernetes.app import SERVICE_PORT

INGRESS_TIMEOUTS = pulumi.CustomTimeouts(create="30m", update="30m", delete="20m")


def service_annotations(backend_config_name: str) -> dict[str, str]:
    """Annotations the Service needs behind a GKE Ingress: NEG backends + our health check."""
    return {
        "cloud.google.com/neg": json.dumps({"ingress": True}),
        "cloud.google.com/backend-config": json.dumps({"default": backend_config_name}),
    }


class HttpsIngressArgs(TypedDict):
    project: str
    app_name: str
    domain: str
    namespace: pulumi.Input[str]
    service_name: pulumi.Input[str]
    backend_config_name: str
    health_check_path: str
    container_port: int
    labels: Mapping[str, str]


class HttpsIngress(pulumi.ComponentResource):
    """Google-managed TLS for `domain` in front of the service; `address` is the static IP."""

    address: pulumi.Output[str]

    def __init__(
        self, name: str, args: HttpsIngressArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:gke:HttpsIngress", name, None, opts)
        labels = dict(args["labels"])
        namespace = args["namespace"]
        child = child_opts(self, opts)

        ip = gcp.compute.GlobalAddress(
            f"{name}-ip",
            project=args["project"],
            description=f"modelship ingress for {args['domain']}",
            labels=labels,
            opts=child,
        )
        certificate_name = label_value(f"{args['app_name']}-certificate")
        frontend_name = label_value(f"{args['app_name']}-frontend")
        certificate = k8s.apiextensions.CustomResource(
            f"{name}-certificate",
            api_version="networking.gke.io/v1",
            kind="ManagedCertificate",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=certificate_name, namespace=namespace, labels=labels
            ),
            spec={"domains": [args["domain"]]},
            # Named (the Ingress refers to it by name): a new domain deletes the old one first.
            opts=child_opts(self, opts, delete_before_replace=True),
        )
        frontend = k8s.apiextensions.CustomResource(
            f"{name}-frontend",
            api_version="networking.gke.io/v1beta1",
            kind="FrontendConfig",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=frontend_name, namespace=namespace, labels=labels
            ),
            spec={
                "redirectToHttps": {
                    "enabled": True,
                    "responseCodeName": "MOVED_PERMANENTLY_DEFAULT",
                }
            },
            opts=child,
        )
        backend = k8s.apiextensions.CustomResource(
            f"{name}-backend",
            api_version="cloud.google.com/v1",
            kind="BackendConfig",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args["backend_config_name"], namespace=namespace, labels=labels
            ),
            spec={
                "healthCheck": {
                    "type": "HTTP",
                    "requestPath": args["health_check_path"],
                    "port": args["container_port"],
                    "checkIntervalSec": 10,
                    "timeoutSec": 5,
                }
            },
            opts=child,
        )
        k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                namespace=namespace,
                labels=labels,
                annotations={
                    "kubernetes.io/ingress.class": "gce",
                    "kubernetes.io/ingress.global-static-ip-name": ip.name,
                    "networking.gke.io/managed-certificates": certificate_name,
                    "networking.gke.io/v1beta1.FrontendConfig": frontend_name,
                },
            ),
            spec=k8s.networking.v1.IngressSpecArgs(
                default_backend=k8s.networking.v1.IngressBackendArgs(
                    service=k8s.networking.v1.IngressServiceBackendArgs(
                        name=args["service_name"],
                        port=k8s.networking.v1.ServiceBackendPortArgs(number=SERVICE_PORT),
                    )
                )
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                custom_timeouts=INGRESS_TIMEOUTS,
                depends_on=[certificate, frontend, backend],
            ),
        )
        self.address = ip.address
        self.register_outputs({"address": self.address, "domain": args["domain"]})


def backend_config_name(app_name: str) -> str:
    return label_value(f"{app_name}-backend")
