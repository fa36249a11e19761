"""Analyst API: propose a query with its exact escrow, follow it, read the result, take the refund.

    analyst = Analyst(market.with_sender(sender))
    query_id = analyst.propose(spec, price_per_owner=10**15, min_owners=50, max_owners=100,
                               fee_per_aggregator=10**16, aggregators="auto")
    result = analyst.wait_for_result(query_id, timeout=600, progress=print)
    print(result.output)          # the template's post-processed result, e.g. OLS coefficients
    analyst.refund(query_id)      # the price of the owners who did not take part

Deadlines are given as windows in seconds and counted from the latest block's timestamp:
`acceptDeadline = now + accept_window`, `submitDeadline = acceptDeadline + submit_window`,
`commitDeadline = submitDeadline + complaintPeriod + commit_window` (aggregators commit only after
the complaint period) and `revealDeadline = commitDeadline + reveal_window`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from pmsr_chain import MarketClient, QueryInfo, QueryParams, QueryStatus, latest_timestamp
from pmsr_chain.errors import ConfigurationError, InvalidInputError, PmsrError
from pmsr_chain.events import AggregatorRegistered, AnalystRefunded, QueryCancelled, QueryProposed

from .dp import check_noise_headroom, result_noise_sd
from .encoding import decode_fixed
from .errors import TemplateError
from .mapping import postprocess
from .spec import QuerySpec

__all__ = [
    "AnalystError",
    "QueryCancelledError",
    "QueryFailedError",
    "ResultTimeoutError",
    "ResultNotPublishedError",
    "QueryProgress",
    "QueryResult",
    "Analyst",
]

logger = logging.getLogger(__name__)

MIN_AGGREGATORS = 2


class AnalystError(PmsrError, RuntimeError):
    """A query could not be proposed, followed or settled as the analyst asked."""


class QueryCancelledError(AnalystError):
    """The query was cancelled (not accepted in time, or too few owners); the escrow is refundable."""

    def __init__(self, message: str, *, query_id: int) -> None:
        super().__init__(message)
        self.query_id = query_id


class QueryFailedError(AnalystError):
    """An aggregator missed its commit or reveal deadline; the escrow and the slashed stake are refundable."""

    def __init__(self, message: str, *, query_id: int) -> None:
        super().__init__(message)
        self.query_id = query_id


class ResultTimeoutError(AnalystError, TimeoutError):
    """`wait_for_result` ran out of time before the query settled."""


class ResultNotPublishedError(AnalystError):
    """`result` was asked for a query that has no published result."""


@dataclass(frozen=True)
class QueryProgress:
    """A query's state at one block, for progress reports.

    `phase` is one of: accepting, submitting, complaints, committing, revealing, published,
    cancelled, failed.
    """

    query_id: int
    phase: str
    status: QueryStatus
    accepted: int
    aggregators: int
    submitted: int
    included: int
    min_owners: int
    max_owners: int
    committed: int
    revealed: int
    block_timestamp: int

    def __str__(self) -> str:
        return (
            f"query {self.query_id}: {self.phase}, {self.submitted} submitted ({self.included} included, "
            f"min {self.min_owners}, max {self.max_owners}), {self.accepted}/{self.aggregators} accepted, "
            f"{self.committed} committed, {self.revealed} revealed"
        )


@dataclass(frozen=True)
class QueryResult:
    """A published result: the words on chain, their fixed-point decoding and the template's output.

    `output` is `mapping.postprocess` of `values`; it is `None`, with `postprocess_error` set, when
    the template cannot compute it (for example a singular regression).
    """

    query_id: int
    spec: QuerySpec
    words: tuple[int, ...]
    values: NDArray[np.float64]
    output: dict[str, Any] | None
    included_owners: int
    postprocess_error: str | None = None

    @property
    def exact(self) -> bool:
        return self.spec.exact

    def as_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready values (words as decimal strings: they exceed 2^53)."""
        return {
            "queryId": self.query_id,
            "template": self.spec.template,
            "schema": list(self.spec.schema),
            "words": [str(word) for word in self.words],
            "values": [float(value) for value in self.values],
            "output": self.output,
            "includedOwners": self.included_owners,
            "exact": self.exact,
            "postprocessError": self.postprocess_error,
        }


