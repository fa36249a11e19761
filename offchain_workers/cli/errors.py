"""Errors of the command line and their one-line descriptions.

Every failure reaches the user as one line on stderr that names the bad value and what to do, with
a non-zero exit status. `describe_error` turns the project's exceptions into that line, and
`revert_message` rewrites the market's custom errors (decoded by `pmsr_chain`) into advice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from pmsr_chain.errors import ContractRevertError, PmsrError, RpcError, TransactionFailedError
from pmsr_chain.units import format_ether

__all__ = ["CliError", "Terminated", "UsageError", "WaitInterruptedError", "amount_option", "describe_error", "revert_message"]


class CliError(PmsrError, RuntimeError):
    """A command cannot run as requested. The message states why and what to do."""

    exit_status = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived. It unwinds like Ctrl-C, so every `with` block stops what it started."""


class WaitInterruptedError(CliError):
    """Ctrl-C or SIGTERM stopped a wait; the exit status is the shell's convention for that signal."""

    exit_status = 130

    def __init__(self, message: str, *, terminated: bool = False) -> None:
        super().__init__(message)
        if terminated:
            self.exit_status = 143


class UsageError(CliError, ValueError):
    """The command line itself is invalid: an unknown option, a missing argument or a bad value."""

    exit_status = 2


