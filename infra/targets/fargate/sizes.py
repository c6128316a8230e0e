"""The task sizes Fargate offers, checked before any AWS call (as awsx keeps
`ecs/fargateMemoryAndCpu.ts` beside ECS)."""

from __future__ import annotations

from infra.config import ConfigReader

# Fargate task sizes: vCPU → allowed memory in MiB (start, stop, step), from the "Task CPU and
# memory" table of the ECS developer guide
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html);
# any other pair fails `up` with "No Fargate configuration exists for given values".
FARGATE_MEMORY_MIB: dict[int, range] = {
    256: range(512, 2048 + 1, 512),  # 0.25 vCPU: 0.5, 1, 2 GB (1.5 GB is not offered)
    512: range(1024, 4096 + 1, 1024),
    1024: range(2048, 8192 + 1, 1024),
    2048: range(4096, 16384 + 1, 1024),
    4096: range(8192, 30720 + 1, 1024),
    8192: range(16384, 61440 + 1, 4096),
    16384: range(32768, 122880 + 1, 8192),
}


def fargate_cpu_units(cpu_millicores: int) -> int:
    """Kubernetes-style millicores → Fargate CPU units (1 vCPU = 1024 units)."""
    return cpu_millicores * 1024 // 1000


def check_fargate_size(
    reader: ConfigReader, cpu_key: str, memory_key: str, cpu_millicores: int, memory_mib: int
) -> None:
    """CPU and memory must be a task size Fargate offers; the message lists the valid memory."""
    units = fargate_cpu_units(cpu_millicores)
    if units not in FARGATE_MEMORY_MIB:
        reader.problem(
            cpu_key, f"{cpu_millicores}m", "on Fargate must be 250m, 500m, 1, 2, 4, 8 or 16"
        )
        return
    allowed = FARGATE_MEMORY_MIB[units]
    if memory_mib not in allowed or (units == 256 and memory_mib == 1536):
        options = [f"{m}Mi" for m in allowed if not (units == 256 and m == 1536)]
        shown = (
            ", ".join(options)
            if len(options) <= 8
            else f"{options[0]} to {options[-1]} in steps of {allowed.step}Mi"
        )
        reader.problem(
            memory_key, f"{memory_mib}Mi", f"on Fargate with {cpu_millicores}m CPU must be {shown}"
        )
