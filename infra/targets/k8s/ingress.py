"""An Ingress for the k8s target: any controller (ingress-nginx, Traefik, HAProxy, ...) by class.

One host, every path to the service's ClusterIP Service; TLS from an existing Secret when named
(made by cert-manager through `modelship:ingressAnnotations`, or by hand). Nothing cloud-specific:
the gke target has its own Ingress with a Google-managed certificate (`infra/targets/gke/https.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from infra.core.components import child_opts
from infra.kubernetes.app import SERVICE_PORT


class HttpIngressArgs(TypedDict):
    """Inputs of `HttpIngress`."""

    name: str
    namespace: pulumi.Input[str]
    service_name: pulumi.Input[str]
    host: str
    labels: Mapping[str, str]
    class_name: NotRequired[str | None]
    """An IngressClass; None uses the cluster's default class."""
    tls_secret: NotRequired[str | None]
    annotations: NotRequired[Mapping[str, str]]


class HttpIngress(pulumi.ComponentResource):
    """`host` → the service (port 80), HTTPS when a TLS Secret is named; `url` is the address."""

    ingress: k8s.networking.v1.Ingress
    url: pulumi.Output[str]

    def __init__(
        self, name: str, args: HttpIngressArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:k8s:HttpIngress", name, None, opts)
        host = args["host"]
        tls_secret = args.get("tls_secret")
        self.ingress = k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args["name"],
                namespace=args["namespace"],
                labels=dict(args["labels"]),
                annotations=dict(args.get("annotations", {})) or None,
            ),
            spec=k8s.networking.v1.IngressSpecArgs(
                ingress_class_name=args.get("class_name"),
                rules=[
                    k8s.networking.v1.IngressRuleArgs(
                        host=host,
                        http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                            paths=[
                                k8s.networking.v1.HTTPIngressPathArgs(
                                    path="/",
                                    path_type="Prefix",
                                    backend=k8s.networking.v1.IngressBackendArgs(
                                        service=k8s.networking.v1.IngressServiceBackendArgs(
                                            name=args["service_name"],
                                            port=k8s.networking.v1.ServiceBackendPortArgs(
                                                number=SERVICE_PORT
                                            ),
                                        )
                                    ),
                                )
                            ]
                        ),
                    )
                ],
                tls=[k8s.networking.v1.IngressTLSArgs(hosts=[host], secret_name=tls_secret)]
                if tls_secret is not None
                else None,
            ),
            opts=child_opts(self, opts),
        )
        scheme = "https" if tls_secret is not None else "http"
        self.url = pulumi.Output.from_input(f"{scheme}://{host}")
        self.register_outputs({"url": self.url})
