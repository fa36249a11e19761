import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain_workers.canonical_json import MAX_DOCUMENT_BYTES, dump_canonical, load_strict
from offchain_workers.decimal_strings import format_decimal, parse_decimal
from offchain_workers.errors import FilterSyntaxError, SpecError
from offchain_workers.spec import ENCODED_SUM_LIMIT, QuerySpec, build_spec, spec_hash
from offchain_workers.templates import TEMPLATES, template_by_id, template_mask

VECTOR_PATH = Path(__file__).resolve().parents[2] / "contracts" / "test" / "vectors" / "spec_hash.json"

OLS_PARAMS = {
    "intercept": True,
    "response": {"column": "wage", "power": 1, "transform": "log"},
    "terms": [
        {"column": "experience", "power": 1, "transform": "identity"},
        {"column": "experience", "power": 2, "transform": "identity"},
        {"column": "education", "power": 1, "transform": "identity"},
        {"column": "ethnicity", "level": "afam"},
    ],
}

# One valid spec per template: (template, params, clip, contributionBound).
EXAMPLES = {
    "count": ({}, ("0", "1"), 1),
    "sum": ({"column": "wage"}, ("0", "20000"), 1),
    "mean": ({"column": "wage"}, ("0", "20000"), 1),
    "histogram": ({"column": "wage", "edges": ["0", "250", "500.5", "1000", "20000"]}, ("0", "1"), 1),
    "crosstab": (
        {
            "rows": {"column": "genre", "categories": ["Drama", "Comedy"]},
            "columns": {"column": "rating", "edges": ["0.5", "3", "4", "5"]},
        },
        ("0", "50"),
        50,
    ),
    "ols": (OLS_PARAMS, ("-16000000", "16000000"), 1),
    "vote": ({"classes": ["0", "1"], "labelColumn": "label", "questionColumn": "question", "questions": 3}, ("0", "1"), 3),
}


def example_spec(template="sum", **overrides):
    params, clip, bound = EXAMPLES[template]
    arguments = dict(
        clip=clip, fractional_bits=16, contribution_bound=bound, epsilon_millionths=1_000_000, exact=False
    )
    arguments.update(overrides)
    return build_spec(template, params, **arguments)


def example_document(**overrides):
    document = example_spec("sum").to_dict()
    document.update(overrides)
    return document


def assert_spec_error(error_info, field, value):
    assert error_info.value.field == field
    assert error_info.value.value == value
    assert field in str(error_info.value)
    assert repr(value) in str(error_info.value)


# --- canonical bytes and hash -------------------------------------------------------------------


@pytest.mark.parametrize("template", sorted(EXAMPLES))
def test_spec_round_trips(template):
    spec = example_spec(template)
    data = spec.to_json_bytes()
    assert QuerySpec.from_json_bytes(data) == spec
    assert QuerySpec.from_json_bytes(data).to_json_bytes() == data


@pytest.mark.parametrize("template", sorted(EXAMPLES))
def test_spec_bytes_canonical(template):
    data = example_spec(template).to_json_bytes()
    document = json.loads(data)
    assert data == json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert b" " not in data
    assert b"\n" not in data
    assert list(document) == sorted(document)


