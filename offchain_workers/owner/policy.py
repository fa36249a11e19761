"""Decide whether an owner joins a proposed query: spec checks, the on-chain policy, the local policy.

`check_spec` runs once per query and is shared by every owner of a fleet: the spec bytes must hash
to the on-chain `specHash`, parse as a canonical spec, and agree with the `QueryParams` the
contract enforces. `evaluate` then runs per owner. Its on-chain checks repeat the contract's
consent checks in `submitShares`, in the contract's order, so an owner never pays gas for a
submission the contract would reject. Its local checks are the owner's own allow-lists.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from pmsr_chain.types import OwnerInfo, QueryParams, Template

from ..errors import PmsrError, SpecError
from ..spec import QuerySpec, spec_hash
from .config import LocalPolicy

__all__ = [
    "Reason",
    "Decision",
    "SpecCheck",
    "CONTRACT_ERRORS",
    "reason_for_contract_error",
    "check_spec",
    "spec_columns",
    "evaluate",
]

logger = logging.getLogger(__name__)


class Reason(str, Enum):
    """Code of an owner's refusal or skip of a query, stored in the state database."""

    MALFORMED_SPEC = "malformed_spec"
    SPEC_HASH_MISMATCH = "spec_hash_mismatch"
    SPEC_PARAMS_MISMATCH = "spec_params_mismatch"
    NOT_REGISTERED = "not_registered"
    EXITING = "exiting"
    STAKE_TOO_LOW = "stake_too_low"
    POLICY_EXPIRED = "policy_expired"
    TEMPLATE_NOT_ALLOWED = "template_not_allowed"
    EXACT_NOT_ALLOWED = "exact_not_allowed"
    PRICE_BELOW_MINIMUM = "price_below_minimum"
    BUDGET_EXHAUSTED = "budget_exhausted"
    EPSILON_ABOVE_MAXIMUM = "epsilon_above_maximum"
    COLUMN_NOT_ALLOWED = "column_not_allowed"
    DATASET_UNUSABLE = "dataset_unusable"
    SUBMIT_DEADLINE_PASSED = "submit_deadline_passed"
    QUERY_FULL = "query_full"
    QUERY_CLOSED = "query_closed"
    ALREADY_SUBMITTED = "already_submitted"
    AGGREGATOR_KEYS_INVALID = "aggregator_keys_invalid"
    REJECTED_BY_CONTRACT = "rejected_by_contract"


# The contract's custom error for each refusal that mirrors an on-chain check of `submitShares`.
CONTRACT_ERRORS: dict[Reason, str] = {
    Reason.NOT_REGISTERED: "OwnerNotRegistered",
    Reason.EXITING: "OwnerExiting",
    Reason.STAKE_TOO_LOW: "StakeTooLow",
    Reason.POLICY_EXPIRED: "PolicyExpired",
    Reason.TEMPLATE_NOT_ALLOWED: "TemplateNotAllowed",
    Reason.EXACT_NOT_ALLOWED: "ExactQueryNotAllowed",
    Reason.PRICE_BELOW_MINIMUM: "PriceBelowMinimum",
    Reason.BUDGET_EXHAUSTED: "BudgetExceeded",
    Reason.SUBMIT_DEADLINE_PASSED: "DeadlinePassed",
    Reason.QUERY_FULL: "QueryFull",
    Reason.ALREADY_SUBMITTED: "AlreadySubmitted",
}
_REASONS_BY_ERROR = {error: reason for reason, error in CONTRACT_ERRORS.items()}


def reason_for_contract_error(error_name: str | None) -> Reason:
    """Return the refusal matching a `submitShares` revert, or `REJECTED_BY_CONTRACT` for any other error."""
    return _REASONS_BY_ERROR.get(error_name or "", Reason.REJECTED_BY_CONTRACT)


@dataclass(frozen=True)
class Decision:
    """An owner's decision on a query: `accepted`, or refused with a `code` and a readable `reason`."""

    accepted: bool
    reason: str
    code: Reason | None = None

    @classmethod
    def accept(cls, reason: str = "policy allows the query") -> Decision:
        return cls(True, reason)

    @classmethod
    def refuse(cls, code: Reason, reason: str) -> Decision:
        return cls(False, reason, code)


@dataclass(frozen=True)
class SpecCheck:
    """Result of `check_spec`: the parsed spec, or the refusal every owner shares."""

    spec: QuerySpec | None
    refusal: Decision | None

    @property
    def ok(self) -> bool:
        return self.refusal is None


def check_spec(spec_json: bytes, on_chain_hash: bytes, params: QueryParams) -> SpecCheck:
    """Check a proposed query's spec against its on-chain hash and parameters.

    It checks, in order, that keccak256(spec_json) equals `on_chain_hash`, that the bytes are a
    valid canonical spec, and that its template id, output length, epsilon and `maxAbsEncoded`
    equal the parameters'. Last, it checks `maxOwners * maxAbsEncoded < 2^62`.
    """
    computed = spec_hash(spec_json)
    if computed != bytes(on_chain_hash):
        return SpecCheck(None, Decision.refuse(
            Reason.SPEC_HASH_MISMATCH,
            f"keccak256 of the spec is 0x{computed.hex()} but the query's specHash is 0x{bytes(on_chain_hash).hex()}",
        ))
    try:
        spec = QuerySpec.from_json_bytes(spec_json)
    except (SpecError, PmsrError) as error:
        return SpecCheck(None, Decision.refuse(Reason.MALFORMED_SPEC, f"spec JSON is invalid: {error}"))

    expected = spec.contract_params()
    actual = {
        "templateId": params.template_id,
        "outputLength": params.output_length,
        "epsilon": params.epsilon,
        "maxAbsEncoded": params.max_abs_encoded,
    }
    differences = [f"{name} {actual[name]} (spec: {expected[name]})" for name in expected if actual[name] != expected[name]]
    if differences:
        return SpecCheck(spec, Decision.refuse(
            Reason.SPEC_PARAMS_MISMATCH, "on-chain params disagree with the spec: " + ", ".join(differences)
        ))
    try:
        spec.validate_for_market(params.max_owners)
    except SpecError as error:
        return SpecCheck(spec, Decision.refuse(Reason.SPEC_PARAMS_MISMATCH, str(error)))
    return SpecCheck(spec, None)


