"""The service keeps an idle connection open longer than every proxy the stacks put in front of
it: a proxy that reuses a connection the service has just closed answers its client 502, and the
service's own 5xx counts never see it (docs/service.md, "Keep-alive behind a load balancer")."""

from __future__ import annotations

from typing import Any

import pytest

from infra.core.container import service_env
from infra.core.values import plain
from modelship.contracts.settings import Settings as ServiceSettings
from tests.infra.harness import StackRun

from .fargate import containers, fargate_run
from .k8s import DEPLOYMENT, INGRESS, manifest
from .k8s_stack import run_variant as run_k8s_variant

KEEP_ALIVE_ENV = service_env("keep_alive_seconds")
ALB = "aws:lb/loadBalancer:LoadBalancer"
# Idle timeouts the plans cannot declare, from the proxies' own documentation:
# Google's external Application Load Balancer keeps a connection to a backend 600 s (fixed; its
# docs advise a backend keep-alive above it), and ingress-nginx keeps an idle upstream
# connection 60 s (`upstream-keepalive-timeout`, a controller-wide setting, not per Ingress).
GOOGLE_LB_BACKEND_SECONDS = 600
INGRESS_NGINX_UPSTREAM_SECONDS = 60
ALB_DEFAULT_IDLE_SECONDS = 60  # aws.lb.LoadBalancer's idle_timeout when it is not set


def keep_alive(env: dict[str, Any]) -> int:
    """The service's keep-alive in a container with this environment."""
    default: int = ServiceSettings.model_fields["keep_alive_seconds"].default
    return int(env.get(KEEP_ALIVE_ENV, default))


def kubernetes_keep_alive(run: StackRun) -> int:
    (container,) = manifest(run, DEPLOYMENT)["spec"]["template"]["spec"]["containers"]
    return keep_alive({e["name"]: e.get("value") for e in container["env"]})


def test_fargate_keep_alive_outlives_the_alb() -> None:
    run = fargate_run()
    env = {e["name"]: e["value"] for e in containers(run)["api"]["environment"]}
    (alb,) = run.of_type(ALB)
    idle = plain(alb.inputs).get("idleTimeout", ALB_DEFAULT_IDLE_SECONDS)
    assert keep_alive(env) > idle


def test_gke_keep_alive_outlives_googles_load_balancer(gke_https: StackRun) -> None:
    # The HTTPS variant puts Google's external Application Load Balancer (a GKE Ingress) in front.
    assert manifest(gke_https, INGRESS)
    assert kubernetes_keep_alive(gke_https) > GOOGLE_LB_BACKEND_SECONDS


@pytest.mark.parametrize("variant", ["ingress", "ingress-minimal"])
def test_k8s_keep_alive_outlives_ingress_nginx(variant: str) -> None:
    run = run_k8s_variant(variant)
    assert manifest(run, INGRESS)
    assert kubernetes_keep_alive(run) > INGRESS_NGINX_UPSTREAM_SECONDS