def test_spec_hash_known_answer():
    # keccak256 of the empty string, as Solidity's keccak256("") returns it.
    assert spec_hash(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def test_spec_hash_of_spec_bytes():
    spec = example_spec("ols", exact=True, epsilon_millionths=0)
    assert spec.hash == spec_hash(spec.to_json_bytes())
    assert len(spec.hash) == 32
    assert example_spec("ols").hash != spec.hash


def test_shared_vector_canonical_and_hash():
    """The Foundry suite checks the contract's keccak256 against the same file."""
    vector = json.loads(VECTOR_PATH.read_text(encoding="utf-8"))
    data = vector["specJson"].encode("utf-8")
    assert dump_canonical(load_strict(data)) == data
    assert QuerySpec.from_json_bytes(data).to_json_bytes() == data
    assert "0x" + spec_hash(data).hex() == vector["specHash"]


def test_sum_spec_bytes_pinned():
    spec = build_spec("sum", {"column": "x"}, clip=("-10", "10"), fractional_bits=16, contribution_bound=1,
                      epsilon_millionths=1_000_000)
    assert spec.to_json_bytes() == (
        b'{"clip":[["-10","10"]],"contributionBound":1,"epsilon":1000000,"exact":false,"fractionalBits":16,'
        b'"params":{"column":"x"},"postprocess":"sum","schema":["sum(x)"],"template":"sum","version":1}'
    )
    assert spec.hash.hex() == "4f092d845d9d74e11e2b211d2dc9d2edf756da3b1947dd1a3bc4e232ff9f9adf"


def test_non_ascii_written_as_utf8():
    spec = example_spec("count", filter='name == "Zoë"')
    data = spec.to_json_bytes()
    assert "Zoë".encode() in data
    assert QuerySpec.from_json_bytes(data).filter == 'name == "Zoë"'


# --- strict parsing -----------------------------------------------------------------------------


def test_from_json_rejects_float():
    data = example_spec().to_json_bytes().replace(b'"epsilon":1000000', b'"epsilon":1.0')
    with pytest.raises(SpecError) as caught:
        QuerySpec.from_json_bytes(data)
    assert_spec_error(caught, "epsilon", "1.0")


def test_from_json_rejects_nested_float():
    document = example_spec().to_dict()
    text = dump_canonical(document).replace(b'["0","20000"]', b'[0.5,"20000"]')
    with pytest.raises(SpecError) as caught:
        QuerySpec.from_json_bytes(text)
    assert_spec_error(caught, "clip[0][0]", "0.5")


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e6"])
def test_from_json_rejects_non_integer_numbers(literal):
    data = example_spec().to_json_bytes().replace(b'"epsilon":1000000', b'"epsilon":' + literal)
    with pytest.raises(SpecError) as caught:
        QuerySpec.from_json_bytes(data)
    assert caught.value.field == "epsilon"


def test_from_json_rejects_duplicate_key():
    data = example_spec().to_json_bytes().replace(b'"version":1', b'"version":1,"version":1')
    with pytest.raises(SpecError, match="duplicate") as caught:
        QuerySpec.from_json_bytes(data)
    assert caught.value.value == "version"


def test_from_json_rejects_whitespace():
    spaced = json.dumps(example_spec().to_dict(), sort_keys=True).encode()
    with pytest.raises(SpecError, match="canonical") as caught:
        QuerySpec.from_json_bytes(spaced)
    assert caught.value.field == "document"
    assert QuerySpec.from_json_bytes(spaced, require_canonical=False) == example_spec()


def test_from_json_rejects_unsorted_keys():
    document = example_spec().to_dict()
    reordered = json.dumps(dict(reversed(list(document.items()))), separators=(",", ":")).encode()
    with pytest.raises(SpecError, match="canonical"):
        QuerySpec.from_json_bytes(reordered)


def test_from_json_rejects_byte_order_mark():
    with pytest.raises(SpecError, match="byte-order mark"):
        QuerySpec.from_json_bytes(b"\xef\xbb\xbf" + example_spec().to_json_bytes())


def test_from_json_rejects_invalid_utf8():
    with pytest.raises(SpecError, match="UTF-8"):
        QuerySpec.from_json_bytes(b'{"template":"\xff"}')


def test_from_json_rejects_null():
    with pytest.raises(SpecError) as caught:
        QuerySpec.from_dict(load_strict(dump_canonical(example_document(filter="wage > 1")).replace(b'"wage > 1"', b"null")))
    assert caught.value.field == "filter"


def test_from_json_rejects_unsafe_integer():
    data = example_spec().to_json_bytes().replace(b'"epsilon":1000000', b'"epsilon":9007199254740993')
    with pytest.raises(SpecError) as caught:
        QuerySpec.from_json_bytes(data)
    assert_spec_error(caught, "epsilon", 9007199254740993)


def test_from_dict_rejects_unknown_field():
    with pytest.raises(SpecError) as caught:
        QuerySpec.from_dict(example_document(owner="0xabc"))
    assert_spec_error(caught, "owner", "0xabc")


def test_from_dict_rejects_unknown_param():
    document = example_document()
    document["params"] = {"column": "wage", "weights": "w"}
    with pytest.raises(SpecError) as caught:
        QuerySpec.from_dict(document)
    assert_spec_error(caught, "params.weights", "w")


def test_from_dict_rejects_missing_field():
    document = example_document()
    del document["clip"]
    with pytest.raises(SpecError, match="missing") as caught:
        QuerySpec.from_dict(document)
    assert caught.value.field == "clip"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epsilon", "1000000"),
        ("epsilon", True),
        ("fractionalBits", "16"),
        ("contributionBound", 0),
        ("exact", 0),
        ("version", 2),
        ("postprocess", "median"),
        ("filter", 3),
    ],
)
def test_from_dict_rejects_wrong_type(field, value):
    with pytest.raises(SpecError) as caught:
        QuerySpec.from_dict(example_document(**{field: value}))
    assert_spec_error(caught, field, value)


