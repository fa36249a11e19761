"""Owner policy: every refusal reason, in the agent and, for on-chain rules, in the contract too."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from offchain_workers.owner import CONTRACT_ERRORS, LocalPolicy, Reason, Status, check_spec, evaluate
from offchain_workers.owner.policy import reason_for_contract_error
from offchain_workers.spec import build_spec
from pmsr_chain import ContractRevertError, OwnerInfo, OwnerPolicy, QueryParams, SubmissionState, Template
from pmsr_chain.events import QueryProposed
from pmsr_chain.testing import random_ciphertexts

NOW = 1_700_000_000
AGGREGATORS = ("0x" + "a1" * 20, "0x" + "b2" * 20)


# --------------------------------------------------------------------------------------------------
# Pure checks


def _params(spec, **overrides) -> QueryParams:
    contract = spec.contract_params()
    params = QueryParams(
        template_id=contract["templateId"], output_length=contract["outputLength"], epsilon=contract["epsilon"],
        price_per_owner=10**15, min_owners=1, max_owners=10, aggregators=AGGREGATORS, fee_per_aggregator=0,
        accept_deadline=NOW + 10, submit_deadline=NOW + 20, commit_deadline=NOW + 700, reveal_deadline=NOW + 800,
        max_abs_encoded=contract["maxAbsEncoded"],
    )
    return replace(params, **overrides)


def _owner(**policy_overrides) -> OwnerInfo:
    policy = OwnerPolicy(min_price_per_query=0, epsilon_budget=10_000_000, template_mask=0x7F, allow_exact=True,
                         expires_at=NOW + 3_600)
    return OwnerInfo(stake=10**16, policy=replace(policy, **policy_overrides), epsilon_used=0, open_submissions=0,
                     exit_requested_at=0, registered=True, dataset_commitment=bytes(32))


def test_check_spec_accepts_matching_spec(sum_spec):
    spec = sum_spec(epsilon=500_000, bound="100")
    check = check_spec(spec.to_json_bytes(), spec.hash, _params(spec))
    assert check.ok
    assert check.spec == spec


def test_check_spec_rejects_hash_mismatch(sum_spec):
    spec = sum_spec()
    check = check_spec(spec.to_json_bytes(), bytes(32), _params(spec))
    assert check.refusal.code == Reason.SPEC_HASH_MISMATCH
    assert "0x" + spec.hash.hex() in check.refusal.reason


@pytest.mark.parametrize("spec_json", [b'{"template":', b"[]", b'{"version": 1}', b"\xff\xfe"])
def test_check_spec_rejects_malformed_json(spec_json, sum_spec):
    from eth_utils import keccak

    check = check_spec(spec_json, keccak(spec_json), _params(sum_spec()))
    assert check.spec is None
    assert check.refusal.code == Reason.MALFORMED_SPEC


@pytest.mark.parametrize(
    "overrides, named",
    [
        ({"epsilon": 7}, "epsilon 7"),
        ({"template_id": int(Template.COUNT)}, "templateId 0"),
        ({"output_length": 2}, "outputLength 2"),
        ({"max_abs_encoded": 2**40}, "maxAbsEncoded 1099511627776"),
    ],
)
def test_check_spec_rejects_params_mismatch(overrides, named, sum_spec):
    spec = sum_spec()
    check = check_spec(spec.to_json_bytes(), spec.hash, _params(spec, **overrides))
    assert check.refusal.code == Reason.SPEC_PARAMS_MISMATCH
    assert named in check.refusal.reason


def test_check_spec_rejects_encoded_bound_overflow():
    spec = build_spec("sum", {"column": "x"}, clip=("-1000000", "1000000"), fractional_bits=40,
                      contribution_bound=1, epsilon_millionths=0, exact=True)
    check = check_spec(spec.to_json_bytes(), spec.hash, _params(spec, max_owners=10**6))
    assert check.refusal.code == Reason.SPEC_PARAMS_MISMATCH
    assert "2^62" in check.refusal.reason


@pytest.mark.parametrize(
    "owner, local, params_overrides, reserved, code",
    [
        (_owner(), LocalPolicy(), {}, 0, None),
        (replace(_owner(), registered=False), LocalPolicy(), {}, 0, Reason.NOT_REGISTERED),
        (replace(_owner(), exit_requested_at=NOW - 1), LocalPolicy(), {}, 0, Reason.EXITING),
        (replace(_owner(), stake=1), LocalPolicy(), {}, 0, Reason.STAKE_TOO_LOW),
        (_owner(expires_at=NOW - 1), LocalPolicy(), {}, 0, Reason.POLICY_EXPIRED),
        (_owner(template_mask=0b1), LocalPolicy(), {}, 0, Reason.TEMPLATE_NOT_ALLOWED),
        (_owner(allow_exact=False), LocalPolicy(), {}, 0, Reason.EXACT_NOT_ALLOWED),
        (_owner(min_price_per_query=10**16), LocalPolicy(), {}, 0, Reason.PRICE_BELOW_MINIMUM),
        (_owner(epsilon_budget=1_000_000), LocalPolicy(), {"epsilon": 600_000}, 600_000, Reason.BUDGET_EXHAUSTED),
        (_owner(epsilon_budget=1_000_000), LocalPolicy(), {"epsilon": 600_000}, 400_000, None),
        (_owner(), LocalPolicy(allowed_templates=frozenset({"mean"})), {}, 0, Reason.TEMPLATE_NOT_ALLOWED),
        (_owner(), LocalPolicy(min_price_wei=10**18), {}, 0, Reason.PRICE_BELOW_MINIMUM),
        (_owner(), LocalPolicy(max_epsilon_per_query=100), {"epsilon": 101}, 0, Reason.EPSILON_ABOVE_MAXIMUM),
        (_owner(), LocalPolicy(allowed_columns=frozenset({"y"})), {}, 0, Reason.COLUMN_NOT_ALLOWED),
        (_owner(), LocalPolicy(allowed_columns=frozenset({"x"})), {}, 0, None),
    ],
)
def test_evaluate_reasons(owner, local, params_overrides, reserved, code, sum_spec):
    spec = sum_spec()
    decision = evaluate(spec, _params(spec, **params_overrides), owner, local, now=NOW, min_owner_stake=10**15,
                        reserved_epsilon=reserved, column_kinds={"x": "number"})
    assert decision.accepted is (code is None)
    assert decision.code == code


def test_evaluate_rejects_table_without_column(sum_spec):
    spec = sum_spec("income")
    decision = evaluate(spec, _params(spec), _owner(), LocalPolicy(), now=NOW, min_owner_stake=0,
                        column_kinds={"x": "number"})
    assert decision.code == Reason.DATASET_UNUSABLE
    assert "income" in decision.reason


def test_contract_error_names_map_back():
    for reason, error_name in CONTRACT_ERRORS.items():
        assert reason_for_contract_error(error_name) == reason
    assert reason_for_contract_error("SomethingElse") == Reason.REJECTED_BY_CONTRACT


# --------------------------------------------------------------------------------------------------
# Refusals on the chain: the agent refuses, stores and logs; the contract rejects the same submission


def _assert_contract_rejects(owner_client, query_id: int, params: QueryParams, reason: Reason) -> None:
    ciphertexts = random_ciphertexts(params.output_length, len(params.aggregators))
    with pytest.raises(ContractRevertError) as caught:
        owner_client.submit_shares(query_id, ciphertexts)
    assert caught.value.error_name == CONTRACT_ERRORS[reason]


def _refusal(fleet, owner: str, query_id: int):
    row = fleet.state.decision(owner, query_id)
    assert row is not None
    assert row.status == Status.REFUSED
    return row


def _expire_soon(harness):
    return harness.default_policy(expires_at=harness.now() + 30)


ON_CHAIN_CASES = {
    "price": (lambda h: h.default_policy(min_price_per_query=10**16), {}, Reason.PRICE_BELOW_MINIMUM),
    "template": (lambda h: h.default_policy(template_mask=1 << int(Template.OLS)), {}, Reason.TEMPLATE_NOT_ALLOWED),
    "exact": (lambda h: h.default_policy(allow_exact=False), {}, Reason.EXACT_NOT_ALLOWED),
    "expired": (_expire_soon, {"expire": True}, Reason.POLICY_EXPIRED),
    "exiting": (lambda h: h.default_policy(), {"exit": True}, Reason.EXITING),
}


@pytest.mark.parametrize("case", sorted(ON_CHAIN_CASES))
def test_on_chain_refusal_matches_contract(case, harness, market, aggregators, make_owners, analyst, open_fleets,
                                           sum_spec, caplog):
    make_policy, options, reason = ON_CHAIN_CASES[case]
    owners = make_owners([1.0], policy=make_policy(harness))
    owner, client = owners.addresses[0], owners.clients[0]
    if options.get("expire"):
        harness.advance_past(market.owner_info(owner).policy.expires_at)
    if options.get("exit"):
        client.begin_owner_exit()
    fleet = owners.fleet(market)
    open_fleets.append(fleet)
    query_id = analyst.propose(sum_spec(), price_per_owner=10**15, min_owners=1, max_owners=2,
                               aggregators=aggregators.addresses)

    with caplog.at_level(logging.INFO, logger="offchain_workers.owner.agent"):
        actions = fleet.run_once()
    assert [(item.action, item.code) for item in actions] == [("refused", reason.value)]
    row = _refusal(fleet, owner, query_id)
    assert row.code == reason.value
    assert f"query {query_id} owner {owner}: refused ({reason.value})" in caplog.text

    aggregators.accept(query_id)
    assert fleet.run_once() == []
    assert market.submission_state(query_id, owner) == SubmissionState.NONE
    _assert_contract_rejects(client, query_id, market.query_info(query_id).params, reason)


def test_budget_counts_reserved_epsilon(harness, market, aggregators, make_owners, analyst, open_fleets, sum_spec):
    # Two queries each needing 60% of the budget, seen in the same pass: only the first is joined.
    owners = make_owners([1.0], policy=harness.default_policy(epsilon_budget=1_000_000))
    owner, client = owners.addresses[0], owners.clients[0]
    fleet = owners.fleet(market)
    open_fleets.append(fleet)
    spec = sum_spec(epsilon=600_000, bound="100")
    first, second = (
        analyst.propose(spec, price_per_owner=0, min_owners=1, max_owners=2, aggregators=aggregators.addresses)
        for _ in range(2)
    )

    actions = fleet.run_once()
    assert [(item.query_id, item.action, item.code) for item in actions] == [
        (first, "joined", None), (second, "refused", Reason.BUDGET_EXHAUSTED.value),
    ]
    assert "reserved 600000" in _refusal(fleet, owner, second).reason

    aggregators.accept(first)
    aggregators.accept(second)
    assert [item.action for item in fleet.run_once()] == ["submitted"]
    assert market.owner_info(owner).epsilon_used == 600_000
    _assert_contract_rejects(client, second, market.query_info(second).params, Reason.BUDGET_EXHAUSTED)


@pytest.mark.parametrize(
    "local_policy, spec_options, code",
    [
        (LocalPolicy(allowed_columns=frozenset({"y"})), {}, Reason.COLUMN_NOT_ALLOWED),
        (LocalPolicy(max_epsilon_per_query=100_000), {"epsilon": 500_000, "bound": "100"}, Reason.EPSILON_ABOVE_MAXIMUM),
        (LocalPolicy(allowed_templates=frozenset({"ols"})), {}, Reason.TEMPLATE_NOT_ALLOWED),
        (LocalPolicy(min_price_wei=10**16), {}, Reason.PRICE_BELOW_MINIMUM),
    ],
)
def test_local_refusal_never_submits(local_policy, spec_options, code, market, aggregators, make_owners, analyst,
                                     open_fleets, sum_spec):
    owners = make_owners([1.0], local_policy=local_policy)
    owner = owners.addresses[0]
    fleet = owners.fleet(market)
    open_fleets.append(fleet)
    query_id = analyst.propose(sum_spec(**spec_options), price_per_owner=10**15, min_owners=1, max_owners=2,
                               aggregators=aggregators.addresses)
    assert [(item.action, item.code) for item in fleet.run_once()] == [("refused", code.value)]
    aggregators.accept(query_id)
    assert fleet.run_once() == []
    assert market.submission_state(query_id, owner) == SubmissionState.NONE
    assert _refusal(fleet, owner, query_id).code == code.value


def test_malformed_spec_refused_by_all_owners(harness, market, aggregators, make_owners, analyst, open_fleets,
                                              sum_spec, caplog):
    owners = make_owners([1.0, 2.0])
    fleet = owners.fleet(market)
    open_fleets.append(fleet)
    params = analyst.build_params(sum_spec(), price_per_owner=0, min_owners=1, max_owners=2,
                                  aggregators=aggregators.addresses)
    query_id = analyst.market.propose_query(params, b'{"template": "sum", "epsilon": 0.5}').query_id

    with caplog.at_level(logging.INFO, logger="offchain_workers.owner.agent"):
        actions = fleet.run_once()
    assert {(item.owner, item.code) for item in actions} == {(o, "malformed_spec") for o in owners.addresses}
    assert f"query {query_id}: refused by all 2 owners (malformed_spec)" in caplog.text
    for owner in owners.addresses:
        assert _refusal(fleet, owner, query_id).code == "malformed_spec"


def test_spec_disagreeing_with_params_refused(harness, market, aggregators, make_owners, analyst, open_fleets,
                                             sum_spec):
    owners = make_owners([1.0])
    fleet = owners.fleet(market)
    open_fleets.append(fleet)
    spec = sum_spec()
    params = analyst.build_params(spec, price_per_owner=0, min_owners=1, max_owners=2, aggregators=aggregators.addresses)
    # The spec is exact, but the params ask for epsilon 1.0: aggregators would add noise the owner never agreed to.
    query_id = analyst.market.propose_query(replace(params, epsilon=1_000_000), spec.to_json_bytes()).query_id

    assert [item.code for item in fleet.run_once()] == ["spec_params_mismatch"]
    assert "epsilon 1000000 (spec: 0)" in _refusal(fleet, owners.addresses[0], query_id).reason


def test_spec_hash_mismatch_refused(harness, market, make_owners, analyst, open_fleets, sum_spec, aggregators):
    # The contract hashes the spec itself, so only a forged or corrupted event can disagree.
    owners = make_owners([1.0])
    fleet = owners.fleet(market)
    open_fleets.append(fleet)
    spec = sum_spec()
    params = analyst.build_params(spec, price_per_owner=0, min_owners=1, max_owners=2, aggregators=aggregators.addresses)
    record = QueryProposed(
        block_number=harness.w3.eth.block_number, transaction_hash="0x" + "00" * 32, log_index=0,
        address=market.address, query_id=10**9, analyst=analyst.address, spec_hash=bytes(32), params=params,
        spec_json=spec.to_json_bytes(),
    )
    actions = []
    fleet._handle_events([record], harness.now(), actions)
    assert [item.code for item in actions] == ["spec_hash_mismatch"]
    assert _refusal(fleet, owners.addresses[0], 10**9).code == "spec_hash_mismatch"
