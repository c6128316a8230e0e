"""The service refuses readiness when the model's measured footprint exceeds the memory limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelship.contracts.footprint import Footprint, memory_shortfall
from modelship.model import artifact
from modelship.serving.memory import cgroup_memory_limit
from tests.service.conftest import make_client

FOOTPRINT = Footprint(
    model_bytes=30 * 2**20, latency_row_ms=0.1, latency_batch_ms=20.0, serving_rss_mb=240.0
)


@pytest.fixture(scope="module")
def weighed_artifact(regression_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The insurance model with a (large) footprint recorded in its card."""
    loaded = artifact.load(regression_artifact)
    out = tmp_path_factory.mktemp("weighed")
    artifact.save(
        out,
        loaded.card.model_copy(update={"footprint": FOOTPRINT}),
        loaded.onnx_bytes,
        loaded.explanation,
    )
    return out


def test_not_ready_when_workers_do_not_fit_the_limit(weighed_artifact: Path) -> None:
    with make_client(weighed_artifact, workers=2, memory_limit_bytes=256 * 2**20) as client:
        answer = client.get("/readyz")
        assert answer.status_code == 503
        body = answer.json()
        assert body["status"] == "does not fit"
        assert body["message"] == (
            "the container's memory limit (256Mi) is too small for model insurance-charges: "
            "2 worker(s) x 240 MB measured per worker need 480Mi (the model: 30.0 MB model, "
            "240 MB per worker, 0.10 ms per row, 20.0 ms per 1,000 rows); set at least 512Mi"
        )
        refused = client.post("/predict", json=client.get("/model/examples/0").json())
        assert refused.status_code == 503
        assert "too small for model insurance-charges" in refused.text


def test_ready_when_it_fits_or_nothing_is_known(
    weighed_artifact: Path, regression_artifact: Path, tmp_path: Path
) -> None:
    with make_client(weighed_artifact, workers=2, memory_limit_bytes=512 * 2**20) as client:
        assert client.get("/readyz").status_code == 200
    # A card made before footprints were measured: nothing to compare, so no refusal.
    loaded = artifact.load(regression_artifact)
    artifact.save(
        tmp_path,
        loaded.card.model_copy(update={"footprint": None}),
        loaded.onnx_bytes,
        loaded.explanation,
    )
    with make_client(tmp_path, memory_limit_bytes=8 * 2**20) as client:
        assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"memory.max": "536870912\n"}, 512 * 2**20),
        ({"memory.max": "max\n"}, None),
        ({"memory/memory.limit_in_bytes": "268435456\n"}, 256 * 2**20),
        ({"memory/memory.limit_in_bytes": "9223372036854771712\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_limit_v1_and_v2(
    tmp_path: Path, files: dict[str, str], expected: int | None
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_memory_limit(tmp_path) == expected


def test_shortfall_is_none_when_it_fits() -> None:
    assert memory_shortfall("m", FOOTPRINT, 2, 480 * 2**20, "modelship:memory") is None
    assert memory_shortfall("m", FOOTPRINT, 3, 480 * 2**20, "modelship:memory") is not None