# --- field validation ---------------------------------------------------------------------------


def test_unknown_template_rejected():
    with pytest.raises(SpecError) as caught:
        QuerySpec.from_dict(example_document(template="median"))
    assert_spec_error(caught, "template", "median")


def test_missing_column_rejected():
    spec = example_spec("ols")
    kinds = {"wage": "number", "experience": "number", "ethnicity": "string"}
    with pytest.raises(SpecError) as caught:
        spec.check_columns(kinds)
    assert_spec_error(caught, "params.terms[2].column", "education")


def test_column_kind_mismatch_rejected():
    spec = example_spec("sum")
    with pytest.raises(SpecError, match="needs number") as caught:
        spec.check_columns({"wage": "string"})
    assert_spec_error(caught, "params.column", "wage")


def test_numeric_column_needs_integer_categories():
    spec = example_spec("crosstab")
    with pytest.raises(SpecError, match="integers") as caught:
        spec.check_columns({"genre": "number", "rating": "number"})
    assert caught.value.field == "params.rows.column"


def test_filter_unknown_column_rejected():
    spec = example_spec("count", filter="age >= 18")
    with pytest.raises(FilterSyntaxError) as caught:
        spec.check_columns({"wage": "number"})
    assert caught.value.position == 0
    assert "age" in str(caught.value)


def test_filter_syntax_checked_in_spec():
    with pytest.raises(FilterSyntaxError) as caught:
        example_spec("count", filter="wage.real > 1")
    assert caught.value.field == "filter"
    assert caught.value.position == 4


@pytest.mark.parametrize(
    ("edges", "index"),
    [(["0", "500", "250"], 2), (["0", "250", "250", "500"], 2), (["10", "0"], 1)],
)
def test_bins_out_of_order_rejected(edges, index):
    with pytest.raises(SpecError, match="strictly increasing") as caught:
        build_spec("histogram", {"column": "wage", "edges": edges}, clip=("0", "1"), fractional_bits=8,
                   contribution_bound=1, epsilon_millionths=1_000_000)
    assert_spec_error(caught, f"params.edges[{index}]", edges[index])


def test_single_edge_rejected():
    with pytest.raises(SpecError, match="between 2") as caught:
        build_spec("histogram", {"column": "wage", "edges": ["0"]}, clip=("0", "1"), fractional_bits=8,
                   contribution_bound=1, epsilon_millionths=1_000_000)
    assert caught.value.field == "params.edges"


def test_duplicate_category_rejected():
    params = {"classes": ["0", "1", "0"], "labelColumn": "label", "questionColumn": "question", "questions": 2}
    with pytest.raises(SpecError, match="duplicate") as caught:
        build_spec("vote", params, clip=("0", "1"), fractional_bits=0, contribution_bound=2, epsilon_millionths=1_000_000)
    assert_spec_error(caught, "params.classes[2]", "0")


def test_duplicate_regressor_rejected():
    params = dict(OLS_PARAMS, terms=[*OLS_PARAMS["terms"], {"column": "education", "power": 1, "transform": "identity"}])
    with pytest.raises(SpecError, match="duplicate") as caught:
        build_spec("ols", params, clip=("-1", "1"), fractional_bits=8, contribution_bound=1, epsilon_millionths=1_000_000)
    assert_spec_error(caught, "params.terms[4]", "education")


def test_unknown_transform_rejected():
    params = dict(OLS_PARAMS, response={"column": "wage", "power": 1, "transform": "exp"})
    with pytest.raises(SpecError) as caught:
        build_spec("ols", params, clip=("-1", "1"), fractional_bits=8, contribution_bound=1, epsilon_millionths=1_000_000)
    assert_spec_error(caught, "params.response.transform", "exp")


