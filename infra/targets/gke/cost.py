"""What the gke stack costs a month at its planned load (see `infra.core.cost`).

Priced: the cluster management fee per declared cluster (the free-tier credit, one cluster per
billing account, is a note: it may be spent on another cluster), the pods the plan runs at that
load (Autopilot: their CPU, memory and ephemeral storage requests; Standard: the nodes they need
at the e2-standard-2 price, the default machine type), the load balancer's forwarding rule, its
address and the bytes it processes, Cloud Logging ingestion beyond the free allotment, and the
registry's and bucket's storage. Traffic leaving Google Cloud is not priced.
"""

from __future__ import annotations

import math

from infra.core.capacity import CapacityPlan
from infra.core.cost import (
    ACCESS_LOG_BYTES,
    GIB,
    WIRE_BYTES,
    Bill,
    Ledger,
    Line,
    access_log_note,
    bill,
    logged_requests,
)
from infra.core.cost import requests_per_month as monthly_requests
from infra.offline import prices
from infra.settings import Settings
from infra.targets.gke.config import GkeSettings
from infra.targets.gke.deploy import EPHEMERAL_STORAGE

# Images (about ten of ~100 MiB, layers shared) and a few model versions and training CSVs.
STORED_GB = 1.0
PRICED_MACHINE_TYPE = "e2-standard-2"
NODE_VCPU = 2  # e2-standard-2; a node gives pods less (system reservations): an underestimate


def gke_bill(settings: Settings, gke: GkeSettings, plan: CapacityPlan, ledger: Ledger) -> Bill:
    """The gke stack's monthly bill at the planned load."""
    pods = plan.planned_replicas
    vcpu = settings.container.cpu_millicores / 1000
    gib = settings.container.memory_bytes / GIB
    ephemeral = int(EPHEMERAL_STORAGE.removesuffix("Gi"))
    requests = monthly_requests(plan)
    clusters = ledger.count("gcp:container/cluster:Cluster")
    notes = [
        "on-demand us-central1 list prices (infra/offline/prices.py); traffic leaving Google "
        "Cloud is not included",
        f"the GKE free tier credits ${prices.GKE_FREE_TIER_CREDIT.usd:.2f} a month per billing "
        "account: one Autopilot or zonal cluster's fee, if no other cluster uses it",
    ]
    if gke.autopilot:
        per_pod = (
            prices.AUTOPILOT_VCPU.monthly(vcpu)
            + prices.AUTOPILOT_GIB.monthly(gib)
            + prices.AUTOPILOT_EPHEMERAL_GIB.monthly(ephemeral)
        )
        compute = Line(
            "pods",
            pods * per_pod,
            f"{pods} x ({vcpu:g} vCPU + {gib:g} GiB + {ephemeral} GiB ephemeral)",
        )
    elif gke.machine_type == PRICED_MACHINE_TYPE:
        nodes = min(max(gke.node_min_count, math.ceil(pods * vcpu / NODE_VCPU)), gke.node_max_count)
        compute = Line(
            "nodes", prices.E2_STANDARD_2.monthly(nodes), f"{nodes} x {PRICED_MACHINE_TYPE}"
        )
    else:
        compute = Line("nodes", 0.0, "")
        notes.append(f"nodes of {gke.machine_type} are not in the price table: not included")
    # One forwarding rule: the LoadBalancer Service's, or the HTTPS Ingress's on its address.
    addresses = ledger.count("gcp:compute/globalAddress:GlobalAddress")
    processed_gib = requests * WIRE_BYTES / GIB
    logged_gib = logged_requests(settings, plan) * ACCESS_LOG_BYTES / GIB
    logs = max(logged_gib - prices.CLOUD_LOGGING_FREE_GIB, 0.0) * prices.CLOUD_LOGGING_GIB.usd
    notes += access_log_note(settings, logs)
    return bill(
        [
            Line("cluster fee", prices.GKE_CLUSTER.monthly(clusters), f"{clusters} cluster(s)"),
            compute,
            Line(
                "load balancer",
                prices.FORWARDING_RULE.monthly()
                + prices.STATIC_IP.monthly(max(addresses, 1))
                + processed_gib * prices.LB_DATA_GIB.usd,
                f"1 forwarding rule + 1 address + {processed_gib:.1f} GiB processed",
            ),
            Line(
                "logs",
                logs,
                f"{logged_gib:.1f} GiB ingested ({prices.CLOUD_LOGGING_FREE_GIB:g} GiB free)",
            ),
            Line(
                "storage",
                prices.ARTIFACT_REGISTRY_STORAGE.monthly(STORED_GB - 0.5)
                + prices.GCS_STORAGE.monthly(STORED_GB),
                f"registry and bucket, ~{STORED_GB:g} GB each",
            ),
        ],
        notes,
    )
