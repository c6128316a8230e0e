"""How Prometheus finds the service's pods, on every Kubernetes target (gke and k8s).

The pod template always carries the `prometheus.io/*` annotations that annotation-based scrape
configurations (the Prometheus Helm chart's `kubernetes-pods` job and its many copies) follow.
`modelship:podMonitor` adds the object an operator-managed Prometheus selects instead:
`prometheus-operator` declares a monitoring.coreos.com/v1 PodMonitor (kube-prometheus-stack),
`gke-managed` a monitoring.googleapis.com/v1 PodMonitoring (Google Cloud Managed Service for
Prometheus, on by default on Autopilot clusters, which ignores the annotations). Either needs its
CRDs in the cluster: `pulumi up` fails with "no matches for kind" without them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

KEY_POD_MONITOR = "modelship:podMonitor"
POD_MONITOR_OFF = "off"
# Config value -> (apiVersion, kind, the spec's list of endpoints).
POD_MONITOR_KINDS: dict[str, tuple[str, str, str]] = {
    "prometheus-operator": ("monitoring.coreos.com/v1", "PodMonitor", "podMetricsEndpoints"),
    "gke-managed": ("monitoring.googleapis.com/v1", "PodMonitoring", "endpoints"),
}
POD_MONITORS = (POD_MONITOR_OFF, *POD_MONITOR_KINDS)
METRICS_PATH = "/metrics"
SCRAPE_INTERVAL = "30s"


def scrape_annotations(port: int) -> dict[str, str]:
    """The pod annotations annotation-based Prometheus scrape configurations look for."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": METRICS_PATH,
    }


def pod_monitor_manifest(kind: str, port_name: str, selector: Mapping[str, str]) -> dict[str, Any]:
    """apiVersion, kind and spec of the pod monitor for config value `kind` (not "off")."""
    api_version, object_kind, endpoints = POD_MONITOR_KINDS[kind]
    spec: dict[str, Any] = {
        "selector": {"matchLabels": dict(selector)},
        endpoints: [{"port": port_name, "path": METRICS_PATH, "interval": SCRAPE_INTERVAL}],
    }
    if kind == "prometheus-operator":
        spec["jobLabel"] = "app.kubernetes.io/name"  # job="modelship", as the alerts expect
    return {"api_version": api_version, "kind": object_kind, "spec": spec}