def test_schema_mismatch_rejected():
    with pytest.raises(SpecError, match="output names") as caught:
        QuerySpec.from_dict(example_document(schema=["x"]))
    assert_spec_error(caught, "schema", ["x"])


def test_clip_length_mismatch_rejected():
    with pytest.raises(SpecError, match="one \\[low, high\\] pair per output") as caught:
        QuerySpec.from_dict(example_document(clip=[["0", "1"], ["0", "1"]]))
    assert caught.value.field == "clip"


def test_clip_low_above_high_rejected():
    with pytest.raises(SpecError, match="low bound above high") as caught:
        QuerySpec.from_dict(example_document(clip=[["5", "1"]]))
    assert_spec_error(caught, "clip[0]", ["5", "1"])


@pytest.mark.parametrize("bound", ["1.0", "01", "-0", "1e3", "+1", ".5", "1.", " 1", "0x10"])
def test_non_canonical_decimal_rejected(bound):
    with pytest.raises(SpecError, match="canonical decimal") as caught:
        QuerySpec.from_dict(example_document(clip=[["0", bound]]))
    assert_spec_error(caught, "clip[0][1]", bound)


@pytest.mark.parametrize("epsilon", [0, -1, 100_000_001, 10**12])
def test_epsilon_out_of_range_rejected(epsilon):
    with pytest.raises(SpecError) as caught:
        example_spec(epsilon_millionths=epsilon)
    assert_spec_error(caught, "epsilon", epsilon)


@pytest.mark.parametrize("epsilon", [1, 500_000, 100_000_000])
def test_epsilon_in_range_accepted(epsilon):
    assert example_spec(epsilon_millionths=epsilon).epsilon == epsilon


def test_epsilon_zero_needs_exact_flag():
    with pytest.raises(SpecError, match="exact") as caught:
        example_spec(epsilon_millionths=0)
    assert_spec_error(caught, "epsilon", 0)
    spec = example_spec(epsilon_millionths=0, exact=True)
    assert spec.exact
    assert b'"exact":true' in spec.to_json_bytes()


def test_exact_flag_with_epsilon_rejected():
    with pytest.raises(SpecError, match="epsilon 0") as caught:
        example_spec(epsilon_millionths=500_000, exact=True)
    assert_spec_error(caught, "epsilon", 500_000)


def test_build_spec_rejects_float_clip():
    with pytest.raises(SpecError, match="floats") as caught:
        example_spec(clip=(0.0, 1.5))
    assert caught.value.field == "clip[0][0]"


# --- derived values -----------------------------------------------------------------------------


def test_max_abs_encoded_from_clip():
    spec = build_spec("mean", {"column": "wage"}, clip=[("-2.5", "1"), ("0", "3")], fractional_bits=4,
                      contribution_bound=3, epsilon_millionths=1_000_000)
    assert spec.max_abs_encoded == 48
    assert spec.clip_bounds == ((Fraction(-5, 2), Fraction(1)), (Fraction(0), Fraction(3)))


def test_max_abs_encoded_rounds_like_encoder():
    # 0.1 * 2^4 = 1.6, which the encoder rounds to 2.
    spec = example_spec(clip=("0", "0.1"), fractional_bits=4)
    assert spec.max_abs_encoded == 2


def test_validate_for_market_boundary():
    spec = example_spec(clip=("-1", "1"), fractional_bits=40)
    assert spec.max_abs_encoded == 2**40
    spec.validate_for_market(2**22 - 1)
    with pytest.raises(SpecError, match="reaches 2\\^62") as caught:
        spec.validate_for_market(2**22)
    assert_spec_error(caught, "clip[0]", ["-1", "1"])
    assert str(2**22) in str(caught.value)


def test_validate_for_market_names_widest_clip():
    spec = build_spec("mean", {"column": "wage"}, clip=[("0", "1000000"), ("0", "5")], fractional_bits=40,
                      contribution_bound=5, epsilon_millionths=1_000_000)
    assert spec.max_abs_encoded * 4096 >= ENCODED_SUM_LIMIT
    with pytest.raises(SpecError) as caught:
        spec.validate_for_market(4096)
    assert_spec_error(caught, "clip[0]", ["0", "1000000"])


