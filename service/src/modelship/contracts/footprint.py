"""What a model costs to serve, as measured: file size, predict latency and a worker's memory.

The data type the model card carries, and the one wording of "does not fit" that `pulumi
preview` and the service's readiness check share. Measuring lives in `modelship.build.measure`.
"""

from __future__ import annotations

from dataclasses import dataclass

# The batch size of `Footprint.latency_batch_ms`.
BATCH_ROWS = 1_000


@dataclass(frozen=True)
class Footprint:
    """What serving one model costs, as measured (not estimated)."""

    model_bytes: int
    """Size of the exported `model.onnx`."""
    latency_row_ms: float
    """Median onnxruntime predict time of one row, in one serving thread."""
    latency_batch_ms: float
    """Median onnxruntime predict time of 1,000 rows, in one serving thread."""
    serving_rss_mb: float
    """Peak resident memory (MiB) of a server worker once the model is loaded and has predicted."""

    @property
    def model_mb(self) -> float:
        return self.model_bytes / 2**20

    def summary(self) -> str:
        return (
            f"{self.model_mb:.1f} MB model, {self.serving_rss_mb:.0f} MB per worker, "
            f"{self.latency_row_ms:.2f} ms per row, {self.latency_batch_ms:.1f} ms per "
            f"{BATCH_ROWS:,} rows"
        )


def memory_shortfall(
    name: str,
    footprint: Footprint,
    workers: int,
    limit_bytes: int,
    limit_key: str,
    *,
    candidate: tuple[str, Footprint] | None = None,
) -> str | None:
    """Why `workers` workers of this model (and, in a rollout, of the `candidate` model loaded
    beside it in every worker: its name and footprint) do not fit in `limit_bytes`, or None.

    One wording for `pulumi preview` (where `limit_key` is `modelship:memory`) and for the
    service's readiness check, so the operator sees the same figures in both places.
    """
    per_worker_mb = footprint.serving_rss_mb
    what = f"model {name}"
    detail = f"the model: {footprint.summary()}"
    if candidate is not None:
        candidate_name, candidate_footprint = candidate
        # Both models' measured workers added up: an upper bound, since the two share one
        # interpreter and one onnxruntime in the worker.
        per_worker_mb += candidate_footprint.serving_rss_mb
        what = f"model {name} with candidate {candidate_name}"
        detail += f"; the candidate: {candidate_footprint.summary()}"
    needed_mb = per_worker_mb * workers
    limit_mb = limit_bytes / 2**20
    if needed_mb <= limit_mb:
        return None
    return (
        f"{limit_key} ({limit_mb:.0f}Mi) is too small for {what}: {workers} worker(s) x "
        f"{per_worker_mb:.0f} MB measured per worker need {needed_mb:.0f}Mi "
        f"({detail}); set at least {_round_up_mi(needed_mb)}"
    )


def _round_up_mi(mb: float) -> str:
    """A memory quantity above `mb` MiB, rounded up to 64Mi steps."""
    return f"{int(-(-mb // 64) * 64)}Mi"