def spec_columns(spec: QuerySpec) -> frozenset[str]:
    """Return every column the spec's map and filter read."""
    columns = {use.column for use in spec.template_impl.column_uses(spec.params)}
    if spec.row_filter is not None:
        columns.update(spec.row_filter.columns)
    return frozenset(columns)


def evaluate(
    spec: QuerySpec,
    params: QueryParams,
    owner: OwnerInfo,
    local_policy: LocalPolicy,
    *,
    now: int,
    min_owner_stake: int,
    reserved_epsilon: int = 0,
    column_kinds: Mapping[str, str] | None = None,
) -> Decision:
    """Decide whether one owner joins a query whose spec passed `check_spec`.

    `now` is the latest block's timestamp. `reserved_epsilon` is epsilon this owner has committed to
    submissions the chain does not count yet (decided or in flight), so two queries seen together
    cannot both pass a budget that fits only one. `column_kinds` (from `tables.column_kinds`) adds
    a check that the owner's table can run the map.
    """
    decision = _check_on_chain_policy(params, owner, now=now, min_owner_stake=min_owner_stake,
                                      reserved_epsilon=reserved_epsilon)
    if decision is not None:
        return decision
    decision = _check_local_policy(spec, params, local_policy)
    if decision is not None:
        return decision
    if column_kinds is not None:
        try:
            spec.check_columns(column_kinds)
        except SpecError as error:
            return Decision.refuse(Reason.DATASET_UNUSABLE, f"the owner's table cannot run this map: {error}")
    return Decision.accept()


def _check_on_chain_policy(
    params: QueryParams, owner: OwnerInfo, *, now: int, min_owner_stake: int, reserved_epsilon: int
) -> Decision | None:
    policy = owner.policy
    if not owner.registered:
        return Decision.refuse(Reason.NOT_REGISTERED, "the owner is not registered")
    if owner.exit_requested_at != 0:
        return Decision.refuse(Reason.EXITING, f"the owner began its exit at {owner.exit_requested_at}")
    if owner.stake < min_owner_stake:
        return Decision.refuse(Reason.STAKE_TOO_LOW, f"stake {owner.stake} wei is below the minimum {min_owner_stake}")
    if now > policy.expires_at:
        return Decision.refuse(Reason.POLICY_EXPIRED, f"the policy expired at {policy.expires_at}, now {now}")
    if (policy.template_mask >> params.template_id) & 1 == 0:
        return Decision.refuse(
            Reason.TEMPLATE_NOT_ALLOWED,
            f"template {_template_name(params.template_id)} is not in the policy's mask {policy.template_mask:#x}",
        )
    if params.epsilon == 0 and not policy.allow_exact:
        return Decision.refuse(Reason.EXACT_NOT_ALLOWED, "the query is exact (epsilon 0) and the policy forbids exact queries")
    if params.price_per_owner < policy.min_price_per_query:
        return Decision.refuse(
            Reason.PRICE_BELOW_MINIMUM,
            f"price {params.price_per_owner} wei is below the policy's minimum {policy.min_price_per_query}",
        )
    committed = owner.epsilon_used + reserved_epsilon
    if committed + params.epsilon > policy.epsilon_budget:
        return Decision.refuse(
            Reason.BUDGET_EXHAUSTED,
            f"epsilon used {owner.epsilon_used} + reserved {reserved_epsilon} + query {params.epsilon} exceeds "
            f"the budget {policy.epsilon_budget} (millionths)",
        )
    return None


def _check_local_policy(spec: QuerySpec, params: QueryParams, local_policy: LocalPolicy) -> Decision | None:
    if local_policy.allowed_templates is not None and spec.template not in local_policy.allowed_templates:
        return Decision.refuse(
            Reason.TEMPLATE_NOT_ALLOWED,
            f"template {spec.template} is not in the local allow-list {sorted(local_policy.allowed_templates)}",
        )
    if params.price_per_owner < local_policy.min_price_wei:
        return Decision.refuse(
            Reason.PRICE_BELOW_MINIMUM,
            f"price {params.price_per_owner} wei is below the local minimum {local_policy.min_price_wei}",
        )
    maximum = local_policy.max_epsilon_per_query
    if maximum is not None and params.epsilon > maximum:
        return Decision.refuse(
            Reason.EPSILON_ABOVE_MAXIMUM,
            f"epsilon {params.epsilon} exceeds the local maximum per query {maximum} (millionths)",
        )
    if local_policy.allowed_columns is not None:
        denied = sorted(spec_columns(spec) - local_policy.allowed_columns)
        if denied:
            return Decision.refuse(
                Reason.COLUMN_NOT_ALLOWED,
                f"the query reads columns {denied} outside the local allow-list {sorted(local_policy.allowed_columns)}",
            )
    return None


def _template_name(template_id: int) -> str:
    try:
        return Template(template_id).name.lower()
    except ValueError:
        return f"id {template_id}"
