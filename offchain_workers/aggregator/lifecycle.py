"""The per-query steps of an aggregator: accept, complain, commit, reveal, claim the fee.

`QueryDriver.step` moves one query forward by what the chain and the database allow now. Every
decision about time uses the latest block's timestamp (`ChainClock`), never the wall clock, because
the contract judges deadlines by `block.timestamp`. Each step first reads the on-chain state it
depends on, so a step interrupted by a crash is finished, not repeated, after a restart. An accept
or commit already mined is recognised, and a commitment that was persisted but not mined is sent
again unchanged.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from eth_utils import to_checksum_address

from pmsr_chain.client import MarketClient, aggregate_commitment
from pmsr_chain.errors import ContractRevertError, RpcError, TransactionError, TransactionFailedError
from pmsr_chain.transactions import ContractCall, PendingTransaction, Receipt
from pmsr_chain.types import QueryInfo, QueryStatus

from ..dp import add_noise
from ..encoding import WORD_BYTES, from_le_bytes, to_le_bytes
from ..encryption import ShareContext, ShareDecryptor
from ..spec import QuerySpec
from .ingest import load_accumulator
from .policy import AcceptancePolicy, evaluate_proposal
from .state import IN_FLIGHT_PHASES, AggregatorState, ComplaintState, Phase, QueryRecord

__all__ = ["ChainClock", "QueryDriver"]

logger = logging.getLogger(__name__)

SALT_BYTES = 32

# The K-th accept also opens the query, and the K-th reveal also publishes the result (it reads the
# whole sum and emits it), so either can cost more than the estimate made while another aggregator's
# transaction was still pending. They are sent with twice the estimate plus this much gas; unused
# gas is not charged.
_LAST_MOVER_GAS = 100_000

# Errors of one chain interaction that a later poll may get past; anything else is a bug or bad state.
_RETRYABLE = (TransactionError, RpcError)


@dataclass(frozen=True)
class ChainClock:
    """The chain's time at one poll.

    `head_time` is the latest block's timestamp. `ingested_time` is the timestamp of the last block
    whose events are in the database, which trails `head_time` when confirmations are required.
    """

    head_block: int
    head_time: int
    ingested_block: int
    ingested_time: int


class QueryDriver:
    """Advances the queries of one aggregator; `rescan` re-reads a query's events from its proposal block."""

    def __init__(
        self,
        client: MarketClient,
        state: AggregatorState,
        decryptor: ShareDecryptor,
        policy: AcceptancePolicy,
        *,
        chain_id: int,
        complaint_period: int,
        rescan: Callable[[QueryRecord], None],
    ) -> None:
        if client.sender is None:
            raise ValueError("the aggregator's MarketClient needs a sender")
        self.client = client
        self.state = state
        self.decryptor = decryptor
        self.policy = policy
        self.address: str = client.sender.address
        self.chain_id = chain_id
        self.complaint_period = complaint_period
        self._rescan = rescan
        self._market = bytes.fromhex(client.address[2:])
        # Last "waiting" message per query, so a condition that lasts many polls is logged once.
        self._last_report: dict[int, str] = {}

    def step(self, query: QueryRecord, clock: ChainClock) -> None:
        """Advance `query` as far as the chain allows now."""
        handlers = {
            Phase.PROPOSED: self._decide,
            Phase.ACCEPTING: self._confirm_accept,
            Phase.ACCEPTED: self._serve,
            Phase.COMMITTING: self._send_commitment,
            Phase.COMMITTED: self._reveal,
            Phase.REVEALED: self._await_publication,
            Phase.PUBLISHED: self._claim_fee,
        }
        handler = handlers.get(query.phase)
        if handler is not None:
            handler(query, clock)

    # --- acceptance -------------------------------------------------------------------------------

    def _decide(self, query: QueryRecord, clock: ChainClock) -> None:
        query_id = query.query_id
        if self._accepted_on_chain(query_id):
            # The database was rebuilt after this aggregator accepted: read the query's events again.
            logger.warning("query %d: already accepted on-chain by %s; resuming and re-scanning its events", query_id, self.address)
            self.state.set_needs_rescan(query_id, True)
            self.state.set_phase(query_id, Phase.ACCEPTED)
            return

        info = self.client.query_info(query_id)
        if info.status is not QueryStatus.PROPOSED:
            self._set(query_id, Phase.REFUSED, f"query is {info.status.name.lower()} on-chain, no longer open to accept")
            return
        decision = evaluate_proposal(
            self.policy,
            aggregator=self.address,
            params=info.params,
            spec_json=query.spec_json,
            onchain_spec_hash=info.spec_hash,
            active_queries=self.state.count_in(IN_FLIGHT_PHASES),
            now=clock.head_time,
        )
        if not decision.accepted:
            self._set(query_id, Phase.REFUSED, decision.reason)
            logger.info("query %d refused: %s", query_id, decision.reason)
            return
        if decision.aggregator_index != query.aggregator_index:
            self._set(query_id, Phase.REFUSED, "the aggregator index on-chain differs from the proposal event")
            logger.error("query %d refused: aggregator index on-chain differs from the proposal event", query_id)
            return

        # Recorded before sending, so that the query's SharesSubmitted events are read even if this
        # process stops between the transaction and the next database write.
        self.state.set_phase(query_id, Phase.ACCEPTING)
        logger.info(
            "query %d accepted by policy (fee %d wei, L = %d, index %d of %d); sending acceptQuery",
            query_id, info.params.fee_per_aggregator, query.output_length, query.aggregator_index, query.aggregator_count,
        )
        self._send_accept(query)

    def _confirm_accept(self, query: QueryRecord, clock: ChainClock) -> None:
        if self._accepted_on_chain(query.query_id):
            self.state.set_phase(query.query_id, Phase.ACCEPTED)
            logger.info("query %d: acceptance confirmed on-chain", query.query_id)
            return
        if clock.head_time > query.accept_deadline:
            self._set(query.query_id, Phase.REFUSED, f"accept deadline {query.accept_deadline} passed before acceptQuery was mined")
            logger.warning("query %d: accept deadline passed before acceptQuery was mined", query.query_id)
            return
        logger.info("query %d: acceptQuery not mined yet; sending it again", query.query_id)
        self._send_accept(query)

    def _send_accept(self, query: QueryRecord) -> None:
        query_id = query.query_id
        try:
            receipt = self._send_with_headroom(self.client.calls.accept_query(query_id))
        except ContractRevertError as error:
            if error.error_name == "AlreadyAccepted":
                self.state.set_phase(query_id, Phase.ACCEPTED)
                return
            self._set(query_id, Phase.REFUSED, f"acceptQuery reverted: {error}")
            logger.warning("query %d: acceptQuery reverted: %s", query_id, error)
            return
        except _RETRYABLE as error:
            logger.warning("query %d: acceptQuery failed (%s); retrying on the next poll", query_id, error)
            return
        self.state.set_phase(query_id, Phase.ACCEPTED, accept_tx=receipt.transaction_hash)
        logger.info("query %d: accepted in transaction %s", query_id, receipt.transaction_hash)

    # --- shares, complaints and the commitment ----------------------------------------------------

    def _serve(self, query: QueryRecord, clock: ChainClock) -> None:
        query_id = query.query_id
        info = self.client.query_info(query_id)
        if self._settle_if_over(query, info):
            return
        if info.status is QueryStatus.PROPOSED:
            self._report(query_id, "waiting for the other aggregators to accept")
            return
        if info.status is not QueryStatus.OPEN:
            self._report(query_id, f"unexpected on-chain status {info.status.name} while collecting shares", logging.ERROR)
            return
        if query.needs_rescan:
            self._rescan(query)

        close_time = info.closed_at or info.params.submit_deadline
        window_end = close_time + self.complaint_period
        if clock.head_time >= close_time:
            self._complain(query, clock, window_end)
        if clock.ingested_time <= window_end:
            return
        if clock.head_time > query.commit_deadline:
            self._abandon(query, f"commit deadline {query.commit_deadline} passed before the commitment was prepared")
            return
        if info.included_count < info.params.min_owners:
            self._report(
                query_id,
                f"only {info.included_count} owners included, fewer than minOwners {info.params.min_owners}; "
                "waiting for the query to be cancelled",
            )
            return
        if self._prepare_commitment(query, info):
            prepared = self.state.query(query_id)
            assert prepared is not None
            self._send_commitment(prepared, clock)

    def _complain(self, query: QueryRecord, clock: ChainClock, window_end: int) -> None:
        query_id = query.query_id
        pending: list[tuple[bytes, PendingTransaction]] = []
        for row in self.state.pending_complaints(query_id):
            owner = to_checksum_address(row.owner)
            if self.state.is_excluded(query_id, row.owner):
                self.state.set_complaint(query_id, row.owner, ComplaintState.EXCLUDED)
                continue
            if clock.head_time > window_end:
                self.state.set_complaint(query_id, row.owner, ComplaintState.MISSED)
                logger.error(
                    "query %d: complaint window closed at %d before the complaint about owner %s was sent; "
                    "that owner stays in the result without a share from this aggregator",
                    query_id, window_end, owner,
                )
                continue
            try:
                pending.append((row.owner, self.client.sender.submit(self.client.calls.complain(query_id, owner))))  # type: ignore[union-attr]
            except ContractRevertError as error:
                self._complaint_reverted(query_id, row.owner, error)
            except _RETRYABLE as error:
                logger.warning("query %d: complaint about owner %s failed (%s); retrying on the next poll", query_id, owner, error)
        for owner_bytes, transaction in pending:
            owner = to_checksum_address(owner_bytes)
            try:
                receipt = self.client.sender.wait(transaction)  # type: ignore[union-attr]
            except TransactionFailedError as error:
                if error.revert is not None:
                    self._complaint_reverted(query_id, owner_bytes, error.revert)
                else:
                    logger.warning("query %d: complaint about owner %s failed on-chain: %s", query_id, owner, error)
                continue
            except _RETRYABLE as error:
                logger.warning("query %d: complaint about owner %s not confirmed (%s); checking again on the next poll", query_id, owner, error)
                continue
            self.state.set_complaint(query_id, owner_bytes, ComplaintState.SENT, receipt.transaction_hash)
            logger.info("query %d: complained about owner %s in transaction %s", query_id, owner, receipt.transaction_hash)

    def _complaint_reverted(self, query_id: int, owner: bytes, error: ContractRevertError) -> None:
        address = to_checksum_address(owner)
        if error.error_name == "NotSubmitted":
            # Another aggregator's complaint excluded the owner first.
            self.state.set_complaint(query_id, owner, ComplaintState.EXCLUDED)
            logger.info("query %d: owner %s was already excluded by another complaint", query_id, address)
        elif error.error_name == "ComplaintWindowClosed":
            self.state.set_complaint(query_id, owner, ComplaintState.MISSED)
            logger.error("query %d: complaint about owner %s came after the complaint window: %s", query_id, address, error)
        else:
            logger.warning("query %d: complaint about owner %s reverted: %s; retrying on the next poll", query_id, address, error)

    def _prepare_commitment(self, query: QueryRecord, info: QueryInfo) -> bool:
        """Compute, noise and persist this aggregator's share; return False if the counts do not add up yet."""
        query_id = query.query_id
        if self.state.commitment(query_id) is not None:
            return True
        problem = self._count_problem(query, info)
        if problem is not None:
            logger.warning("query %d: %s; re-scanning its events before committing", query_id, problem)
            self._rescan(query)
            problem = self._count_problem(query, info)
            if problem is not None:
                self._report(query_id, f"not committing: {problem} even after a re-scan; retrying on the next poll", logging.ERROR)
                return False

        counts = self.state.submission_counts(query_id)
        if counts.bad_not_excluded:
            logger.error(
                "query %d: %d owners whose ciphertext failed here are still included on-chain; the result will be wrong for them",
                query_id, counts.bad_not_excluded,
            )
        total = load_accumulator(self.state.database.connection(), query).total
        for row in self.state.excluded_ok_submissions(query_id):
            context = ShareContext(self.chain_id, self._market, query_id, row.owner)
            excluded = self.decryptor.decrypt(row.ciphertext, context, query.aggregator_index, query.output_length)
            # uint64 array subtraction wraps modulo 2^64, the ring the shares live in.
            np.subtract(total, excluded, out=total)

        spec = QuerySpec.from_json_bytes(query.spec_json)
        share = add_noise(spec, total)
        salt = secrets.token_bytes(SALT_BYTES)
        commitment = aggregate_commitment(query_id, self.address, [int(word) for word in share], salt)
        self.state.save_commitment(query_id, to_le_bytes(share), salt, commitment)
        logger.info(
            "query %d: share prepared from %d owners (%d excluded by complaints, noise %s); commitment %s",
            query_id, counts.ok - counts.excluded_ok, counts.excluded_ok,
            "none (exact query)" if spec.exact else f"discrete Laplace, epsilon {spec.epsilon} millionths",
            "0x" + commitment.hex(),
        )
        return True

    def _count_problem(self, query: QueryRecord, info: QueryInfo) -> str | None:
        """Compare the database with the on-chain counts; return what disagrees, or None."""
        counts = self.state.submission_counts(query.query_id)
        _, accumulated = self.state.accumulator(query.query_id)
        if counts.ok + counts.bad != info.submitted_count:
            return f"{counts.ok + counts.bad} submissions stored but {info.submitted_count} on-chain"
        if counts.excluded != info.excluded_count:
            return f"{counts.excluded} exclusions stored but {info.excluded_count} on-chain"
        if accumulated != counts.ok:
            return f"the accumulator holds {accumulated} shares but {counts.ok} submissions decrypted"
        included_here = accumulated - counts.excluded_ok
        expected = info.included_count - counts.bad_not_excluded
        if included_here != expected:
            return f"{included_here} shares would be included but the chain includes {expected} owners with a share here"
        return None

    def _send_commitment(self, query: QueryRecord, clock: ChainClock) -> None:
        query_id = query.query_id
        record = self.state.commitment(query_id)
        if record is None or len(record.share) != WORD_BYTES * query.output_length or len(record.salt) != SALT_BYTES:
            self._abandon(query, "the persisted share or salt is missing or has the wrong length")
            return
        onchain = self.client.aggregator_query_state(query_id, self.address)
        if onchain.committed:
            if onchain.commitment == record.commitment:
                self.state.set_phase(query_id, Phase.COMMITTED)
                logger.info("query %d: commitment confirmed on-chain", query_id)
            else:
                self._abandon(query, f"the on-chain commitment 0x{onchain.commitment.hex()} differs from the persisted one")
            return
        info = self.client.query_info(query_id)
        if self._settle_if_over(query, info):
            return
        if clock.head_time > query.commit_deadline:
            self._abandon(query, f"commit deadline {query.commit_deadline} passed before commitAggregate was mined")
            return
        try:
            receipt = self.client.commit_aggregate(query_id, record.commitment)
        except ContractRevertError as error:
            logger.warning("query %d: commitAggregate reverted: %s; checking the on-chain state on the next poll", query_id, error)
            return
        except _RETRYABLE as error:
            logger.warning("query %d: commitAggregate failed (%s); sending the same commitment on the next poll", query_id, error)
            return
        self.state.set_phase(query_id, Phase.COMMITTED, commit_tx=receipt.transaction_hash)
        logger.info("query %d: committed in transaction %s", query_id, receipt.transaction_hash)

    # --- reveal and payout ------------------------------------------------------------------------

    def _reveal(self, query: QueryRecord, clock: ChainClock) -> None:
        query_id = query.query_id
        info = self.client.query_info(query_id)
        if self._settle_if_over(query, info):
            return
        onchain = self.client.aggregator_query_state(query_id, self.address)
        if onchain.revealed:
            self.state.set_phase(query_id, Phase.REVEALED)
            return
        if info.committed_count < query.aggregator_count:
            self._report(query_id, f"waiting for commitments: {info.committed_count} of {query.aggregator_count}")
            return
        if clock.head_time > query.reveal_deadline:
            self._abandon(query, f"reveal deadline {query.reveal_deadline} passed before the reveal")
            return

        record = self.state.commitment(query_id)
        if record is None:
            self._abandon(query, "the persisted share is missing")
            return
        try:
            words = from_le_bytes(record.share, query.output_length)
        except ValueError:
            self._abandon(query, f"the persisted share has {len(record.share)} bytes, not {WORD_BYTES * query.output_length}")
            return
        try:
            receipt = self._send_with_headroom(
                self.client.calls.reveal_aggregate(query_id, [int(word) for word in words], record.salt)
            )
        except ContractRevertError as error:
            if error.error_name == "AlreadyRevealed":
                self.state.set_phase(query_id, Phase.REVEALED)
            elif error.error_name == "CommitmentMismatch":
                self._abandon(query, f"revealAggregate reverted: {error}")
            else:
                logger.warning("query %d: revealAggregate reverted: %s; retrying on the next poll", query_id, error)
            return
        except _RETRYABLE as error:
            logger.warning("query %d: revealAggregate failed (%s); retrying on the next poll", query_id, error)
            return
        self.state.set_phase(query_id, Phase.REVEALED, reveal_tx=receipt.transaction_hash)
        logger.info("query %d: revealed in transaction %s", query_id, receipt.transaction_hash)
        self._await_publication(query, clock)

    def _await_publication(self, query: QueryRecord, clock: ChainClock) -> None:
        query_id = query.query_id
        info = self.client.query_info(query_id)
        if info.status is not QueryStatus.PUBLISHED:
            if not self._settle_if_over(query, info):
                self._report(query_id, f"waiting for reveals: {info.revealed_count} of {query.aggregator_count}")
            return
        result = self.client.query_result(query_id)
        if len(result) != query.output_length:
            logger.error(
                "query %d: published result has %d coordinates but L = %d; claiming the fee anyway",
                query_id, len(result), query.output_length,
            )
        else:
            logger.info("query %d: result published with %d owners included", query_id, info.included_count)
        self.state.set_phase(query_id, Phase.PUBLISHED)
        self._claim_fee(query, clock)

    def _claim_fee(self, query: QueryRecord, clock: ChainClock | None = None) -> None:
        query_id = query.query_id
        try:
            receipt = self.client.claim_fee(query_id)
        except ContractRevertError as error:
            if error.error_name == "FeeAlreadyClaimed":
                self.state.set_phase(query_id, Phase.SETTLED)
                logger.info("query %d: fee was already claimed", query_id)
            else:
                logger.warning("query %d: claimFee reverted: %s; retrying on the next poll", query_id, error)
            return
        except _RETRYABLE as error:
            logger.warning("query %d: claimFee failed (%s); retrying on the next poll", query_id, error)
            return
        self.state.set_phase(query_id, Phase.SETTLED, fee_tx=receipt.transaction_hash)
        logger.info("query %d: fee claimed in transaction %s", query_id, receipt.transaction_hash)

    # --- helpers ----------------------------------------------------------------------------------

    def _send_with_headroom(self, call: ContractCall) -> Receipt:
        """Estimate `call` (raising `ContractRevertError` if it would revert), then send it with extra gas."""
        sender = self.client.sender
        assert sender is not None
        estimate = sender.estimate_gas(call)
        return sender.send(dataclasses.replace(call, gas=2 * estimate + _LAST_MOVER_GAS))

    def _accepted_on_chain(self, query_id: int) -> bool:
        return self.client.aggregator_query_state(query_id, self.address).accepted

    def _settle_if_over(self, query: QueryRecord, info: QueryInfo) -> bool:
        """Record a published, cancelled or failed query; return True if it is one of those.

        A published query moves to PUBLISHED, where the fee is claimed: every aggregator revealed,
        so this one did too, even if its database (rebuilt, or written before a crash) says otherwise.
        """
        if info.status is QueryStatus.PUBLISHED:
            self._set(query.query_id, Phase.PUBLISHED, None)
            logger.info("query %d: result already published; claiming the fee", query.query_id)
            self._claim_fee(query)
            return True
        if info.status is QueryStatus.CANCELLED:
            self._set(query.query_id, Phase.CANCELLED, "cancelled on-chain")
            logger.info("query %d: cancelled on-chain", query.query_id)
            return True
        if info.status is QueryStatus.FAILED:
            self._set(query.query_id, Phase.FAILED, "failed on-chain")
            logger.warning("query %d: failed on-chain (a commit or reveal deadline was missed)", query.query_id)
            return True
        return False

    def _abandon(self, query: QueryRecord, reason: str) -> None:
        self._set(query.query_id, Phase.ABANDONED, reason)
        logger.error("query %d: abandoned in phase %s: %s", query.query_id, query.phase, reason)

    def _set(self, query_id: int, phase: Phase, reason: str | None) -> None:
        self.state.set_phase(query_id, phase, reason)
        self._last_report.pop(query_id, None)

    def _report(self, query_id: int, message: str, level: int = logging.INFO) -> None:
        if self._last_report.get(query_id) == message:
            return
        self._last_report[query_id] = message
        logger.log(level, "query %d: %s", query_id, message)
