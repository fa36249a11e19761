"""Every map template end to end on one local market, with real data and real processes.

Three groups of owners share the market: 30 CPS1988 workers (one row each), 20 movielens users
(their rating histories) and 12 owners holding a small classifier's predictions on scikit-learn's
wine data. All queries are proposed at once and run concurrently. Each owner joins the queries its
table has the columns for and refuses the others. The exact queries must equal the plaintext computation on
the same rows; the noisy one must carry the noise variance that its spec implies.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from offchain_workers.aggregator.policy import AcceptancePolicy
from offchain_workers.analyst import Analyst, QueryResult
from offchain_workers.datasets import (
    MOVIELENS_GENRES,
    RATING_EDGES,
    WAGE_EDGES,
    classifier_vote_tables,
    cps1988_owner_tables,
    movielens_crosstab_spec,
    movielens_owner_tables,
    vote_spec,
    wage_equation_spec,
    wage_histogram_spec,
)
from offchain_workers.local_market import LocalMarket
from offchain_workers.spec import build_spec
from pmsr_chain import SubmissionState

from .conftest import PHASE_TIMEOUT, plaintext_wage_coefficients, propose, running_market

CPS_OWNERS = 30
MOVIELENS_OWNERS = 20
VOTE_OWNERS = 12
CROSSTAB_ROWS_PER_USER = 50
SUM_FRACTIONAL_BITS = 16

# The noisy histogram: 10-dollar wage bins up to 4,000 and one bin above, epsilon 0.1. Each worker
# adds 1 to one bin, so the discrete Laplace scale is 1 / 0.1 = 10 counts per aggregator.
DP_EDGES = tuple(str(edge) for edge in range(0, 4001, 10)) + ("20000",)
DP_EPSILON_MILLIONTHS = 100_000


@dataclass
class Session:
    market: LocalMarket
    analyst: Analyst
    workers: pd.DataFrame
    users: dict[int, pd.DataFrame]
    vote_tables: list[pd.DataFrame]
    vote_classes: tuple[str, ...]
    queries: dict[str, int]

    def result(self, name: str) -> QueryResult:
        return self.analyst.wait_for_result(self.queries[name], timeout=PHASE_TIMEOUT)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    with running_market(tmp_path_factory, "templates", aggregators=3) as market:
        market.start_aggregators(policy=AcceptancePolicy(max_concurrent_queries=16))
        worker_tables = cps1988_owner_tables(CPS_OWNERS, seed=1988)
        users = movielens_owner_tables(MOVIELENS_OWNERS)
        vote_tables, questions = classifier_vote_tables(VOTE_OWNERS, seed=7)
        market.add_owners([*worker_tables, *users.values(), *vote_tables], fleets=2)
        market.wait_ready()
        analyst = market.analyst()

        specs: dict[str, Any] = {
            "ols": (wage_equation_spec(CPS_OWNERS), CPS_OWNERS),
            "count": (
                build_spec("count", {}, clip=("0", "1"), fractional_bits=0, contribution_bound=1,
                           epsilon_millionths=0, exact=True, filter="education >= 16"),
                CPS_OWNERS,
            ),
            "sum": (
                build_spec("sum", {"column": "wage"}, clip=("0", "20000"), fractional_bits=SUM_FRACTIONAL_BITS,
                           contribution_bound=1, epsilon_millionths=0, exact=True),
                CPS_OWNERS,
            ),
            "mean": (
                build_spec("mean", {"column": "wage"}, clip=[("0", "20000"), ("0", "1")],
                           fractional_bits=SUM_FRACTIONAL_BITS, contribution_bound=1, epsilon_millionths=0, exact=True),
                CPS_OWNERS,
            ),
            "histogram": (wage_histogram_spec(), CPS_OWNERS),
            "crosstab": (movielens_crosstab_spec(contribution_bound=CROSSTAB_ROWS_PER_USER), MOVIELENS_OWNERS),
            "vote": (vote_spec(questions), VOTE_OWNERS),
            "dp_histogram": (wage_histogram_spec(edges=DP_EDGES, epsilon_millionths=DP_EPSILON_MILLIONTHS), CPS_OWNERS),
        }
        queries = {name: propose(analyst, market, spec, owners) for name, (spec, owners) in specs.items()}
        yield Session(
            market, analyst, pd.concat(worker_tables, ignore_index=True), users, vote_tables, questions.classes, queries
        )


def test_ols_equals_least_squares(session: Session) -> None:
    result = session.result("ols")

    expected = plaintext_wage_coefficients(session.workers)
    secure = np.array([result.output["coefficients"][name] for name in result.output["regressors"]])
    assert result.included_owners == CPS_OWNERS
    assert result.output["regressors"] == ["intercept", "experience", "experience^2", "education", "ethnicity_afam"]
    np.testing.assert_allclose(secure, expected, rtol=0, atol=1e-6)
    assert result.output["n"] == CPS_OWNERS


def test_ols_owners_claim_payment(session: Session) -> None:
    query_id = session.queries["ols"]
    session.result("ols")
    owners = session.market.owner_addresses[:CPS_OWNERS]

    def all_claimed() -> bool:
        return all(session.market.market.submission_state(query_id, owner) == SubmissionState.SETTLED for owner in owners)

    session.market.wait_until(all_claimed, PHASE_TIMEOUT, what="every CPS owner to claim the ols payment")
    for owner in session.market.owner_addresses[CPS_OWNERS:]:
        assert session.market.market.submission_state(query_id, owner) == SubmissionState.NONE


def test_count_with_filter(session: Session) -> None:
    result = session.result("count")

    assert result.output["count"] == int((session.workers["education"] >= 16).sum())
    assert result.included_owners == CPS_OWNERS


def test_sum_of_wages(session: Session) -> None:
    result = session.result("sum")

    # Each owner's wage is rounded to 2^-16 before encoding, so the sum is off by at most N / 2^17.
    tolerance = CPS_OWNERS / 2 ** (SUM_FRACTIONAL_BITS + 1)
    assert abs(result.output["sum"] - session.workers["wage"].sum()) <= tolerance


def test_mean_of_wages(session: Session) -> None:
    result = session.result("mean")

    assert result.output["count"] == CPS_OWNERS
    tolerance = 1 / 2 ** (SUM_FRACTIONAL_BITS + 1)
    assert abs(result.output["mean"] - session.workers["wage"].mean()) <= tolerance


def test_histogram_of_wages(session: Session) -> None:
    result = session.result("histogram")

    edges = [float(edge) for edge in WAGE_EDGES]
    expected, _ = np.histogram(session.workers["wage"].to_numpy(), bins=edges)
    assert result.output["counts"] == [float(count) for count in expected]


def test_crosstab_of_ratings(session: Session) -> None:
    result = session.result("crosstab")

    edges = [float(edge) for edge in RATING_EDGES]
    expected = np.zeros((len(edges) - 1, len(MOVIELENS_GENRES)))
    for table in session.users.values():
        usable = table[table["genre"].isin(MOVIELENS_GENRES) & table["rating"].between(edges[0], edges[-1])]
        for _, row in usable.head(CROSSTAB_ROWS_PER_USER).iterrows():
            rating_bin = min(int(np.searchsorted(edges, row["rating"], side="right")) - 1, len(edges) - 2)
            expected[rating_bin, MOVIELENS_GENRES.index(row["genre"])] += 1
    assert result.included_owners == MOVIELENS_OWNERS
    assert result.output["counts"] == expected.tolist()


def test_vote_of_classifiers(session: Session) -> None:
    result = session.result("vote")

    classes = session.vote_classes
    questions = len(session.vote_tables[0])
    expected = np.zeros((questions, len(classes)))
    for table in session.vote_tables:
        for question, label in zip(table["question"], table["label"]):
            expected[question, classes.index(label)] += 1
    assert result.output["votes"] == expected.tolist()
    assert result.output["winners"] == [classes[index] for index in np.argmax(expected, axis=1)]


def test_dp_noise_variance_matches_scale(session: Session) -> None:
    result = session.result("dp_histogram")

    edges = [float(edge) for edge in DP_EDGES]
    exact, _ = np.histogram(session.workers["wage"].to_numpy(), bins=edges)
    errors = np.asarray(result.values) - exact
    assert np.all(errors == np.round(errors)), "noise in encoded units is an integer at fractionalBits 0"

    scale = 1 / (DP_EPSILON_MILLIONTHS / 1_000_000)
    decay = math.exp(-1 / scale)
    one_noise_variance = 2 * decay / (1 - decay) ** 2
    expected_variance = 3 * one_noise_variance
    # With 401 coordinates, the sample variance of a sum of three discrete Laplace noises has a
    # standard deviation of about 12% of the true variance. Missing noise (ratio 0), a doubled
    # variance (2) or a doubled scale (4) fall far outside this band.
    ratio = float(np.mean(errors.astype(float) ** 2)) / expected_variance
    assert 0.6 < ratio < 1.6, f"noise variance ratio {ratio:.3f} (expected variance {expected_variance:.1f})"
