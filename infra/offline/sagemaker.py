"""The same planned load on SageMaker, at list prices: the comparison docs/cost.md prints.

No stack deploys SageMaker; this prices what it would take, from the same measured point the
stacks plan with (`modelship.contracts.capacity.CapacityPoint`):
- real-time inference: always-on ml.c5.large instances (2 vCPU), at least 2 (the same
  availability rule as the stacks), each planned at the measured rate scaled from the measured
  CPU quota to the instance's 2 vCPUs, with the same headroom; plus the data processed;
- serverless inference: the requests' inference duration at the smallest memory size that holds
  the replica (1 GB and up, by GB), taking the measured CPU time per request as the duration (a
  lower bound: the wait for a free CPU is billed too); plus the data processed. Cold starts and
  the per-endpoint concurrency limit are not priced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from infra.core.capacity import MIN_AVAILABLE_REPLICAS
from infra.core.cost import GB, WIRE_BYTES
from infra.offline import prices
from modelship.contracts.capacity import CapacityPoint

MIB_PER_GB = 1024  # serverless memory sizes are 1024, 2048, ... MB


@dataclass(frozen=True)
class Quote:
    """What one SageMaker option costs a month at the load, and with how much."""

    option: str
    size: str
    monthly: float
    per_million: float


def _data(requests: float) -> float:
    return requests * WIRE_BYTES / GB * prices.SAGEMAKER_DATA_GB.usd


def realtime(
    target_rps: float, point: CapacityPoint, cpu_millicores: int, headroom: float
) -> Quote:
    """Real-time inference on ml.c5.large instances."""
    per_instance = point.max_rps * prices.SAGEMAKER_C5_LARGE_VCPU * 1000 / cpu_millicores
    instances = max(MIN_AVAILABLE_REPLICAS, math.ceil(target_rps / (per_instance * (1 - headroom))))
    requests = target_rps * prices.SECONDS_PER_MONTH
    monthly = prices.SAGEMAKER_C5_LARGE.monthly(instances) + _data(requests)
    return Quote(
        "SageMaker real-time", f"{instances} x ml.c5.large", monthly, monthly / requests * 1e6
    )


def serverless(target_rps: float, point: CapacityPoint) -> Quote:
    """Serverless inference, billed per second of inference duration by memory size."""
    memory_gb = max(1, math.ceil(point.memory_mib / MIB_PER_GB))
    seconds = math.ceil(point.cpu_ms_per_request) / 1000  # billed by the millisecond
    requests = target_rps * prices.SECONDS_PER_MONTH
    compute = requests * seconds * memory_gb * prices.SAGEMAKER_SERVERLESS_GB_SECOND.usd
    monthly = compute + _data(requests)
    return Quote(
        "SageMaker serverless",
        f"{memory_gb * MIB_PER_GB} MB, {seconds * 1000:g} ms per request",
        monthly,
        monthly / requests * 1e6,
    )
