"""A secure ensemble: six model owners vote on held-out questions; only the vote counts become public.

The data is scikit-learn's bundled copy of the UCI handwritten digits (1,797 images of 8x8 pixels,
digits 0 to 9). A seeded split sets aside `questions` images as the analyst's held-out questions
and gives each of six model owners its own disjoint shard of the remaining images. Each owner
trains a different classifier on its shard, privately, and keeps its predictions for the questions
in its data file. The analyst's `vote` query returns, for every question, how many models chose
each digit. Neither the models nor any single model's predictions leave the owners' machines.

The vote vector has questions x 10 coordinates, and each one costs calldata in every owner's
submission and storage in the published result, so the question count is checked against the
market's `maxOutputLength` (4,096 on the local market, so at most 409 questions). Measured on
Anvil 1.7.1 with 3 aggregators: at 100 questions a submission used 0.99 million gas and a reveal
4.2 million on average; at 409 questions, 3.9 million and 17.0 million.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pmsr_chain import ETHER
from pmsr_chain.errors import InvalidInputError

from .. import datasets
from ..aggregator.policy import AcceptancePolicy
from ..budget import format_epsilon
from ..owner.config import LocalPolicy
from . import reference
from .phases import PhaseClock
from .session import DemoSession, QueryRequest
from .summary import ledger_summary, phase_summary, query_entry

__all__ = ["EnsembleOptions", "MODEL_NAMES", "train_models", "run_ensemble"]

# Local policy of every model owner's agent: vote queries over its prediction table only.
OWNER_POLICY = LocalPolicy(allowed_templates=frozenset({"vote"}), allowed_columns=frozenset({"question", "label"}))

PRICE_PER_OWNER = ETHER // 100
FEE_PER_AGGREGATOR = ETHER // 100
DIGIT_CLASSES = 10


def _classifiers(seed: int) -> dict[str, Callable[[], Any]]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    return {
        "logistic regression": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2_000)),
        "k-nearest neighbours (k=5)": lambda: KNeighborsClassifier(n_neighbors=5),
        "decision tree (depth 8)": lambda: DecisionTreeClassifier(max_depth=8, random_state=seed),
        "Gaussian naive Bayes": lambda: GaussianNB(),
        "support vector machine (RBF)": lambda: SVC(gamma="scale", random_state=seed),
        "random forest (50 trees)": lambda: RandomForestClassifier(n_estimators=50, random_state=seed),
    }


MODEL_NAMES = (
    "logistic regression",
    "k-nearest neighbours (k=5)",
    "decision tree (depth 8)",
    "Gaussian naive Bayes",
    "support vector machine (RBF)",
    "random forest (50 trees)",
)


@dataclass(frozen=True)
class EnsembleOptions:
    """Options of `pmsr demo ensemble`.

    `rows_per_model` training images go to each owner, from disjoint shards. The default epsilon is
    0 (exact): DP noise that hides one model's whole set of predictions would swamp six votes.
    """

    questions: int = 100
    rows_per_model: int = 120
    epsilon_millionths: int = 0
    aggregators: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.questions < 1:
            raise InvalidInputError(f"question count {self.questions} is invalid; pass at least 1")
        if self.rows_per_model < DIGIT_CLASSES:
            raise InvalidInputError(f"rows per model {self.rows_per_model} is invalid; pass at least {DIGIT_CLASSES}")
        if self.epsilon_millionths < 0:
            raise InvalidInputError(f"epsilon {self.epsilon_millionths} millionths is negative; pass 0 for an exact query")


@dataclass(frozen=True)
class TrainedModels:
    """The six owners' prediction tables, the questions' true digits and each model's predictions."""

    tables: list[pd.DataFrame]
    truth: NDArray[np.int64]
    predictions: NDArray[np.int64]  # models x questions


