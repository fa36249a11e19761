"""`pmsr owner register|policy|status|run|claim|exit|withdraw`: a data owner's consent and agent.

An owner's files live in `<data-dir>/owners/<address>/`: `owner.json` records the dataset file,
the salt of the on-chain dataset commitment and the local policy, and `owner.sqlite` is the
agent's state. The data never leaves the machine: the chain stores only
`keccak256(salt || file bytes)`, salted so that a guess of a small dataset cannot be checked against it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eth_utils import keccak

from pmsr_chain.errors import ContractRevertError
from pmsr_chain.types import UINT40_MAX, UINT96_MAX, OwnerPolicy, QueryStatus, SubmissionState
from pmsr_chain.units import format_ether

from offchain_workers.budget import format_epsilon

from .context import Context
from .errors import CliError, amount_option
from .options import add_command, add_group, amount, amount_at_most, comma_list, duration, epsilon, non_negative_int
from .output import duration_option, floor_duration_option, format_table, format_time
from .owner_data import read_dataset

logger = logging.getLogger(__name__)

__all__ = ["register", "OwnerRecord", "owner_dir"]

RECORD_NAME = "owner.json"
DATABASE_NAME = "owner.sqlite"
DEFAULT_EPSILON_BUDGET = 10_000_000  # epsilon 10, in millionths
DEFAULT_EXPIRY_SECONDS = 365 * 24 * 3600
# Queries settled with one claimMany transaction.
CLAIM_BATCH = 50


def owner_dir(data_dir: Path, address: str) -> Path:
    return data_dir / "owners" / address


@dataclass(frozen=True)
class OwnerRecord:
    """Registration data kept on the owner's machine: dataset, commitment salt and local policy."""

    address: str
    chain_id: int
    market: str
    dataset: Path
    dataset_format: str
    commitment_salt: bytes
    dataset_commitment: bytes
    allowed_columns: tuple[str, ...] | None
    max_epsilon_per_query: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "chainId": self.chain_id,
            "market": self.market,
            "dataset": {"path": str(self.dataset), "format": self.dataset_format},
            "commitmentSalt": "0x" + self.commitment_salt.hex(),
            "datasetCommitment": "0x" + self.dataset_commitment.hex(),
            "localPolicy": {
                "allowedColumns": None if self.allowed_columns is None else list(self.allowed_columns),
                "maxEpsilonPerQuery": self.max_epsilon_per_query,
            },
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> OwnerRecord:
        local = document.get("localPolicy") or {}
        columns = local.get("allowedColumns")
        return cls(
            address=str(document["address"]),
            chain_id=int(document["chainId"]),
            market=str(document["market"]),
            dataset=Path(document["dataset"]["path"]),
            dataset_format=str(document["dataset"].get("format") or "csv"),
            commitment_salt=bytes.fromhex(str(document["commitmentSalt"]).removeprefix("0x")),
            dataset_commitment=bytes.fromhex(str(document["datasetCommitment"]).removeprefix("0x")),
            allowed_columns=None if columns is None else tuple(columns),
            max_epsilon_per_query=local.get("maxEpsilonPerQuery"),
        )

    @staticmethod
    def path(data_dir: Path, address: str) -> Path:
        return owner_dir(data_dir, address) / RECORD_NAME

    def write(self, data_dir: Path) -> Path:
        """Write the record atomically with mode 0600 (the salt keeps the commitment unguessable)."""
        path = self.path(data_dir, self.address)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".owner-")
        try:
            os.fchmod(descriptor, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(self.to_json(), handle, indent=2, sort_keys=True)
                handle.write("\n")
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, data_dir: Path, address: str) -> OwnerRecord | None:
        path = cls.path(data_dir, address)
        try:
            return cls.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CliError(f"owner record {path} is unreadable ({error}); restore it from a backup") from None


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    actions = add_group(commands, "owner", "register a data owner and run its agent")

    registration = add_command(
        actions, common, "register", "stake as a data owner with a consent policy and a data file", run_register,
        description="Register the selected account as a data owner: lock a stake, publish the consent policy, and "
                    "commit to the data file (a salted hash; the data stays on this machine).",
    )
    registration.add_argument("--data", required=True, metavar="FILE", help="the owner's table (CSV, or Parquet with pyarrow)")
    registration.add_argument("--stake", type=amount, help="stake to lock (default: the market's minimum)")
    _add_policy_options(registration, defaults=True)

    policy = add_command(
        actions, common, "policy", "show or change the owner's consent policy", run_policy,
        description="Without options, print the policy. With options, change those fields on-chain (and the local "
                    "ones on this machine); the others keep their values.",
    )
    _add_policy_options(policy, defaults=False)

    add_command(actions, common, "status", "show the owner's registration, budget and queries", run_status)

    run = add_command(
        actions, common, "run", "run the owner agent in the foreground", run_agent,
        description="Watch for queries, check each against the policy, run the map on the data file, submit "
                    "encrypted shares, and claim the payments. Stop with Ctrl-C; a restart resumes.",
    )
    run.add_argument("--poll-interval", type=float, default=1.0, metavar="SECONDS",
                     help="seconds between polls of the chain (default 1)")
    run.add_argument("--query", type=non_negative_int, metavar="ID",
                     help="check this query against the policy first, then run until its shares are submitted "
                          "and exit (queries seen meanwhile are handled as usual)")
    run.add_argument("--keeper", action="store_true", help="also cancel or fail queries whose deadlines passed")

    claim = add_command(actions, common, "claim", "collect payments and release budget of finished queries", run_claim)
    claim.add_argument("--query", type=non_negative_int, action="append", metavar="ID",
                       help="settle only this query (repeatable; default: every finished query)")

    add_command(actions, common, "exit", "begin the exit; the stake unlocks after the unbonding period", run_exit)
    add_command(actions, common, "withdraw", "withdraw the stake once the unbonding period is over", run_withdraw)