def test_single_owner_bound_checked_on_build():
    with pytest.raises(SpecError, match="reaches 2\\^62"):
        example_spec(clip=("0", "4"), fractional_bits=60)


def test_contract_params_match_spec():
    spec = example_spec("ols")
    assert spec.contract_params() == {
        "templateId": 5,
        "outputLength": 15 + 5 + 2,
        "epsilon": 1_000_000,
        "maxAbsEncoded": 16_000_000 * 2**16,
    }


def test_template_ids_match_contract():
    expected = {"count": 0, "sum": 1, "mean": 2, "histogram": 3, "crosstab": 4, "ols": 5, "vote": 6}
    assert {name: template.template_id for name, template in TEMPLATES.items()} == expected
    for name, template_id in expected.items():
        assert template_by_id(template_id).name == name
    assert template_mask("count", "ols") == 0b100001
    with pytest.raises(SpecError):
        template_by_id(7)


def test_output_length_per_template():
    lengths = {name: example_spec(name).output_length for name in EXAMPLES}
    assert lengths == {"count": 1, "sum": 1, "mean": 2, "histogram": 4, "crosstab": 6, "ols": 22, "vote": 6}


def test_default_postprocess_and_raw():
    assert example_spec("mean").postprocess == "mean"
    assert example_spec("mean", postprocess="raw").postprocess == "raw"


# --- decimal strings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (-12, "-12"), ("1.50", "1.5"), (Decimal("-0.000"), "0"), (Fraction(1, 8), "0.125"), ("1e3", "1000")],
)
def test_format_decimal_canonical(value, text):
    assert format_decimal(value) == text


@pytest.mark.parametrize("value", [0.1, Fraction(1, 3), "abc", Decimal("NaN"), True])
def test_format_decimal_rejects(value):
    with pytest.raises(SpecError):
        format_decimal(value)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**9), max_value=10**9))
def test_decimal_text_round_trips(value):
    text = format_decimal(value)
    assert parse_decimal(text, "x") == Fraction(value)
    assert format_decimal(text) == text


# --- robustness ---------------------------------------------------------------------------------

json_leaves = st.one_of(
    st.integers(min_value=-(2**60), max_value=2**60),
    st.booleans(),
    st.text(max_size=8),
    st.sampled_from(["0", "-1.5", "wage", "identity", "log", "afam", "count"]),
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)


def replace_at(document, path, value):
    """Return a copy of `document` with the item at `path` (keys and indexes) replaced by `value`."""
    if not path:
        return value
    copy = list(document) if isinstance(document, list) else dict(document)
    copy[path[0]] = replace_at(document[path[0]], path[1:], value)
    return copy


def item_paths(document, prefix=()):
    yield prefix
    if isinstance(document, dict):
        for key, item in document.items():
            yield from item_paths(item, (*prefix, key))
    elif isinstance(document, list):
        for index, item in enumerate(document):
            yield from item_paths(item, (*prefix, index))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(EXAMPLES)), st.data(), json_values)
def test_mutated_spec_parses_or_raises_spec_error(template, data, value):
    document = example_spec(template).to_dict()
    path = data.draw(st.sampled_from(list(item_paths(document))))
    mutated = replace_at(document, path, value)
    try:
        spec = QuerySpec.from_dict(mutated)
    except SpecError:
        return
    assert QuerySpec.from_json_bytes(spec.to_json_bytes()) == spec


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_spec_error(data):
    with pytest.raises(SpecError):
        QuerySpec.from_json_bytes(data)


@pytest.mark.parametrize("levels", [17, 3_000, 200_000])
def test_deep_nesting_rejected_before_parsing(levels):
    """Regression: 200,000 nested brackets overflowed the C stack in json.loads (SIGSEGV) because
    py_ecc raises Python's recursion limit; the depth is now checked before parsing."""
    with pytest.raises(SpecError) as caught:
        load_strict(b"[" * levels + b"]" * levels)
    assert "nesting deeper than 16" in str(caught.value)


def test_brackets_inside_strings_ignored():
    document = load_strict(b'{"filter":"x in (\\"[[[[[[[[[[[[[[[[[[\\")"}')
    assert document["filter"].startswith("x in")


def test_oversized_document_rejected():
    with pytest.raises(SpecError) as caught:
        load_strict(b" " * (MAX_DOCUMENT_BYTES + 1))
    assert "larger than" in str(caught.value)
