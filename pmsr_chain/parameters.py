"""`MarketParameters`: the immutable constructor arguments of `DataMarket`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from .abi import snake_case
from .errors import InvalidInputError

__all__ = ["MarketParameters", "ETHER"]

ETHER = 10**18
UINT256_MAX = 2**256 - 1


@dataclass(frozen=True)
class MarketParameters:
    """Constructor arguments of `DataMarket`, in constructor order; amounts in wei, periods in seconds.

    Trade-offs of the defaults:
    - `min_owner_stake` (0.01 ether) prices a Sybil owner: higher stakes make it costlier for an
      analyst to surround one honest owner with owners it controls, but shut out small owners.
    - `min_aggregator_stake` (1 ether) and `slash_amount` (0.5 ether) make a missed commit or reveal
      cost more than a typical fee. A slash larger than an aggregator's stake takes the whole stake.
    - `unbonding_period` (7 days) keeps stakes slashable after an exit request.
    - `complaint_period` (1 hour) is the time aggregators get to decrypt every ciphertext and
      complain, and it delays every commit by that much.
    - `max_aggregators` (5) bounds K, so per-query loops over aggregators stay cheap.
    - `max_output_length` (4096) bounds L, the calldata of each submission (`32 + 8L + 16` bytes
      per aggregator) and the reveal loop.
    """

    min_owner_stake: int = ETHER // 100
    min_aggregator_stake: int = ETHER
    unbonding_period: int = 7 * 24 * 3600
    complaint_period: int = 3600
    slash_amount: int = ETHER // 2
    max_aggregators: int = 5
    max_output_length: int = 4096

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= UINT256_MAX:
                raise InvalidInputError(f"{item.name} must be an integer in 0..2^256-1, got {value!r}")
        if self.min_owner_stake == 0:
            raise InvalidInputError("min_owner_stake must be positive: a zero stake makes Sybil owners free")
        if self.min_aggregator_stake == 0:
            raise InvalidInputError("min_aggregator_stake must be positive: slashing needs a stake to take")
        if self.slash_amount == 0:
            raise InvalidInputError("slash_amount must be positive: a zero slash does not deter missed deadlines")
        if self.max_aggregators < 2:
            raise InvalidInputError(f"max_aggregators must be at least 2 (K >= 2 for secrecy), got {self.max_aggregators}")
        if self.max_output_length < 1:
            raise InvalidInputError(f"max_output_length must be at least 1, got {self.max_output_length}")

    def constructor_arguments(self) -> list[int]:
        return [getattr(self, item.name) for item in fields(self)]

    def to_json(self) -> dict[str, int]:
        """Return the parameters keyed by their Solidity (camelCase) names."""
        return {_camel_case(name): value for name, value in asdict(self).items()}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> MarketParameters:
        """Read parameters keyed by Solidity names, as written by `to_json`."""
        known = {_camel_case(item.name): item.name for item in fields(cls)}
        unknown = sorted(set(document) - set(known))
        if unknown:
            raise InvalidInputError(f"unknown market parameters {unknown}; expected keys {sorted(known)}")
        missing = sorted(set(known) - set(document))
        if missing:
            raise InvalidInputError(f"missing market parameters {missing}")
        return cls(**{known[key]: int(value) for key, value in document.items()})


def _camel_case(name: str) -> str:
    head, *rest = name.split("_")
    camel = head + "".join(part.capitalize() for part in rest)
    assert snake_case(camel) == name
    return camel