def _add_policy_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    def note(text: str) -> str:
        return text if defaults else text.split(" (default")[0]

    parser.add_argument("--min-price", type=amount_at_most(UINT96_MAX, "the market stores prices as uint96"),
                        help=note("lowest price per query to join (default 0)"))
    parser.add_argument("--epsilon-budget", type=epsilon, metavar="EPSILON",
                        help=note(f"lifetime privacy budget, e.g. 10 (default {format_epsilon(DEFAULT_EPSILON_BUDGET)})"))
    parser.add_argument("--templates", type=comma_list, metavar="LIST",
                        help=note("templates to join, e.g. histogram,mean, or all (default all)"))
    parser.add_argument("--allow-exact", action=argparse.BooleanOptionalAction,
                        help=note("join exact (noise-free) queries (default no)"))
    parser.add_argument("--expiry", type=duration, metavar="DURATION",
                        help=note("the policy ends this long from now, e.g. 30d (default 365d)"))
    parser.add_argument("--columns", type=comma_list, metavar="LIST",
                        help=note("columns a query may read, checked on this machine (default every column)"))
    parser.add_argument("--max-epsilon", type=epsilon, metavar="EPSILON",
                        help=note("largest epsilon one query may spend, checked on this machine (default no limit)"))


# --------------------------------------------------------------------------------------------------
# Helpers


def _template_mask(names: list[str]) -> int:
    from offchain_workers.templates import TEMPLATES, template_mask

    if names == ["all"]:
        return template_mask(*TEMPLATES)
    unknown = [name for name in names if name not in TEMPLATES]
    if unknown:
        raise CliError(f"unknown template {unknown[0]!r} in --templates; choose from {', '.join(TEMPLATES)} or all")
    return template_mask(*names)


def _template_names(mask: int) -> list[str]:
    from offchain_workers.templates import TEMPLATES

    return [name for name, template in TEMPLATES.items() if mask >> template.template_id & 1]


def _check_expiry(expiry: int, now: int) -> None:
    """Raise when the policy would end now, or after the latest time the market stores (uint40)."""
    if expiry <= 0:
        raise CliError(f"--expiry {expiry}s ends the policy now; pass a duration such as 30d")
    if now + expiry > UINT40_MAX:
        raise CliError(
            f"invalid --expiry {duration_option(expiry)}: it ends the policy past 2^40 - 1 seconds after 1970, the "
            f"latest time the market stores; the largest --expiry now is {floor_duration_option(UINT40_MAX - now)}"
        )


