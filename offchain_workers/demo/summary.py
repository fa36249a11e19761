"""JSON-ready summaries shared by the demos: phase times, gas by role, payments.

Wei amounts are decimal strings, as in every `pmsr --json` output, because JSON readers in other
languages lose precision above 2^53.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .ledger import ROLE_ORDER, Ledger
from .phases import PhaseClock
from .session import QueryRequest

__all__ = ["phase_summary", "ledger_summary", "query_entry"]


def phase_summary(clock: PhaseClock) -> dict[str, Any]:
    """Return wall-clock seconds in total and per phase, and each phase's CPU seconds per process role.

    Shape: `{"total": s, "phases": {name: s}, "cpu": {name: {role: s}}}`, phases in run order.
    """
    return {
        "total": round(clock.total_seconds, 3),
        "phases": {name: round(seconds, 3) for name, seconds in clock.seconds.items()},
        "cpu": {
            name: {role: round(seconds, 2) for role, seconds in roles.items()}
            for name, roles in clock.cpu_seconds.items()
        },
    }


def _spread(amounts: Sequence[int]) -> dict[str, str] | None:
    if not amounts:
        return None
    ordered = sorted(amounts)
    return {"min": str(ordered[0]), "median": str(ordered[len(ordered) // 2]), "max": str(ordered[-1])}


def ledger_summary(ledger: Ledger, query_ids: Sequence[int]) -> dict[str, Any]:
    """Return the `gas` and `payments` sections of a demo report from `ledger`."""
    by_role: dict[str, Any] = {}
    for role in ROLE_ORDER:
        spending = ledger.spending.get(role)
        if spending is None:
            continue
        by_role[role] = {
            "accounts": len(spending.accounts),
            "transactions": spending.transactions,
            "gas": spending.gas,
            "wei": str(spending.wei),
            "by_call": {
                call: {"transactions": item.transactions, "gas": item.gas, "mean_gas": round(item.mean_gas),
                       "wei": str(item.wei)}
                for call, item in sorted(spending.by_action.items(), key=lambda entry: -entry[1].gas)
            },
        }
    owners = ledger.paid_to_owners()
    aggregators = ledger.paid_to_aggregators()
    return {
        "gas": {
            "total": ledger.total_gas,
            "wei": str(ledger.total_wei),
            "blocks": [ledger.first_block, ledger.last_block],
            "reverted_transactions": ledger.reverted,
            "by_role": by_role,
        },
        "payments": {
            "owners": {
                "paid": len(owners),
                "total_wei": str(sum(owners.values())),
                "per_owner_wei": _spread(list(owners.values())),
                "by_query": {
                    str(query_id): {
                        "included": len(ledger.included_owners(query_id)),
                        "paid": len(ledger.owner_payments.get(query_id, {})),
                        "total_wei": str(sum(ledger.owner_payments.get(query_id, {}).values())),
                    }
                    for query_id in query_ids
                },
            },
            "aggregators": {
                "paid": len(aggregators),
                "total_wei": str(sum(aggregators.values())),
                "per_aggregator_wei": {address: str(amount) for address, amount in aggregators.items()},
            },
            "analyst": {
                "refund_wei": str(sum(ledger.refunds.get(query_id, 0) for query_id in query_ids)),
            },
        },
    }


def query_entry(query_id: int, request: QueryRequest, aggregators: int, refund: int) -> dict[str, Any]:
    """Return one item of a report's `queries` list: the market terms of a query and the analyst's refund."""
    escrow = request.price_per_owner * request.max_owners + request.fee_per_aggregator * aggregators
    return {
        "query_id": query_id,
        "label": request.label,
        "price_per_owner_wei": str(request.price_per_owner),
        "fee_per_aggregator_wei": str(request.fee_per_aggregator),
        "max_owners": request.max_owners,
        "escrow_wei": str(escrow),
        "refund_wei": str(refund),
    }
