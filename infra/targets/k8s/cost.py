"""What the k8s stack's pods cost: the cluster is someone else's, and so is its bill.

The stack declares only Kubernetes objects on an existing cluster, so nothing it declares has a
list price of its own. What it uses is a share of that cluster's nodes: each pod's CPU and memory
requests priced at a stated node price (Compute Engine E2 on-demand, per vCPU-hour and GB-hour,
infra/offline/prices.py), times the pods the plan runs at the planned load. The cluster's fee,
spare node capacity and its load balancer or ingress are the cluster owner's and not included.
"""

from __future__ import annotations

from infra.core.capacity import CapacityPlan
from infra.core.cost import GIB, Bill, Ledger, Line, bill
from infra.offline import prices
from infra.settings import Settings
from infra.targets.k8s.config import K8sSettings


def k8s_bill(settings: Settings, k8s: K8sSettings, plan: CapacityPlan, ledger: Ledger) -> Bill:
    """The pods' share of the cluster at the planned load, at E2 node prices."""
    del k8s, ledger  # no priced resource of its own
    pods = plan.planned_replicas
    vcpu = settings.container.cpu_millicores / 1000
    gb = settings.container.memory_bytes / GIB
    per_pod = prices.E2_VCPU.monthly(vcpu) + prices.E2_GB.monthly(gb)
    return bill(
        [
            Line(
                "pods (share of nodes)",
                pods * per_pod,
                f"{pods} x ({vcpu:g} vCPU + {gb:g} GB) at E2 prices",
            )
        ],
        notes=[
            "pods priced at Compute Engine E2 on-demand node prices (us-central1); the "
            "cluster's fee, idle node capacity and its load balancer are the cluster owner's"
        ],
    )