def _dataset_commitment(path: Path, salt: bytes) -> bytes:
    return keccak(salt + path.read_bytes())


def _policy_data(policy: OwnerPolicy) -> dict[str, Any]:
    return {
        "minPricePerQueryWei": str(policy.min_price_per_query),
        "epsilonBudget": policy.epsilon_budget,
        "templates": _template_names(policy.template_mask),
        "allowExact": policy.allow_exact,
        "expiresAt": policy.expires_at,
    }


def _policy_lines(policy: OwnerPolicy, now: int) -> list[str]:
    return [
        f"min price:       {format_ether(policy.min_price_per_query)} per query",
        f"epsilon budget:  {format_epsilon(policy.epsilon_budget)}",
        f"templates:       {', '.join(_template_names(policy.template_mask)) or 'none'}",
        f"exact queries:   {'allowed' if policy.allow_exact else 'not allowed'}",
        f"expires:         {format_time(policy.expires_at, now)}",
    ]


# --------------------------------------------------------------------------------------------------
# register and policy


def run_register(context: Context, args: argparse.Namespace) -> int:
    dataset = read_dataset(args.data, args.columns)
    path = dataset.path
    market = context.market
    address = context.address
    info = market.owner_info(address)
    if info.registered:
        raise CliError(
            f"account {address} is already registered as an owner; change its policy with `pmsr owner policy`"
        )
    minimum = market.min_owner_stake()
    stake = minimum if args.stake is None else args.stake
    if stake < minimum:
        raise CliError(
            f"stake {format_ether(stake)} is below the market's minimum owner stake {format_ether(minimum)}; "
            f"pass --stake {amount_option(minimum)} or more"
        )
    now = context.chain_time()
    expiry = DEFAULT_EXPIRY_SECONDS if args.expiry is None else args.expiry
    _check_expiry(expiry, now)
    policy = OwnerPolicy(
        min_price_per_query=args.min_price or 0,
        epsilon_budget=DEFAULT_EPSILON_BUDGET if args.epsilon_budget is None else args.epsilon_budget,
        template_mask=_template_mask(args.templates or ["all"]),
        allow_exact=bool(args.allow_exact),
        expires_at=now + expiry,
    )
    salt = secrets.token_bytes(32)
    commitment = _dataset_commitment(path, salt)
    call = market.calls.register_owner(policy, commitment, stake=stake)
    context.check(call, f"registering with stake {format_ether(stake)}")

    record = OwnerRecord(
        address=address, chain_id=context.chain_id, market=market.address, dataset=path,
        dataset_format=dataset.table_format,
        commitment_salt=salt, dataset_commitment=commitment,
        allowed_columns=tuple(args.columns) if args.columns else None, max_epsilon_per_query=args.max_epsilon,
    )
    # The record (with the commitment's salt) is written first, so a registered owner never lacks it.
    previous = OwnerRecord.path(context.settings.data_dir, address)
    backup = previous.read_bytes() if previous.exists() else None
    record_path = record.write(context.settings.data_dir)
    try:
        receipt = context.send(call, f"registering with stake {format_ether(stake)}")
    except BaseException:
        if backup is None:
            record_path.unlink(missing_ok=True)
        else:
            record_path.write_bytes(backup)
        raise

    data = {
        "address": address,
        "stakeWei": str(stake),
        "policy": _policy_data(policy),
        "datasetCommitment": "0x" + commitment.hex(),
        "dataset": str(path),
        "datasetRows": dataset.rows,
        "datasetColumns": [column.to_json() for column in dataset.columns],
        "record": str(record_path),
        "transactionHash": receipt.transaction_hash,
    }
    context.output.result(
        data,
        "\n".join([f"Registered owner {address} with stake {format_ether(stake)}.", *_policy_lines(policy, now),
                   f"data file:       {path} (stays on this machine)", *dataset.lines()]),
    )
    return 0


