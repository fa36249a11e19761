"""Local acceptance policy of an aggregator: which proposed queries it accepts, and why not.

An aggregator is never slashed for a query it did not accept, so it accepts only what it can
serve. That means a fee at least its minimum, an output length it can afford to decrypt and store,
fewer queries in flight than its maximum, and a spec it can read. The spec must hash to the on-chain `specHash` and
agree with the parameters the contract enforces, because the aggregator's DP noise is computed from
the spec (sensitivity from `clip` and `contributionBound`, epsilon), while the contract checks only
the parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pmsr_chain.errors import ConfigurationError
from pmsr_chain.types import QueryParams

from ..dp import check_noise_headroom
from ..errors import PrivacyError, SpecError
from ..spec import QuerySpec, spec_hash

__all__ = ["AcceptancePolicy", "Decision", "evaluate_proposal"]

# The contract's default `maxOutputLength` in the local runner; a larger L costs more decryption
# work and storage per submission.
DEFAULT_MAX_OUTPUT_LENGTH = 512
DEFAULT_MAX_CONCURRENT_QUERIES = 8


@dataclass(frozen=True)
class AcceptancePolicy:
    """Limits an aggregator applies before accepting a query.

    `min_fee_wei` is the lowest `feePerAggregator` accepted. `max_output_length` bounds L, the number
    of 64-bit words per share. `max_concurrent_queries` bounds the accepted queries not yet
    published, cancelled or failed.
    """

    min_fee_wei: int = 0
    max_output_length: int = DEFAULT_MAX_OUTPUT_LENGTH
    max_concurrent_queries: int = DEFAULT_MAX_CONCURRENT_QUERIES

    def __post_init__(self) -> None:
        for name, minimum in (("min_fee_wei", 0), ("max_output_length", 1), ("max_concurrent_queries", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigurationError(f"policy {name} {value!r} is invalid; pass an integer >= {minimum}")

    @classmethod
    def from_json(cls, document: Any) -> AcceptancePolicy:
        """Read `{"minFeeWei": ..., "maxOutputLength": ..., "maxConcurrentQueries": ...}`; absent keys keep their defaults."""
        if not isinstance(document, Mapping):
            raise ConfigurationError("policy must be an object with minFeeWei, maxOutputLength and maxConcurrentQueries")
        unknown = sorted(set(document) - set(_POLICY_KEYS))
        if unknown:
            raise ConfigurationError(f"policy has unknown keys {unknown}; known keys: {sorted(_POLICY_KEYS)}")
        values = dict(document)
        # Large wei amounts may be written as decimal strings, which JSON tools keep exact.
        if isinstance(values.get("minFeeWei"), str) and values["minFeeWei"].isdigit():
            values["minFeeWei"] = int(values["minFeeWei"])
        return cls(**{_POLICY_KEYS[name]: value for name, value in values.items()})

    def to_json(self) -> dict[str, int]:
        return {name: getattr(self, attribute) for name, attribute in _POLICY_KEYS.items()}


_POLICY_KEYS = {
    "minFeeWei": "min_fee_wei",
    "maxOutputLength": "max_output_length",
    "maxConcurrentQueries": "max_concurrent_queries",
}


@dataclass(frozen=True)
class Decision:
    """Outcome of `evaluate_proposal`. An accepted decision carries the parsed spec and this aggregator's index."""

    accepted: bool
    reason: str
    aggregator_index: int | None = None
    spec: QuerySpec | None = None


def evaluate_proposal(
    policy: AcceptancePolicy,
    *,
    aggregator: str,
    params: QueryParams,
    spec_json: bytes,
    onchain_spec_hash: bytes,
    active_queries: int,
    now: int,
) -> Decision:
    """Decide whether `aggregator` accepts a proposed query; `now` is the latest block's timestamp.

    The checks run in a fixed order, and the first failure is the reason. The order: not assigned,
    accept deadline passed, fee below minimum, output length above maximum, too many queries in
    flight, spec hash mismatch, malformed spec, spec disagreeing with the parameters, and noise
    that could wrap.
    """
    try:
        index = params.aggregators.index(aggregator)
    except ValueError:
        return Decision(False, f"aggregator {aggregator} is not assigned to this query")
    if now > params.accept_deadline:
        return Decision(False, f"accept deadline {params.accept_deadline} passed (latest block time {now})")
    if params.fee_per_aggregator < policy.min_fee_wei:
        return Decision(False, f"fee {params.fee_per_aggregator} wei is below the minimum {policy.min_fee_wei} wei")
    if params.output_length > policy.max_output_length:
        return Decision(False, f"output length {params.output_length} is above the maximum {policy.max_output_length}")
    if active_queries >= policy.max_concurrent_queries:
        return Decision(
            False, f"{active_queries} queries in flight reach the maximum {policy.max_concurrent_queries}"
        )

    computed_hash = spec_hash(spec_json)
    if computed_hash != onchain_spec_hash:
        return Decision(
            False, f"spec hash mismatch: keccak256(specJson) is {computed_hash.hex()}, the event says {onchain_spec_hash.hex()}"
        )
    try:
        spec = QuerySpec.from_json_bytes(spec_json)
    except SpecError as error:
        return Decision(False, f"malformed spec: {error}")
    except (UnicodeDecodeError, ValueError) as error:
        return Decision(False, f"malformed spec: {error}")

    mismatch = _parameter_mismatch(spec, params)
    if mismatch is not None:
        return Decision(False, mismatch)
    try:
        check_noise_headroom(spec, params.max_owners, len(params.aggregators))
    except (PrivacyError, SpecError) as error:
        return Decision(False, f"unsafe noise bound: {error}")
    return Decision(True, "policy allows it", aggregator_index=index, spec=spec)


def _parameter_mismatch(spec: QuerySpec, params: QueryParams) -> str | None:
    onchain = {
        "templateId": params.template_id,
        "outputLength": params.output_length,
        "epsilon": params.epsilon,
        "maxAbsEncoded": params.max_abs_encoded,
    }
    for name, expected in spec.contract_params().items():
        if onchain[name] != expected:
            return f"spec disagrees with the on-chain parameters: {name} is {onchain[name]} on-chain but {expected} in the spec"
    return None
