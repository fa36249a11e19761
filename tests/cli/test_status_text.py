"""The text of `pmsr query status`: the phase, and the deadlines only while the query runs."""

from __future__ import annotations

from offchain_workers.cli.query import _status_text


def test_settled_query_status_shows_no_deadlines() -> None:
    data = {
        "queryId": 4, "status": "PUBLISHED", "phase": "published", "templateId": 5, "epsilon": 1_000_000,
        "analyst": "0x" + "11" * 20, "pricePerOwnerWei": "1000", "feePerAggregatorWei": "2000", "minOwners": 1,
        "maxOwners": 3, "aggregators": ["0x" + "22" * 20, "0x" + "33" * 20], "accepted": 2, "submitted": 3,
        "excluded": 0, "included": 3, "committed": 2, "revealed": 2, "acceptDeadline": 100, "submitDeadline": 200,
        "commitDeadline": 300, "revealDeadline": 400, "escrowWei": "0", "analystRefunded": True, "chainTime": 150,
    }
    text = _status_text(data)
    assert text.splitlines()[0] == "query 4: published"
    assert "accept until" not in text
    assert "the query is settled" in text

    running = _status_text({**data, "status": "OPEN", "phase": "submitting"})
    assert running.splitlines()[0] == "query 4: open (submitting)"
    assert "accept until" in running