def run_policy(context: Context, args: argparse.Namespace) -> int:
    market = context.market
    from .wallet import selected_address

    changes = [args.min_price, args.epsilon_budget, args.templates, args.allow_exact, args.expiry, args.columns,
               args.max_epsilon]
    address = selected_address(context) if all(change is None for change in changes) else context.address
    info = market.owner_info(address)
    if not info.registered:
        raise CliError(f"account {address} is not registered as an owner; register it with `pmsr owner register`")
    now = context.chain_time()
    record = OwnerRecord.load(context.settings.data_dir, address)

    if args.expiry is not None:
        _check_expiry(args.expiry, now)
    policy = info.policy
    updated = replace(
        policy,
        min_price_per_query=policy.min_price_per_query if args.min_price is None else args.min_price,
        epsilon_budget=policy.epsilon_budget if args.epsilon_budget is None else args.epsilon_budget,
        template_mask=policy.template_mask if args.templates is None else _template_mask(args.templates),
        allow_exact=policy.allow_exact if args.allow_exact is None else bool(args.allow_exact),
        expires_at=policy.expires_at if args.expiry is None else now + args.expiry,
    )
    if record is not None and args.columns is not None:
        read_dataset(str(record.dataset), args.columns)
    local_changed = args.columns is not None or args.max_epsilon is not None
    if local_changed and record is None:
        raise CliError(
            f"no owner record for {address} in {context.settings.data_dir}; --columns and --max-epsilon apply on "
            "the machine that registered the owner"
        )

    transaction_hash = None
    if updated != policy:
        receipt = context.send(market.calls.update_owner_policy(updated), "updating the policy")
        transaction_hash = receipt.transaction_hash
    if local_changed and record is not None:
        record = replace(
            record,
            allowed_columns=tuple(args.columns) if args.columns is not None else record.allowed_columns,
            max_epsilon_per_query=args.max_epsilon if args.max_epsilon is not None else record.max_epsilon_per_query,
        )
        record.write(context.settings.data_dir)

    local = record.to_json()["localPolicy"] if record is not None else None
    data = {"address": address, "policy": _policy_data(updated), "localPolicy": local, "transactionHash": transaction_hash}

    def text() -> str:
        headline = "Updated the policy of" if transaction_hash or local_changed else "Policy of"
        lines = [f"{headline} owner {address}:", *_policy_lines(updated, now)]
        if record is not None:
            columns = ", ".join(record.allowed_columns) if record.allowed_columns else "every column"
            maximum = format_epsilon(record.max_epsilon_per_query) if record.max_epsilon_per_query is not None else "none"
            lines += [f"columns:         {columns} (local)", f"max epsilon:     {maximum} per query (local)"]
        return "\n".join(lines)

    context.output.result(data, text)
    return 0


# --------------------------------------------------------------------------------------------------
# status


def _submitted_queries(context: Context, address: str) -> list[int]:
    records = context.market.events("SharesSubmitted", context.deployment.block_number, filters={"owner": address})
    return sorted({record.query_id for record in records})  # type: ignore[attr-defined]


def _still_submitted(context: Context, address: str, query_ids: list[int]) -> list[int]:
    """Return the queries in which the owner's submission is still unsettled on-chain."""
    market = context.market
    return [query_id for query_id in query_ids
            if market.submission_state(query_id, address) == SubmissionState.SUBMITTED]


def _settled_meanwhile(context: Context, address: str, query_ids: list[int], error: Exception) -> bool:
    """Tell whether a failed claim or release failed because the owner agent settled the queries first."""
    if isinstance(error, ContractRevertError) and error.error_name == "NotSubmitted":
        return True
    return not _still_submitted(context, address, query_ids)


def _agent_decisions(context: Context, address: str) -> dict[int, Any]:
    """Return the agent's decisions for this owner by query id, from its state database if it ran here."""
    database = owner_dir(context.settings.data_dir, address) / DATABASE_NAME
    if not database.is_file():
        return {}
    from offchain_workers.owner.state import OwnerState

    state = OwnerState(database)
    try:
        return {row.query_id: row for row in state.decisions(owner=address)}
    finally:
        state.close()