def _when(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(int(timestamp), dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ether(value: Any) -> str:
    return format_ether(int(value))


def amount_option(wei: int) -> str:
    """Write wei the way the amount options accept it, e.g. `0.01ether`."""
    return format_ether(int(wei)).removesuffix(" ETH") + "ether"


def _status(value: Any) -> str:
    return getattr(value, "name", str(value)).capitalize()


# Advice for the market's custom errors, keyed by error name; each gets the decoded arguments.
_REVERT_ADVICE: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "StakeTooLow": lambda a: (
        f"stake {_ether(a['provided'])} is below the market's minimum {_ether(a['minimum'])}; "
        f"pass --stake {amount_option(a['minimum'])} or more"
    ),
    "StakeTooLarge": lambda a: f"stake {_ether(a['provided'])} is above the maximum {_ether(a['maximum'])}",
    "OwnerAlreadyRegistered": lambda a: (
        f"account {a['owner']} is already registered as an owner; change its policy with `pmsr owner policy`"
    ),
    "OwnerNotRegistered": lambda a: (
        f"account {a['owner']} is not registered as an owner; register it with `pmsr owner register`"
    ),
    "OwnerExiting": lambda a: f"owner {a['owner']} began its exit at {_when(a['exitRequestedAt'])}",
    "OwnerNotExiting": lambda a: f"owner {a['owner']} has not begun an exit; run `pmsr owner exit` first",
    "PolicyExpired": lambda a: (
        f"the policy of owner {a['owner']} expired at {_when(a['expiresAt'])}; renew it with "
        "`pmsr owner policy --expiry 30d`"
    ),
    "InvalidPolicyExpiry": lambda a: (
        f"policy expiry {_when(a['expiresAt'])} is not after the chain time {_when(a['now_'])}; pass a longer --expiry"
    ),
    "UnbondingNotOver": lambda a: (
        f"the stake can be withdrawn only after {_when(a['withdrawableAt'])} (chain time is {_when(a['now_'])}); "
        "try again then"
    ),
    "OwnerHasOpenSubmissions": lambda a: (
        f"owner {a['owner']} still has {a['openSubmissions']} unsettled submissions; run `pmsr owner claim` "
        "once those queries finish"
    ),
    "AggregatorAlreadyRegistered": lambda a: f"account {a['aggregator']} is already registered as an aggregator",
    "AggregatorNotRegistered": lambda a: (
        f"aggregator {a['aggregator']} is not registered; register it with `pmsr aggregator register`"
    ),
    "AggregatorExiting": lambda a: f"aggregator {a['aggregator']} began its exit at {_when(a['exitRequestedAt'])}",
    "AggregatorNotExiting": lambda a: (
        f"aggregator {a['aggregator']} has not begun an exit; run `pmsr aggregator exit` first"
    ),
    "AggregatorHasOpenQueries": lambda a: (
        f"aggregator {a['aggregator']} still serves {a['openQueries']} unsettled queries; keep "
        "`pmsr aggregator run` going until they finish"
    ),
    "ZeroAmount": lambda a: "nothing to move: the amount is 0 (a stake already withdrawn, or a top-up of nothing)",
    "QueryNotFound": lambda a: f"query {a['queryId']} not found; list queries with `pmsr query list`",
    "WrongQueryStatus": lambda a: (
        f"query {a['queryId']} is {_status(a['actual'])}, but this needs it {_status(a['expected'])}"
    ),
    "InvalidDeadlines": lambda a: (
        f"deadlines accept {_when(a['acceptDeadline'])}, submit {_when(a['submitDeadline'])}, commit "
        f"{_when(a['commitDeadline'])}, reveal {_when(a['revealDeadline'])} are out of order or already passed "
        f"(chain time {_when(a['now_'])}); pass longer windows"
    ),
    "InvalidAggregatorCount": lambda a: (
        f"aggregator count {a['count']} is outside the market's {a['minimum']}..{a['maximum']}; list that many in "
        "--aggregators, or pass --aggregators auto"
    ),
    "DuplicateAggregator": lambda a: f"aggregator {a['aggregator']} is listed twice; name each aggregator once",
    "InvalidOutputLength": lambda a: (
        f"the query has {a['length']} output coordinates, but the market takes at most {a['maximum']}; "
        "use fewer bins or terms"
    ),
    "InvalidOwnerBounds": lambda a: (
        f"owner bounds min {a['minOwners']} and max {a['maxOwners']} are invalid; "
        "pass 1 <= --min-owners <= --max-owners"
    ),
    "EncodedBoundTooLarge": lambda a: (
        f"max owners {a['maxOwners']} x one owner's largest encoded value {a['maxAbsEncoded']} reaches 2^62; "
        "lower --max-owners, narrow the clip or lower the fractional bits"
    ),
    "ZeroEncodedBound": lambda a: (
        "every clip bound of the query rounds to 0 at its fractional bits; widen the clip or raise the fractional bits"
    ),
    "WrongPayment": lambda a: f"payment {_ether(a['sent'])} differs from the required escrow {_ether(a['required'])}",
    "DeadlinePassed": lambda a: (
        f"the deadline of query {a['queryId']} passed at {_when(a['deadline'])} (chain time {_when(a['now_'])})"
    ),
    "NotYetDue": lambda a: (
        f"query {a['queryId']} cannot move on until after {_when(a['dueAfter'])} (chain time {_when(a['now_'])}); "
        "try again then"
    ),
    "TemplateNotAllowed": lambda a: (
        f"the policy of owner {a['owner']} does not allow template id {a['templateId']} "
        f"(template mask {int(a['templateMask']):#x})"
    ),
    "ExactQueryNotAllowed": lambda a: f"the policy of owner {a['owner']} does not allow exact (noise-free) queries",
    "PriceBelowMinimum": lambda a: (
        f"price {_ether(a['price'])} is below the minimum {_ether(a['minimum'])} of owner {a['owner']}"
    ),
    "BudgetExceeded": lambda a: (
        f"owner {a['owner']} has used {a['epsilonUsed']} of its {a['budget']} epsilon millionths and cannot "
        f"spend {a['epsilon']} more"
    ),
    "TooFewOwners": lambda a: (
        f"query {a['queryId']} has {a['included']} included owners, fewer than its minimum {a['minOwners']}; "
        "cancel it with `pmsr query cancel`"
    ),
    "EnoughOwners": lambda a: (
        f"query {a['queryId']} has {a['included']} included owners (minimum {a['minOwners']}), so it cannot be cancelled"
    ),
    "NothingToCancel": lambda a: f"query {a['queryId']} has nothing to cancel now",
    "NothingToFail": lambda a: f"query {a['queryId']} has no missed commit or reveal deadline",
    "NotAnalyst": lambda a: (
        f"only the analyst {a['analyst']} can do this for query {a['queryId']}, not {a['caller']}; "
        "pass the analyst's --keystore"
    ),
    "AlreadyRefunded": lambda a: f"query {a['queryId']} was already refunded",
    "NotSubmitted": lambda a: (
        f"owner {a['owner']} has nothing to settle in query {a['queryId']} (submission state {_status(a['state'])})"
    ),
    "NotRevealed": lambda a: f"aggregator {a['aggregator']} did not reveal in query {a['queryId']}, so it earned no fee",
    "FeeAlreadyClaimed": lambda a: f"aggregator {a['aggregator']} already claimed its fee for query {a['queryId']}",
}


def revert_message(error: ContractRevertError) -> str:
    """Describe a reverted (or would-revert) market call in one line, with advice where there is some."""
    advice = _REVERT_ADVICE.get(error.error_name or "")
    if advice is not None:
        try:
            return advice(error.arguments)
        except (KeyError, TypeError, ValueError, OverflowError):
            pass
    return f"{error}"


def _rpc_reason(error: RpcError) -> str:
    text = str(error)
    lowered = text.lower()
    if "connection refused" in lowered:
        return "connection refused"
    if "timed out" in lowered or "timeout" in lowered:
        return "the request timed out"
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return "unknown host name"
    return text


def describe_error(error: BaseException) -> str:
    """Return the one line shown for `error`: no newlines, no traceback."""
    if isinstance(error, ContractRevertError):
        message = revert_message(error)
    elif isinstance(error, TransactionFailedError) and error.revert is not None:
        message = f"transaction {error.transaction_hash} failed: {revert_message(error.revert)}"
    elif isinstance(error, RpcError):
        message = f"JSON-RPC request {error.method} failed: {_rpc_reason(error)}"
    elif isinstance(error, PmsrError):
        message = str(error)
    elif isinstance(error, OSError):
        name = f" {error.filename}" if error.filename else ""
        message = f"{error.strerror or error}{':' if name else ''}{name}"
    else:
        message = f"{type(error).__name__}: {error}"
    return " ".join(message.split())
