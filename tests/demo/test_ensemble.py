"""`pmsr demo ensemble` with 20 questions, exact (the default): the secure vote against plain counting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pytest

from offchain_workers.demo.ensemble import MODEL_NAMES, EnsembleOptions, train_models
from offchain_workers.demo.report import ensemble_report

from .conftest import DemoRun, run_demo

QUESTIONS = 20


@pytest.fixture(scope="module")
def plot_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plot") / "ensemble.png"


@pytest.fixture(scope="module")
def report(plot_path: Path) -> Any:
    run: DemoRun = run_demo("ensemble", "--questions", QUESTIONS, "--json", "--plot", plot_path)
    assert run.status == 0, run.stderr[-3000:]
    return run.report()


def test_secure_vote_equals_plain_majority(report: Any) -> None:
    trained = train_models(EnsembleOptions(questions=QUESTIONS))
    votes = np.zeros((QUESTIONS, 10), dtype=int)
    for predictions in trained.predictions:
        votes[np.arange(QUESTIONS), predictions] += 1
    vote = report["vote"]
    assert vote["exact"] is True
    assert vote["output_length"] == QUESTIONS * 10
    assert vote["winners"] == np.argmax(votes, axis=1).tolist()
    assert vote["truth"] == trained.truth.tolist()
    assert vote["accuracy"] == pytest.approx(np.mean(np.argmax(votes, axis=1) == trained.truth))
    assert vote["agreement_with_plaintext"] == 1.0


def test_each_model_accuracy_is_reported(report: Any) -> None:
    trained = train_models(EnsembleOptions(questions=QUESTIONS))
    assert [model["name"] for model in report["models"]] == list(MODEL_NAMES)
    for index, model in enumerate(report["models"]):
        assert model["accuracy"] == pytest.approx(np.mean(trained.predictions[index] == trained.truth))
    assert report["owners"] == len(MODEL_NAMES)
    assert report["payments"]["owners"]["paid"] == len(MODEL_NAMES)


def test_models_train_on_disjoint_shards() -> None:
    first = train_models(EnsembleOptions(questions=QUESTIONS, seed=3))
    second = train_models(EnsembleOptions(questions=QUESTIONS, seed=3))
    assert np.array_equal(first.predictions, second.predictions)
    # Different classifiers on different shards disagree somewhere.
    assert len({tuple(row) for row in first.predictions}) > 1


def test_too_many_questions_is_rejected() -> None:
    with pytest.raises(ValueError, match="lower --questions or --rows-per-model"):
        train_models(EnsembleOptions(questions=1_200, rows_per_model=120))


def test_text_and_plot(report: Any, plot_path: Path) -> None:
    text = ensemble_report(report)
    assert "secure ensemble (majority vote)" in text
    assert "random forest (50 trees)" in text
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(plot_path).shape[1] >= 800