def run_status(context: Context, args: argparse.Namespace) -> int:
    from .wallet import selected_address

    market = context.market
    address = selected_address(context)
    info = market.owner_info(address)
    now = context.chain_time()
    record = OwnerRecord.load(context.settings.data_dir, address)
    decisions = _agent_decisions(context, address)
    queries = []
    if info.registered:
        for query_id in sorted(set(_submitted_queries(context, address)) | set(decisions)):
            decision = decisions.get(query_id)
            queries.append({
                "queryId": query_id,
                "queryStatus": market.query_info(query_id).status.name,
                "submission": market.submission_state(query_id, address).name,
                "decision": decision.status.value if decision is not None else None,
                "reason": decision.reason if decision is not None else None,
            })
    withdrawable_at = info.exit_requested_at + market.unbonding_period() if info.exit_requested_at else 0
    remaining = max(info.policy.epsilon_budget - info.epsilon_used, 0)
    data = {
        "address": address,
        "registered": info.registered,
        "stakeWei": str(info.stake),
        "policy": _policy_data(info.policy) if info.registered else None,
        "epsilonUsed": info.epsilon_used,
        "epsilonRemaining": remaining,
        "openSubmissions": info.open_submissions,
        "exitRequestedAt": info.exit_requested_at,
        "withdrawableAt": withdrawable_at,
        "dataset": str(record.dataset) if record else None,
        "queries": queries,
        "chainTime": now,
    }

    def text() -> str:
        if not info.registered:
            return f"{address} is not registered as an owner; register with `pmsr owner register --data FILE`."
        lines = [
            f"owner:           {address}",
            f"stake:           {format_ether(info.stake)}",
            *_policy_lines(info.policy, now),
            f"epsilon used:    {format_epsilon(info.epsilon_used)} ({format_epsilon(remaining)} left)",
            f"data file:       {record.dataset if record else 'no owner record on this machine'}",
        ]
        if info.exit_requested_at:
            lines.append(f"withdrawable:    {format_time(withdrawable_at, now)}")
        if queries:
            rows = [[q["queryId"], q["queryStatus"].lower(), q["submission"].lower(), q["decision"] or "-",
                     q["reason"] if q["decision"] in ("refused", "skipped") else ""] for q in queries]
            lines += ["", format_table(["QUERY", "STATUS", "SUBMISSION", "AGENT", "REASON"], rows)]
        return "\n".join(lines)

    context.output.result(data, text)
    return 0


# --------------------------------------------------------------------------------------------------
# claim, exit, withdraw


def run_claim(context: Context, args: argparse.Namespace) -> int:
    market = context.market
    address = context.address
    if not market.owner_info(address).registered:
        raise CliError(f"account {address} is not registered as an owner; nothing to claim")
    candidates = sorted(set(args.query)) if args.query else _submitted_queries(context, address)
    to_claim: list[int] = []
    to_release: list[int] = []
    for query_id in candidates:
        status = market.query_info(query_id).status
        state = market.submission_state(query_id, address)
        if state != SubmissionState.SUBMITTED:
            if args.query:
                raise CliError(
                    f"owner {address} has nothing to settle in query {query_id} (submission {state.name.lower()})"
                )
            continue
        if status == QueryStatus.PUBLISHED:
            to_claim.append(query_id)
        elif status in (QueryStatus.CANCELLED, QueryStatus.FAILED):
            to_release.append(query_id)
        elif args.query:
            raise CliError(f"query {query_id} is still {status.name.lower()}; claim after its result is published")

    paid = 0
    transactions: list[str] = []
    with context.output.progress("settling queries", len(to_claim) + len(to_release)) as progress:
        done = 0
        claimed: list[int] = []
        for start in range(0, len(to_claim), CLAIM_BATCH):
            batch = to_claim[start: start + CLAIM_BATCH]
            call = market.calls.claim_many(batch) if len(batch) > 1 else market.calls.claim(batch[0])
            try:
                receipt = context.send(call, "claiming payments")
            except (CliError, ContractRevertError) as error:
                # A running owner agent may have claimed these queries since their state was read;
                # its claim may still be pending, so the revert itself is the evidence.
                if args.query or not _settled_meanwhile(context, address, batch, error):
                    raise
                logger.info("queries %s were settled meanwhile, by the owner agent", batch)
                continue
            claimed.extend(batch)
            transactions.append(receipt.transaction_hash)
            paid += sum(getattr(event, "amount", 0) for event in market.receipt_events(receipt)
                        if type(event).__name__ == "OwnerPaid")
            done += len(batch)
            progress.update(done, f"{len(batch)} claimed")
        released: list[int] = []
        for query_id in to_release:
            try:
                receipt = context.send(market.calls.release_budget(query_id), "releasing budget")
            except (CliError, ContractRevertError) as error:
                if args.query or not _settled_meanwhile(context, address, [query_id], error):
                    raise
                logger.info("query %d was settled meanwhile, by the owner agent", query_id)
                continue
            released.append(query_id)
            transactions.append(receipt.transaction_hash)
            done += 1
            progress.update(done, f"budget of query {query_id} released")

    to_claim, to_release = claimed, released
    data = {"address": address, "claimed": to_claim, "released": to_release, "paidWei": str(paid),
            "transactionHashes": transactions}
    if not to_claim and not to_release:
        text = f"Nothing to settle for owner {address}."
    else:
        text = (f"Claimed {format_ether(paid)} for {len(to_claim)} published queries"
                f"{' ' + str(to_claim) if to_claim else ''}; released the budget of {len(to_release)} "
                f"cancelled or failed queries{' ' + str(to_release) if to_release else ''}.")
    context.output.result(data, text)
    return 0


