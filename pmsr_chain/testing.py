"""Scenario helpers for tests and benchmarks on a local Anvil chain.

`MarketHarness` creates funded accounts (with `anvil_setBalance`, so Anvil only), registers
aggregators and owners, proposes and opens queries with deadlines relative to the chain clock, and
moves the clock. Ciphertexts made here are random bytes of the right length: the contract checks
only their length, and decrypting them is the aggregators' business, tested elsewhere.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace

from eth_account import Account
from web3 import Web3

from .anvil import increase_time, latest_timestamp, set_balance
from .client import MarketClient, aggregate_commitment
from .parameters import ETHER
from .transactions import Receipt, SenderConfig, TransactionSender, send_all
from .types import OwnerPolicy, QueryParams, Template, ciphertext_length

__all__ = ["MarketHarness", "OpenQuery", "random_ciphertexts", "example_spec_json", "split_additive"]

MODULUS = 2**64


def random_ciphertexts(output_length: int, aggregator_count: int) -> list[bytes]:
    """Return one random byte string per aggregator, each `32 + 8L + 16` bytes long."""
    return [os.urandom(ciphertext_length(output_length)) for _ in range(aggregator_count)]


def split_additive(values: Sequence[int], parts: int) -> list[list[int]]:
    """Split a vector into `parts` uniformly random vectors that sum to it modulo 2^64."""
    shares = [[secrets.randbelow(MODULUS) for _ in values] for _ in range(parts - 1)]
    last = [(value - sum(column)) % MODULUS for value, column in zip(values, zip(*shares))] if shares else list(values)
    return [*shares, [v % MODULUS for v in last]]


def example_spec_json(output_length: int, template: str = "sum") -> bytes:
    """Return a canonical spec (sorted keys, no spaces) for tests. The contract only hashes it."""
    spec = {
        "clip": [["-1000", "1000"]] * output_length,
        "contributionBound": 1,
        "epsilon": 1_000_000,
        "fractionalBits": 16,
        "postprocess": template,
        "schema": [f"x{i}" for i in range(output_length)],
        "template": template,
        "version": 1,
    }
    return json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class OpenQuery:
    """A proposed query with the clients of its analyst and aggregators."""

    query_id: int
    params: QueryParams
    analyst: MarketClient
    aggregators: tuple[MarketClient, ...]


class MarketHarness:
    """Builds market scenarios on Anvil from fresh accounts, so tests stay independent."""

    def __init__(self, market: MarketClient, *, sender_config: SenderConfig | None = None) -> None:
        self.market = market
        self.w3: Web3 = market.w3
        self.sender_config = sender_config or SenderConfig()

    # ----------------------------------------------------------------------------------------------
    # Accounts

    def new_client(self, balance_wei: int = 100 * ETHER) -> MarketClient:
        """Return a client sending from a new random account funded with `anvil_setBalance`."""
        account = Account.from_key(secrets.token_bytes(32))
        set_balance(self.w3, account.address, balance_wei)
        return self.market.with_sender(TransactionSender(self.w3, account, self.sender_config))

    def new_clients(self, count: int, balance_wei: int = 100 * ETHER) -> list[MarketClient]:
        return [self.new_client(balance_wei) for _ in range(count)]

    def balance(self, address: str) -> int:
        return int(self.w3.eth.get_balance(Web3.to_checksum_address(address)))

    # ----------------------------------------------------------------------------------------------
    # Registration

    def register_aggregators(self, count: int, *, stake: int | None = None) -> list[MarketClient]:
        """Register `count` new aggregators, each with a random 32-byte key and `stake` (default: minimum)."""
        stake = self.market.min_aggregator_stake() if stake is None else stake
        clients = self.new_clients(count, balance_wei=stake + 100 * ETHER)
        send_all(
            (client.sender, client.calls.register_aggregator(secrets.token_bytes(32), stake=stake))  # type: ignore[misc]
            for client in clients
        )
        return clients

    def default_policy(self, **overrides: int | bool) -> OwnerPolicy:
        """Return a policy that joins any template at any price, with a budget of 100.0 epsilon."""
        policy = OwnerPolicy(
            min_price_per_query=0,
            epsilon_budget=100_000_000,
            template_mask=(1 << len(Template)) - 1,
            allow_exact=True,
            expires_at=latest_timestamp(self.w3) + 365 * 24 * 3600,
        )
        return replace(policy, **overrides)

    def register_owners(
        self, count: int, *, policy: OwnerPolicy | None = None, stake: int | None = None
    ) -> list[MarketClient]:
        """Register `count` new owners in one batch of transactions."""
        policy = policy or self.default_policy()
        stake = self.market.min_owner_stake() if stake is None else stake
        clients = self.new_clients(count, balance_wei=stake + 10 * ETHER)
        send_all(
            (client.sender, client.calls.register_owner(policy, secrets.token_bytes(32), stake=stake))  # type: ignore[misc]
            for client in clients
        )
        return clients

    # ----------------------------------------------------------------------------------------------
    # Queries

    def query_params(
        self,
        aggregators: Sequence[MarketClient],
        *,
        output_length: int = 1,
        min_owners: int = 1,
        max_owners: int = 10,
        epsilon: int = 1_000_000,
        price_per_owner: int = 10**15,
        fee_per_aggregator: int = 10**16,
        template: Template = Template.SUM,
        max_abs_encoded: int = 2**32,
        accept_window: int = 600,
        submit_window: int = 3600,
        commit_window: int = 3600,
        reveal_window: int = 3600,
    ) -> QueryParams:
        """Query parameters with deadlines counted from the latest block's timestamp, in seconds.

        The commit window starts after the complaint period, so `commitDeadline` is
        `submitDeadline + complaintPeriod + commit_window`.
        """
        now = latest_timestamp(self.w3)
        complaint_period = self.market.complaint_period()
        accept_deadline = now + accept_window
        submit_deadline = accept_deadline + submit_window
        commit_deadline = submit_deadline + complaint_period + commit_window
        reveal_deadline = commit_deadline + reveal_window
        return QueryParams(
            template_id=int(template),
            output_length=output_length,
            epsilon=epsilon,
            price_per_owner=price_per_owner,
            min_owners=min_owners,
            max_owners=max_owners,
            aggregators=tuple(a.sender.address for a in aggregators),  # type: ignore[union-attr]
            fee_per_aggregator=fee_per_aggregator,
            accept_deadline=accept_deadline,
            submit_deadline=submit_deadline,
            commit_deadline=commit_deadline,
            reveal_deadline=reveal_deadline,
            max_abs_encoded=max_abs_encoded,
        )

    def propose(
        self, aggregators: Sequence[MarketClient], *, analyst: MarketClient | None = None,
        spec_json: bytes | None = None, accept: bool = True, **params_overrides: int,
    ) -> OpenQuery:
        """Propose a query from `analyst` (default: a new account) and, unless `accept=False`, open it."""
        params = self.query_params(aggregators, **params_overrides)  # type: ignore[arg-type]
        analyst = analyst or self.new_client(balance_wei=params.required_payment + 100 * ETHER)
        spec = spec_json if spec_json is not None else example_spec_json(params.output_length)
        proposed = analyst.propose_query(params, spec)
        query = OpenQuery(proposed.query_id, params, analyst, tuple(aggregators))
        if accept:
            self.accept_all(query)
        return query

    def accept_all(self, query: OpenQuery) -> list[Receipt]:
        return send_all((a.sender, a.calls.accept_query(query.query_id)) for a in query.aggregators)  # type: ignore[misc]

    def submit_random(self, query: OpenQuery, owners: Sequence[MarketClient]) -> list[Receipt]:
        """Submit random ciphertexts of the right length from every owner, in one batch."""
        length = query.params.output_length
        count = len(query.aggregators)
        return send_all(
            (owner.sender, owner.calls.submit_shares(query.query_id, random_ciphertexts(length, count)))  # type: ignore[misc]
            for owner in owners
        )

    def commit_and_reveal(self, query: OpenQuery, shares: Sequence[Sequence[int]]) -> tuple[list[Receipt], list[Receipt]]:
        """Commit then reveal `shares[k]` from aggregator k; the clock must be inside the commit window."""
        salts = [secrets.token_bytes(32) for _ in query.aggregators]
        commits = [
            aggregator.commit_aggregate(
                query.query_id, aggregate_commitment(query.query_id, aggregator.sender.address, share, salt)  # type: ignore[union-attr]
            )
            for aggregator, share, salt in zip(query.aggregators, shares, salts)
        ]
        reveals = [
            aggregator.reveal_aggregate(query.query_id, share, salt)
            for aggregator, share, salt in zip(query.aggregators, shares, salts)
        ]
        return commits, reveals

    # ----------------------------------------------------------------------------------------------
    # Clock

    def now(self) -> int:
        return latest_timestamp(self.w3)

    def advance_past(self, timestamp: int) -> int:
        """Mine a block with a timestamp after `timestamp` (no-op if the chain is already past it)."""
        now = latest_timestamp(self.w3)
        if now > timestamp:
            return now
        return increase_time(self.w3, timestamp - now + 1)

    def advance_to_commit_window(self, query: OpenQuery) -> int:
        """Move past the complaint window of a query whose submissions closed at `submitDeadline`."""
        window_end = self.market.complaint_window_end(query.query_id)
        if window_end == 0:
            window_end = query.params.submit_deadline + self.market.complaint_period()
        return self.advance_past(window_end)
