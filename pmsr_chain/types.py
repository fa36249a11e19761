"""Python mirrors of the `IDataMarket` structs and enums.

Field order follows the Solidity declarations, so `to_abi()` yields the tuple the ABI encoder expects
and `from_abi()` reads the tuple the decoder returns. Names are the Solidity names in snake_case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any

from eth_utils import is_address, to_checksum_address

from .errors import InvalidInputError

__all__ = [
    "QueryStatus",
    "CancelReason",
    "SubmissionState",
    "Template",
    "OwnerPolicy",
    "QueryParams",
    "OwnerInfo",
    "AggregatorInfo",
    "QueryInfo",
    "AggregatorQueryState",
    "STRUCT_TYPES",
    "ENUM_TYPES",
    "ciphertext_length",
    "to_bytes32",
]

UINT32_MAX = 2**32 - 1
UINT40_MAX = 2**40 - 1
UINT64_MAX = 2**64 - 1
UINT96_MAX = 2**96 - 1


class QueryStatus(IntEnum):
    NONE = 0
    PROPOSED = 1  # waiting for every aggregator to accept
    OPEN = 2  # accepting submissions, then complaints, commits and reveals
    PUBLISHED = 3
    CANCELLED = 4
    FAILED = 5


class CancelReason(IntEnum):
    NOT_ACCEPTED = 0
    TOO_FEW_OWNERS = 1


class SubmissionState(IntEnum):
    NONE = 0
    SUBMITTED = 1
    EXCLUDED = 2  # an aggregator complained: epsilon released, never paid
    SETTLED = 3  # paid (published query) or budget released (cancelled or failed query)


class Template(IntEnum):
    """Map template ids shared by the contract and the off-chain workers."""

    COUNT = 0
    SUM = 1
    MEAN = 2
    HISTOGRAM = 3
    CROSSTAB = 4
    OLS = 5
    VOTE = 6


def ciphertext_length(output_length: int) -> int:
    """Bytes of one submitted ciphertext: ephemeral key (32) + share (8 per coordinate) + tag (16)."""
    return 32 + 8 * output_length + 16


def to_bytes32(value: bytes | str, name: str = "value") -> bytes:
    """Accept 32 raw bytes or a `0x`-prefixed 64-digit hex string."""
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value.removeprefix("0x"))
        except ValueError:
            raise InvalidInputError(f"{name} must be 32 bytes or 64 hex digits, got {value!r}") from None
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise InvalidInputError(f"{name} must be exactly 32 bytes, got {value!r}")
    return bytes(value)


def _check_uint(name: str, value: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise InvalidInputError(f"{name} must be an integer in 0..{maximum}, got {value!r}")


def _as_plain(value: Any) -> Any:
    if isinstance(value, IntEnum):
        return int(value)
    if isinstance(value, _AbiStruct):
        return value.to_abi()
    if isinstance(value, tuple):
        return [_as_plain(item) for item in value]
    return value


class _AbiStruct:
    """Tuple conversion shared by the struct mirrors."""

    def to_abi(self) -> tuple[Any, ...]:
        return tuple(_as_plain(getattr(self, f.name)) for f in fields(self))  # type: ignore[arg-type]


@dataclass(frozen=True)
class OwnerPolicy(_AbiStruct):
    """An owner's consent policy.

    `epsilon_budget` is the lifetime privacy budget in millionths; `template_mask` bit i allows
    template id i; `expires_at` is a Unix time after which the owner joins no new query.
    """

    min_price_per_query: int
    epsilon_budget: int
    template_mask: int
    allow_exact: bool
    expires_at: int

    def __post_init__(self) -> None:
        _check_uint("min_price_per_query", self.min_price_per_query, UINT96_MAX)
        _check_uint("epsilon_budget", self.epsilon_budget, UINT64_MAX)
        _check_uint("template_mask", self.template_mask, UINT32_MAX)
        _check_uint("expires_at", self.expires_at, UINT40_MAX)

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> OwnerPolicy:
        price, budget, mask, allow_exact, expires = value
        return cls(int(price), int(budget), int(mask), bool(allow_exact), int(expires))


@dataclass(frozen=True)
class QueryParams(_AbiStruct):
    """The part of a query the contract enforces; the full spec is the JSON behind `specHash`."""

    template_id: int
    output_length: int
    epsilon: int
    price_per_owner: int
    min_owners: int
    max_owners: int
    aggregators: tuple[str, ...]
    fee_per_aggregator: int
    accept_deadline: int
    submit_deadline: int
    commit_deadline: int
    reveal_deadline: int
    max_abs_encoded: int

    def __post_init__(self) -> None:
        _check_uint("template_id", self.template_id, 255)
        _check_uint("output_length", self.output_length, UINT32_MAX)
        _check_uint("epsilon", self.epsilon, UINT64_MAX)
        _check_uint("price_per_owner", self.price_per_owner, UINT96_MAX)
        _check_uint("min_owners", self.min_owners, UINT32_MAX)
        _check_uint("max_owners", self.max_owners, UINT32_MAX)
        _check_uint("fee_per_aggregator", self.fee_per_aggregator, UINT96_MAX)
        for name in ("accept_deadline", "submit_deadline", "commit_deadline", "reveal_deadline"):
            _check_uint(name, getattr(self, name), UINT40_MAX)
        _check_uint("max_abs_encoded", self.max_abs_encoded, UINT64_MAX)
        for address in self.aggregators:
            if not is_address(address):
                raise InvalidInputError(f"aggregator {address!r} is not an address")
        # Normalise so equality with decoded params holds whatever the input case or sequence type.
        object.__setattr__(self, "aggregators", tuple(to_checksum_address(a) for a in self.aggregators))

    @property
    def required_payment(self) -> int:
        """Wei that `proposeQuery` must receive: `pricePerOwner * maxOwners + fee * K`."""
        return self.price_per_owner * self.max_owners + self.fee_per_aggregator * len(self.aggregators)

    @property
    def ciphertext_length(self) -> int:
        return ciphertext_length(self.output_length)

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> QueryParams:
        (template_id, output_length, epsilon, price, min_owners, max_owners, aggregators, fee,
         accept, submit, commit, reveal, max_abs) = value
        return cls(
            int(template_id), int(output_length), int(epsilon), int(price), int(min_owners), int(max_owners),
            tuple(aggregators), int(fee), int(accept), int(submit), int(commit), int(reveal), int(max_abs),
        )


@dataclass(frozen=True)
class OwnerInfo(_AbiStruct):
    stake: int
    policy: OwnerPolicy
    epsilon_used: int  # reserved plus spent, in millionths
    open_submissions: int  # submissions not yet claimed, released or excluded
    exit_requested_at: int  # 0 unless exiting
    registered: bool
    dataset_commitment: bytes

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> OwnerInfo:
        stake, policy, used, open_submissions, exit_at, registered, commitment = value
        return cls(int(stake), OwnerPolicy.from_abi(policy), int(used), int(open_submissions), int(exit_at),
                   bool(registered), bytes(commitment))


@dataclass(frozen=True)
class AggregatorInfo(_AbiStruct):
    stake: int
    encryption_key: bytes
    open_queries: int  # accepted queries not yet published, cancelled or failed
    exit_requested_at: int
    registered: bool

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> AggregatorInfo:
        stake, key, open_queries, exit_at, registered = value
        return cls(int(stake), bytes(key), int(open_queries), int(exit_at), bool(registered))


@dataclass(frozen=True)
class QueryInfo(_AbiStruct):
    analyst: str
    status: QueryStatus
    spec_hash: bytes
    params: QueryParams
    accepted_count: int
    submitted_count: int
    excluded_count: int
    committed_count: int
    revealed_count: int
    closed_at: int  # 0 until submissions close by reaching maxOwners
    escrow: int  # wei still held for this query
    slashed: int  # wei slashed from aggregators, owed to the analyst
    analyst_refunded: bool

    @property
    def included_count(self) -> int:
        return self.submitted_count - self.excluded_count

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> QueryInfo:
        (analyst, status, spec_hash, params, accepted, submitted, excluded, committed, revealed, closed_at,
         escrow, slashed, refunded) = value
        return cls(
            to_checksum_address(analyst), QueryStatus(status), bytes(spec_hash), QueryParams.from_abi(params),
            int(accepted), int(submitted), int(excluded), int(committed), int(revealed), int(closed_at),
            int(escrow), int(slashed), bool(refunded),
        )


@dataclass(frozen=True)
class AggregatorQueryState(_AbiStruct):
    accepted: bool
    committed: bool
    revealed: bool
    fee_claimed: bool
    commitment: bytes

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> AggregatorQueryState:
        accepted, committed, revealed, fee_claimed, commitment = value
        return cls(bool(accepted), bool(committed), bool(revealed), bool(fee_claimed), bytes(commitment))


# Solidity struct and enum names (the last part of an ABI `internalType`) to their Python mirrors.
STRUCT_TYPES: dict[str, type[Any]] = {
    "OwnerPolicy": OwnerPolicy,
    "QueryParams": QueryParams,
    "OwnerInfo": OwnerInfo,
    "AggregatorInfo": AggregatorInfo,
    "QueryInfo": QueryInfo,
    "AggregatorQueryState": AggregatorQueryState,
}
ENUM_TYPES: dict[str, type[IntEnum]] = {
    "QueryStatus": QueryStatus,
    "CancelReason": CancelReason,
    "SubmissionState": SubmissionState,
}