def run_exit(context: Context, args: argparse.Namespace) -> int:
    market = context.market
    receipt = context.send(market.calls.begin_owner_exit(), "beginning the exit")
    info = market.owner_info(context.address)
    withdrawable_at = info.exit_requested_at + market.unbonding_period()
    context.output.result(
        {"address": context.address, "exitRequestedAt": info.exit_requested_at, "withdrawableAt": withdrawable_at,
         "transactionHash": receipt.transaction_hash},
        f"Owner {context.address} began its exit; withdraw the stake with `pmsr owner withdraw` "
        f"after {format_time(withdrawable_at)}.",
    )
    return 0


def run_withdraw(context: Context, args: argparse.Namespace) -> int:
    market = context.market
    stake = market.owner_info(context.address).stake
    receipt = context.send(market.calls.withdraw_owner_stake(), "withdrawing the stake")
    context.output.result(
        {"address": context.address, "amountWei": str(stake), "transactionHash": receipt.transaction_hash},
        f"Withdrew the stake of {format_ether(stake)} to {context.address}.",
    )
    return 0


# --------------------------------------------------------------------------------------------------
# run


def _load_record(context: Context, address: str) -> OwnerRecord:
    record = OwnerRecord.load(context.settings.data_dir, address)
    if record is None:
        raise CliError(
            f"no owner record for {address} in {context.settings.data_dir}; run the agent on the machine (and "
            "--data-dir) where `pmsr owner register` ran"
        )
    market = context.market
    if record.chain_id != context.chain_id or record.market != market.address:
        raise CliError(
            f"owner record {OwnerRecord.path(context.settings.data_dir, address)} is for market {record.market} on "
            f"chain {record.chain_id}, not market {market.address} on chain {context.chain_id}; pass the matching --rpc"
        )
    return record


def _warn_if_data_changed(context: Context, record: OwnerRecord, on_chain: bytes) -> None:
    try:
        current = _dataset_commitment(record.dataset, record.commitment_salt)
    except OSError as error:
        raise CliError(f"cannot read the data file {record.dataset}: {error.strerror}") from None
    if current != on_chain:
        context.output.notice(
            f"warning: {record.dataset} changed since registration; its hash no longer matches the on-chain "
            "dataset commitment"
        )


