"""Memory of a serving worker with two model versions loaded (a rollout), against one.

    uv run python bench/rollout_memory.py [--rows 20000] [--model lightgbm] [--out DIR]

Trains a pair of models on the 26-class table of bench/training.py (the same estimator, two
seeds: another train/test split, so another model version), then in fresh processes, as
`modelship build.measure` weighs one model, loads the primary alone and the primary with the
candidate beside it (`build_serving(settings, primary, candidate)`), warms both up, predicts
1,000 rows on each, and prints each process's peak resident memory beside the cards' footprints
and the bound `contracts.footprint.memory_shortfall` uses. Memory is not timing-sensitive: a busy
machine gives the same figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.training import many_classes_table

WEIGH = """
import json, sys
from pathlib import Path
from modelship.build.measure import peak_rss_mb, synthetic_rows
from modelship.contracts.settings import Settings
from modelship.model import artifact
from modelship.model.codecs.records import RecordsCodec
from modelship.model.predictor import Predictor
from modelship.serving.compose import build_serving
from modelship.transport.http.app import create_app

paths = [Path(p) for p in sys.argv[1:]]
predictors = [Predictor(artifact.load(p)) for p in paths]
settings = Settings(artifact=paths[0], candidate=str(paths[1]) if len(paths) > 1 else None)
serving = build_serving(settings, predictors[0], predictors[1] if len(paths) > 1 else None)
create_app(serving)
rows = synthetic_rows(predictors[0].card, 1_000)
for predictor in predictors:
    predictor.warm_up()
    predictor.predict(RecordsCodec(predictor.schema).decode(rows))
print(json.dumps({"peak_rss_mb": round(peak_rss_mb(), 1)}))
"""


def _train(data: Path, out: Path, model: str, seed: int) -> dict[str, object]:
    command = [sys.executable, "-m", "modelship", "train", "--data", str(data)]
    command += ["--target", "letter", "--model", model, "--seed", str(seed), "-o", str(out)]
    subprocess.run(command, check=True, capture_output=True)
    card: dict[str, object] = json.loads((out / "model-card.json").read_text())
    return card


def _weigh(*paths: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-c", WEIGH, *map(str, paths)],
        check=True,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp()},
    )
    figure: float = json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    return figure


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--model", default="lightgbm")
    parser.add_argument(
        "--out", type=Path, default=Path(tempfile.gettempdir()) / "modelship-bench-rollout-memory"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "many-classes.csv"
    many_classes_table(args.rows).to_csv(data, index=False)
    primary, candidate = args.out / "primary", args.out / "candidate"
    cards = [_train(data, primary, args.model, 42), _train(data, candidate, args.model, 7)]
    for path, card in zip((primary, candidate), cards, strict=True):
        footprint = card["footprint"]
        assert isinstance(footprint, dict)
        print(
            f"{path.name}: {card['model']['kind']} version {card['artifact']['onnx_sha256'][:12]}, "  # type: ignore[index]
            f"{footprint['model_bytes'] / 2**20:.1f} MB model, card footprint "
            f"{footprint['serving_rss_mb']} MB per worker"
        )
    alone = min(_weigh(primary) for _ in range(3))
    both = min(_weigh(primary, candidate) for _ in range(3))
    bound = sum(card["footprint"]["serving_rss_mb"] for card in cards)  # type: ignore[index]
    print(f"one worker, primary alone: {alone} MB peak resident")
    print(f"one worker, primary + candidate: {both} MB peak resident (+{both - alone:.1f} MB)")
    print(f"memory_shortfall's bound (both cards' footprints added): {bound:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