def train_models(options: EnsembleOptions) -> TrainedModels:
    """Split the digits, train one classifier per owner on its own shard, and tabulate its predictions.

    Raises:
        InvalidInputError: the questions and six shards need more images than the 1,797 available.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    features = np.asarray(digits.data, dtype=np.float64)
    targets = np.asarray(digits.target, dtype=np.int64)
    needed = options.questions + len(MODEL_NAMES) * options.rows_per_model
    if needed > len(features):
        raise InvalidInputError(
            f"{options.questions} questions and {len(MODEL_NAMES)} shards of {options.rows_per_model} images need "
            f"{needed} images, but the digits data has {len(features)}; lower --questions or --rows-per-model"
        )
    order = np.random.default_rng(options.seed).permutation(len(features))
    questions = order[: options.questions]
    factories = _classifiers(options.seed)
    tables, predictions = [], []
    for index, name in enumerate(MODEL_NAMES):
        start = options.questions + index * options.rows_per_model
        shard = order[start : start + options.rows_per_model]
        model = factories[name]()
        model.fit(features[shard], targets[shard])
        predicted = np.asarray(model.predict(features[questions]), dtype=np.int64)
        predictions.append(predicted)
        tables.append(pd.DataFrame({"question": np.arange(options.questions), "label": predicted}))
    return TrainedModels(tables, targets[questions], np.vstack(predictions))


def _vote_spec(options: EnsembleOptions, truth: NDArray[np.int64]) -> Any:
    questions = datasets.VoteQuestions(
        features=np.zeros((len(truth), 0)),
        labels=tuple(str(int(label)) for label in truth),
        classes=tuple(str(digit) for digit in range(DIGIT_CLASSES)),
    )
    return datasets.vote_spec(questions, epsilon_millionths=options.epsilon_millionths)


def run_ensemble(options: EnsembleOptions, work_dir: Path, progress: IO[str]) -> dict[str, Any]:
    """Train the six models, run the vote query on a fresh local market, and report the accuracies."""
    clock = PhaseClock(progress)
    with clock.phase(f"training {len(MODEL_NAMES)} classifiers, each on its owner's own shard"):
        trained = train_models(options)
    spec = _vote_spec(options, trained.truth)
    owners = len(MODEL_NAMES)
    request = QueryRequest("majority vote on held-out digits", spec, owners, owners, PRICE_PER_OWNER, FEE_PER_AGGREGATOR)
    clock.note(f"{options.questions} questions x {DIGIT_CLASSES} digits = {spec.output_length} vote counts, "
               + ("an exact query" if spec.exact else f"epsilon {format_epsilon(options.epsilon_millionths)}"))

    with DemoSession(clock, work_dir / "market", aggregators=options.aggregators) as session:
        limit = session.local.market.max_output_length()
        if spec.output_length > limit:
            raise InvalidInputError(
                f"{options.questions} questions x {DIGIT_CLASSES} digits = {spec.output_length} vote counts, above the "
                f"market's maxOutputLength {limit}; pass --questions {limit // DIGIT_CLASSES} or fewer"
            )
        # The aggregators' default local policy accepts at most 512 coordinates; these aggregators
        # serve this demo, so they accept up to the market's own limit.
        session.register_aggregators(AcceptancePolicy(max_output_length=limit))
        session.register_owners(trained.tables, fleets=1, local_policy=OWNER_POLICY)
        session.start_services()
        (query_id,) = session.propose([request], submit_window=600)
        (result,) = session.follow([query_id], timeout=3_000)
        refunds = session.settle([query_id], timeout=300)
        ledger = session.ledger()
        market_address = session.local.market.address

    accuracies = {name: float(np.mean(trained.predictions[index] == trained.truth)) for index, name in enumerate(MODEL_NAMES)}
    plaintext_winners = reference.majority_vote(trained.predictions, DIGIT_CLASSES)
    output = result.output or {}
    winners = [int(label) for label in output["winners"]] if "winners" in output else None
    vote: dict[str, Any] = {
        "query_id": query_id,
        "questions": options.questions,
        "classes": DIGIT_CLASSES,
        "output_length": spec.output_length,
        "exact": spec.exact,
        "included_owners": result.included_owners,
        "winners": winners,
        "plaintext_winners": plaintext_winners.tolist(),
        "truth": trained.truth.tolist(),
        "accuracy": float(np.mean(np.array(winners) == trained.truth)) if winners is not None else None,
        "plaintext_accuracy": float(np.mean(plaintext_winners == trained.truth)),
        "agreement_with_plaintext": float(np.mean(np.array(winners) == plaintext_winners)) if winners is not None else None,
        "error": result.postprocess_error,
    }
    report: dict[str, Any] = {
        "demo": "ensemble",
        "dataset": "scikit-learn digits (UCI handwritten digits)",
        "owners": owners,
        "aggregators": options.aggregators,
        "exact": spec.exact,
        "epsilon": options.epsilon_millionths / 1_000_000,
        "rows_per_model": options.rows_per_model,
        "seed": options.seed,
        "market": market_address,
        "models": [{"name": name, "accuracy": accuracies[name]} for name in MODEL_NAMES],
        "vote": vote,
        "queries": [query_entry(query_id, request, options.aggregators, refunds[query_id])],
    }
    report.update(ledger_summary(ledger, [query_id]))
    report["seconds"] = phase_summary(clock)
    report["peak_memory_mb"] = session.peak_rss_mb
    return report