def _check_query(context: Context, address: str, record: OwnerRecord, local_policy: Any, query_id: int) -> None:
    """Raise, before anything is sent or stored, for a query this owner cannot or will not join."""
    from offchain_workers.owner.policy import check_spec, evaluate
    from offchain_workers.tables import column_kinds, load_table

    market = context.market
    info = market.query_info(query_id)
    if info.status == QueryStatus.NONE:
        raise CliError(f"query {query_id} not found on market {market.address}; list queries with `pmsr query list`")
    now = context.chain_time()
    if info.status not in (QueryStatus.PROPOSED, QueryStatus.OPEN):
        raise CliError(f"query {query_id} is already {info.status.name.lower()}; it takes no more submissions")
    if info.status == QueryStatus.PROPOSED and now > info.params.accept_deadline:
        raise CliError(
            f"the accept deadline of query {query_id} passed at {format_time(info.params.accept_deadline)} before "
            f"every aggregator accepted (chain time {format_time(now)}); the query will be cancelled"
        )
    if now > info.params.submit_deadline:
        raise CliError(
            f"the submit deadline of query {query_id} passed at {format_time(info.params.submit_deadline)} "
            f"(chain time {format_time(now)}); it takes no more submissions"
        )
    state = market.submission_state(query_id, address)
    if state != SubmissionState.NONE:
        raise CliError(f"owner {address} already submitted to query {query_id} ({state.name.lower()})")
    proposals = market.events("QueryProposed", context.deployment.block_number, filters={"queryId": query_id})
    if not proposals:
        raise CliError(f"no QueryProposed event for query {query_id}; the node may have pruned its logs")
    proposal = proposals[0]
    check = check_spec(proposal.spec_json, proposal.spec_hash, proposal.params)  # type: ignore[attr-defined]
    if check.refusal is not None:
        raise CliError(f"query {query_id} rejected: {check.refusal.reason}")
    assert check.spec is not None
    kinds = column_kinds(load_table(record.dataset))
    decision = evaluate(
        check.spec, info.params, market.owner_info(address), local_policy, now=now,
        min_owner_stake=market.min_owner_stake(), column_kinds=kinds,
    )
    if not decision.accepted:
        raise CliError(
            f"query {query_id} rejected by the policy of owner {address}: {decision.reason}; change the policy "
            "with `pmsr owner policy` to join it"
        )


def run_agent(context: Context, args: argparse.Namespace) -> int:
    from offchain_workers.owner.agent import OwnerFleet
    from offchain_workers.owner.config import DatasetSource, FleetConfig, LocalPolicy, MarketSource, OwnerConfig
    from offchain_workers.owner.state import Status

    market = context.market
    address = context.address
    info = market.owner_info(address)
    if not info.registered:
        raise CliError(f"account {address} is not registered as an owner; run `pmsr owner register` first")
    record = _load_record(context, address)
    _warn_if_data_changed(context, record, info.dataset_commitment)
    if args.poll_interval <= 0:
        raise CliError(f"--poll-interval {args.poll_interval} must be a positive number of seconds")

    local_policy = LocalPolicy(
        allowed_columns=frozenset(record.allowed_columns) if record.allowed_columns is not None else None,
        max_epsilon_per_query=record.max_epsilon_per_query,
    )
    database = owner_dir(context.settings.data_dir, address) / DATABASE_NAME
    owner = OwnerConfig(
        account=context.account,
        dataset=DatasetSource(record.dataset, record.dataset_format),
        local_policy=local_policy,
        rpc_url=context.settings.rpc_url,
        market=MarketSource(address=market.address),
        db_path=database,
        poll_interval=args.poll_interval,
    )
    if args.query is not None:
        _check_query(context, address, record, local_policy, args.query)
    config = FleetConfig(owners=(owner,), workers=2, start_block=context.deployment.block_number, keeper=args.keeper)
    lock = owner_dir(context.settings.data_dir, address) / "agent.lock"
    with context.exclusive_lock(lock, f"an owner agent for {address}"), OwnerFleet(config, market=market) as fleet:
        context.output.notice(
            f"Owner {address} is watching market {market.address} with {record.dataset} (state in {database}); "
            "stop it with Ctrl-C."
        )
        with context.service_logging(), context.stop_on_signals() as stop:
            if args.query is None:
                fleet.run(stop)
                return 0
            decision = None
            final = {Status.SUBMITTED, Status.REFUSED, Status.SKIPPED, Status.EXCLUDED, Status.CLAIMED,
                     Status.RELEASED}
            while not stop.is_set():
                fleet.run_once()
                decision = fleet.state.decision(address, args.query)
                if decision is not None and decision.status in final:
                    break
                stop.wait(args.poll_interval)
    if decision is None or decision.status in (Status.REFUSED, Status.SKIPPED):
        reason = decision.reason if decision is not None else "stopped before deciding"
        raise CliError(f"owner {address} did not submit to query {args.query}: {reason}")
    context.output.result(
        {"address": address, "queryId": args.query, "status": decision.status.value,
         "transactionHash": decision.tx_hash},
        f"Owner {address} submitted its shares to query {args.query} ({decision.status.value}).",
    )
    return 0
