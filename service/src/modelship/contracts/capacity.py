"""What one replica of a model serves, as measured: the card's `capacity` section.

`modelship capacity` measures it by running the real server confined to a CPU quota and a memory
limit (a cgroup, as Kubernetes and ECS confine a container) under open-loop load at rising rates;
the stacks read it at `pulumi preview` to size replicas and price the plan. Measuring lives in
the build layer; this module is only the data both sides agree on.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CapacityPoint(_Frozen):
    """The highest sustained rate of one confined replica for one container size and request mix."""

    cpu: str = Field(description="CPU quota of the replica, as a Kubernetes quantity (500m, 1)")
    memory: str = Field(description="Memory limit of the replica, as a Kubernetes quantity")
    workers: int = Field(ge=1, description="Server worker processes in the replica")
    rows_per_request: int = Field(ge=1, description="Rows per request: 1 for single rows")
    p99_target_ms: float = Field(gt=0, description="Latency the rate is held to")
    max_rps: float = Field(
        ge=0,
        description="Highest open-loop request rate sustained with p99 under the target "
        "and no errors",
    )
    p99_ms: float = Field(ge=0, description="p99 latency measured at that rate")
    cpu_ms_per_request: float = Field(ge=0, description="Server CPU time per request")
    memory_mib: float = Field(ge=0, description="Peak memory of the replica's cgroup at that rate")

    def describe(self) -> str:
        """One line for people: `modelship capacity` and `info`, the report, the web page."""
        rows = "1 row" if self.rows_per_request == 1 else f"{self.rows_per_request} rows"
        return (
            f"cpu {self.cpu}, memory {self.memory}, {self.workers} worker(s), {rows} per "
            f"request: {self.max_rps:g} requests/s at p99 {self.p99_ms:.1f} ms (target "
            f"{self.p99_target_ms:g} ms), {self.cpu_ms_per_request:.2f} ms CPU per request, "
            f"peak memory {self.memory_mib:.0f} MiB"
        )


class Capacity(_Frozen):
    measured_at: str = Field(description="When it was measured (ISO 8601, UTC)")
    cpu_model: str = Field(
        description="The measuring machine's CPU model: the rate transfers to similar cores only"
    )
    points: list[CapacityPoint] = Field(description="One per container size and request mix")

    def single_row(self, cpu: str, memory: str) -> CapacityPoint | None:
        """The single-row point measured at exactly this container size, if any."""
        for point in self.points:
            if point.rows_per_request == 1 and (point.cpu, point.memory) == (cpu, memory):
                return point
        return None