class Analyst:
    """An analyst's view of the market: `market.sender` proposes and is refunded.

    `start_block` bounds the event searches (aggregator registrations, query specs); pass the
    market's deployment block on a long chain.
    """

    def __init__(self, market: MarketClient, *, start_block: int = 0, poll_interval: float = 1.0) -> None:
        if market.sender is None:
            raise ConfigurationError("the analyst needs a market client with a sender; use market.with_sender(...)")
        if poll_interval <= 0:
            raise InvalidInputError(f"poll_interval must be positive seconds, got {poll_interval}")
        self.market = market
        self.start_block = start_block
        self.poll_interval = poll_interval
        self._specs: dict[int, QuerySpec] = {}
        self._complaint_period: int | None = None

    @property
    def address(self) -> str:
        assert self.market.sender is not None
        return self.market.sender.address

    @property
    def complaint_period(self) -> int:
        if self._complaint_period is None:
            self._complaint_period = self.market.complaint_period()
        return self._complaint_period

    # ----------------------------------------------------------------------------------------------
    # Proposing

    def select_aggregators(self, count: int | None = None) -> list[str]:
        """Return `count` registered, non-exiting, fully staked aggregators.

        Without `count`, every usable aggregator is taken, up to the market's `maxAggregators`.
        Aggregators with the fewest open queries come first, then the earliest registered.

        Raises:
            AnalystError: fewer than `count` (or fewer than 2) aggregators are usable.
        """
        maximum = self.market.max_aggregators()
        if count is not None and not MIN_AGGREGATORS <= count <= maximum:
            raise InvalidInputError(f"aggregator count {count} is outside {MIN_AGGREGATORS}..{maximum}")
        registered: list[str] = []
        for record in self.market.events("AggregatorRegistered", self.start_block):
            assert isinstance(record, AggregatorRegistered)
            if record.aggregator not in registered:
                registered.append(record.aggregator)
        minimum_stake = self.market.min_aggregator_stake()
        candidates = []
        for order, address in enumerate(registered):
            info = self.market.aggregator_info(address)
            if info.registered and info.exit_requested_at == 0 and info.stake >= minimum_stake:
                candidates.append((info.open_queries, order, address))
        candidates.sort()
        requested = count if count is not None else max(MIN_AGGREGATORS, min(len(candidates), maximum))
        if len(candidates) < requested:
            raise AnalystError(
                f"{len(candidates)} usable aggregators are registered but the query needs {requested}; "
                "register more aggregators or ask for fewer"
            )
        return [address for _, _, address in candidates[:requested]]

    def build_params(
        self,
        spec: QuerySpec,
        *,
        price_per_owner: int,
        min_owners: int,
        max_owners: int,
        aggregators: Sequence[str],
        fee_per_aggregator: int = 0,
        accept_window: int = 600,
        submit_window: int = 3_600,
        commit_window: int = 3_600,
        reveal_window: int = 3_600,
    ) -> QueryParams:
        """Return the `QueryParams` of a proposal, after checking the spec and the numbers for this market.

        Raises:
            SpecError, PrivacyError: the spec cannot run with `max_owners` owners and these aggregators.
            InvalidInputError: an owner count, window or aggregator list is invalid.
        """
        if not isinstance(spec, QuerySpec):
            raise InvalidInputError(f"spec must be a QuerySpec (see offchain_workers.spec.build_spec), got {type(spec).__name__}")
        if not 1 <= min_owners <= max_owners:
            raise InvalidInputError(f"owner counts must satisfy 1 <= min_owners <= max_owners, got {min_owners} and {max_owners}")
        for name, window in (("accept_window", accept_window), ("submit_window", submit_window),
                             ("commit_window", commit_window), ("reveal_window", reveal_window)):
            if isinstance(window, bool) or not isinstance(window, int) or window < 1:
                raise InvalidInputError(f"{name} must be a positive number of seconds, got {window!r}")
        if price_per_owner < 0 or fee_per_aggregator < 0:
            raise InvalidInputError(f"price {price_per_owner} and fee {fee_per_aggregator} must be non-negative wei")
        if len(set(aggregators)) != len(aggregators):
            raise InvalidInputError(f"aggregators {list(aggregators)} repeat an address")
        maximum_length = self.market.max_output_length()
        if spec.output_length > maximum_length:
            raise InvalidInputError(
                f"the spec has {spec.output_length} output coordinates, above the market's maxOutputLength {maximum_length}"
            )
        # The contract's bound maxOwners * maxAbsEncoded < 2^62, then room for K aggregators' noise.
        spec.validate_for_market(max_owners)
        check_noise_headroom(spec, max_owners, len(aggregators))

        now = latest_timestamp(self.market.w3)
        accept_deadline = now + accept_window
        submit_deadline = accept_deadline + submit_window
        commit_deadline = submit_deadline + self.complaint_period + commit_window
        contract = spec.contract_params()
        return QueryParams(
            template_id=contract["templateId"],
            output_length=contract["outputLength"],
            epsilon=contract["epsilon"],
            price_per_owner=price_per_owner,
            min_owners=min_owners,
            max_owners=max_owners,
            aggregators=tuple(aggregators),
            fee_per_aggregator=fee_per_aggregator,
            accept_deadline=accept_deadline,
            submit_deadline=submit_deadline,
            commit_deadline=commit_deadline,
            reveal_deadline=commit_deadline + reveal_window,
            max_abs_encoded=contract["maxAbsEncoded"],
        )

    def propose(
        self,
        spec: QuerySpec,
        *,
        price_per_owner: int,
        min_owners: int,
        max_owners: int,
        fee_per_aggregator: int = 0,
        aggregators: Sequence[str] | Literal["auto"] = "auto",
        aggregator_count: int | None = None,
        accept_window: int = 600,
        submit_window: int = 3_600,
        commit_window: int = 3_600,
        reveal_window: int = 3_600,
    ) -> int:
        """Propose a query and escrow exactly `price_per_owner * max_owners + fee_per_aggregator * K`.

        `aggregators="auto"` picks `aggregator_count` usable aggregators (see `select_aggregators`).
        Returns the query id.

        Raises:
            SpecError, PrivacyError, InvalidInputError: as `build_params`.
            AnalystError: an aggregator is unusable, or the balance does not cover the escrow.
            ContractRevertError: the contract rejected the proposal.
        """
        if aggregators == "auto":
            chosen = self.select_aggregators(aggregator_count)
        else:
            chosen = list(aggregators)
            self._check_aggregators(chosen)
        params = self.build_params(
            spec, price_per_owner=price_per_owner, min_owners=min_owners, max_owners=max_owners,
            aggregators=chosen, fee_per_aggregator=fee_per_aggregator, accept_window=accept_window,
            submit_window=submit_window, commit_window=commit_window, reveal_window=reveal_window,
        )
        payment = params.required_payment
        assert self.market.sender is not None
        balance = self.market.sender.balance()
        if balance < payment:
            raise AnalystError(
                f"the escrow is {payment} wei (price {price_per_owner} x {max_owners} owners + fee "
                f"{fee_per_aggregator} x {len(chosen)} aggregators) but {self.address} holds {balance} wei"
            )
        proposed = self.market.propose_query(params, spec.to_json_bytes(), payment=payment)
        self._specs[proposed.query_id] = spec
        logger.info(
            "query %d proposed: template %s, %d..%d owners at %d wei, %d aggregators, escrow %d wei, submit deadline %d",
            proposed.query_id, spec.template, min_owners, max_owners, price_per_owner, len(chosen), payment,
            params.submit_deadline,
        )
        return proposed.query_id

    def _check_aggregators(self, aggregators: Sequence[str]) -> None:
        minimum_stake = self.market.min_aggregator_stake()
        for address in aggregators:
            info = self.market.aggregator_info(address)
            if not info.registered:
                raise AnalystError(f"aggregator {address} is not registered; choose registered aggregators or pass 'auto'")
            if info.exit_requested_at != 0:
                raise AnalystError(f"aggregator {address} is exiting since {info.exit_requested_at}; choose another")
            if info.stake < minimum_stake:
                raise AnalystError(f"aggregator {address} has stake {info.stake} wei, below the minimum {minimum_stake}")

    # ----------------------------------------------------------------------------------------------
    # Following a query

    def spec(self, query_id: int) -> QuerySpec:
        """Return the spec of a query, from this analyst's proposals or from its `QueryProposed` event."""
        spec = self._specs.get(query_id)
        if spec is None:
            records = self.market.events("QueryProposed", self.start_block, filters={"queryId": query_id})
            if not records:
                raise AnalystError(f"no QueryProposed event for query {query_id} after block {self.start_block}")
            record = records[0]
            assert isinstance(record, QueryProposed)
            spec = self._specs[query_id] = QuerySpec.from_json_bytes(record.spec_json)
        return spec

    def progress(self, query_id: int) -> QueryProgress:
        """Read the query's state and name its phase."""
        info = self.market.query_info(query_id)
        now = latest_timestamp(self.market.w3)
        return QueryProgress(
            query_id=query_id,
            phase=self._phase(query_id, info, now),
            status=info.status,
            accepted=info.accepted_count,
            aggregators=len(info.params.aggregators),
            submitted=info.submitted_count,
            included=info.included_count,
            min_owners=info.params.min_owners,
            max_owners=info.params.max_owners,
            committed=info.committed_count,
            revealed=info.revealed_count,
            block_timestamp=now,
        )

    def _phase(self, query_id: int, info: QueryInfo, now: int) -> str:
        if info.status == QueryStatus.NONE:
            raise AnalystError(f"query {query_id} does not exist on market {self.market.address}")
        if info.status != QueryStatus.OPEN:
            return {QueryStatus.PROPOSED: "accepting", QueryStatus.PUBLISHED: "published",
                    QueryStatus.CANCELLED: "cancelled", QueryStatus.FAILED: "failed"}[info.status]
        if info.closed_at == 0 and now <= info.params.submit_deadline:
            return "submitting"
        close_time = info.closed_at if info.closed_at != 0 else info.params.submit_deadline
        if now <= close_time + self.complaint_period:
            return "complaints"
        if info.committed_count < len(info.params.aggregators):
            return "committing"
        return "revealing"

    def wait_for_result(
        self,
        query_id: int,
        timeout: float = 3_600.0,
        progress: Callable[[QueryProgress], None] | None = None,
        *,
        poll_interval: float | None = None,
    ) -> QueryResult:
        """Poll until the query is published and return its result.

        `progress` is called with a `QueryProgress` whenever the phase or a count changes.
        `timeout` is in seconds of wall-clock time.

        Raises:
            QueryCancelledError, QueryFailedError: the query settled without a result.
            ResultTimeoutError: `timeout` passed first.
        """
        interval = poll_interval if poll_interval is not None else self.poll_interval
        deadline = time.monotonic() + timeout
        last: tuple[Any, ...] | None = None
        while True:
            current = self.progress(query_id)
            key = (current.phase, current.accepted, current.submitted, current.included, current.committed, current.revealed)
            if key != last:
                last = key
                logger.debug("%s", current)
                if progress is not None:
                    progress(current)
            if current.status == QueryStatus.PUBLISHED:
                return self.result(query_id)
            if current.status == QueryStatus.CANCELLED:
                raise QueryCancelledError(
                    f"query {query_id} was cancelled ({self._cancel_reason(query_id)}); call refund({query_id}) to "
                    "recover the escrow", query_id=query_id,
                )
            if current.status == QueryStatus.FAILED:
                raise QueryFailedError(
                    f"query {query_id} failed: an aggregator missed its commit or reveal deadline; call "
                    f"refund({query_id}) to recover the escrow and the slashed stake", query_id=query_id,
                )
            if time.monotonic() >= deadline:
                raise ResultTimeoutError(
                    f"query {query_id} has no result after {timeout:.0f} s; it is {current}. Wait longer, or "
                    "check that the aggregators and owners are running"
                )
            time.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))

    def _cancel_reason(self, query_id: int) -> str:
        records = self.market.events("QueryCancelled", self.start_block, filters={"queryId": query_id})
        if records and isinstance(records[-1], QueryCancelled):
            return records[-1].reason.name.lower().replace("_", " ")
        return "reason unknown"

    # ----------------------------------------------------------------------------------------------
    # Results and refunds

    def result(self, query_id: int) -> QueryResult:
        """Return the published result: raw words, decoded values and the template's output.

        Raises:
            ResultNotPublishedError: the query has no result (yet).
        """
        info = self.market.query_info(query_id)
        if info.status != QueryStatus.PUBLISHED:
            raise ResultNotPublishedError(
                f"query {query_id} is {info.status.name.lower()}, not published; wait_for_result({query_id}) waits for it"
            )
        spec = self.spec(query_id)
        words = self.market.query_result(query_id)
        values = decode_fixed(np.array(words, dtype=np.uint64), spec.fractional_bits)
        output: dict[str, Any] | None
        error: str | None = None
        try:
            noise_sd = result_noise_sd(spec, len(info.params.aggregators))
            output = postprocess(spec, values, noise_sd=noise_sd)
        except TemplateError as failure:
            output, error = None, str(failure)
            logger.warning("query %d: post-processing failed: %s", query_id, failure)
        return QueryResult(query_id, spec, tuple(words), values, output, info.included_count, error)

    def refund(self, query_id: int) -> int:
        """Withdraw the analyst's refund and return it in wei.

        After publication the refund is the price of the unused owner slots. After a cancellation
        or a failure it is the whole escrow plus any slashed stake.

        Raises:
            ContractRevertError: the query is not settled, the refund was taken, or the sender is
                not the query's analyst.
        """
        receipt = self.market.refund(query_id)
        amount = sum(
            record.amount for record in self.market.receipt_events(receipt) if isinstance(record, AnalystRefunded)
        )
        logger.info("query %d: refunded %d wei to %s in %s", query_id, amount, self.address, receipt.transaction_hash)
        return amount
