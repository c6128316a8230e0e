"""Fixtures shared by every test: small real models trained once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris

from modelship.build.training.data import BUNDLED_DATA
from modelship.build.training.options import TrainOptions
from modelship.build.training.train import train

REPO = Path(__file__).resolve().parent.parent

# `modelship train` and `import` measure capacity as a last step (half a minute, as root): the
# tests that run them as subprocesses are about training, so the step is off for the session
# (subprocesses inherit it); tests/service/build/capacity turns it on where it is the subject.
os.environ.setdefault("MODELSHIP_CAPACITY", "off")


def _quiet(_: str) -> None:
    return None


@pytest.fixture(scope="session")
def insurance_csv() -> Path:
    return BUNDLED_DATA


@pytest.fixture(scope="session")
def iris_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Iris, as shipped by scikit-learn, with text labels and the column names people see."""
    bunch = load_iris(as_frame=True)
    frame = bunch.frame.drop(columns="target")
    frame["species"] = [bunch.target_names[i] for i in bunch.target]
    path = tmp_path_factory.mktemp("data") / "iris.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def regression_artifact(tmp_path_factory: pytest.TempPathFactory, insurance_csv: Path) -> Path:
    out = tmp_path_factory.mktemp("models") / "insurance"
    train(
        TrainOptions(data=insurance_csv, target="charges", output=out, model="gradient_boosting"),
        _quiet,
    )
    return out


@pytest.fixture(scope="session")
def classification_artifact(tmp_path_factory: pytest.TempPathFactory, iris_csv: Path) -> Path:
    out = tmp_path_factory.mktemp("models") / "iris"
    train(TrainOptions(data=iris_csv, target="species", output=out, model="logistic"), _quiet)
    return out


@pytest.fixture(scope="session")
def insurance_frame(insurance_csv: Path) -> pd.DataFrame:
    return pd.read_csv(insurance_csv)


@pytest.fixture(scope="session")
def good_candidate_artifact(tmp_path_factory: pytest.TempPathFactory, insurance_csv: Path) -> Path:
    """A rollout candidate that should be promoted: the insurance data, another estimator."""
    out = tmp_path_factory.mktemp("models") / "insurance-hgb"
    options = TrainOptions(
        data=insurance_csv, target="charges", output=out, model="hist_gradient_boosting", seed=7
    )
    train(options, _quiet)
    return out


@pytest.fixture(scope="session")
def shuffled_candidate_artifact(
    tmp_path_factory: pytest.TempPathFactory, insurance_frame: pd.DataFrame
) -> Path:
    """A rollout candidate that must be aborted: trained on the insurance data with its target
    shuffled (it loads, answers, and is wrong)."""
    folder = tmp_path_factory.mktemp("models")
    shuffled = insurance_frame.copy()
    shuffled["charges"] = np.random.default_rng(0).permutation(shuffled["charges"].to_numpy())
    shuffled.to_csv(folder / "insurance.csv", index=False)
    out = folder / "insurance-shuffled"
    options = TrainOptions(
        data=folder / "insurance.csv", target="charges", output=out, model="gradient_boosting"
    )
    train(options, _quiet)
    return out
