"""Event records, bounded-range log reading, cursors, and one client method per ABI function."""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path

import pytest

from pmsr_chain import (
    ArtifactSet,
    ConfigurationError,
    EventPoller,
    EventRecord,
    JsonFileCursor,
    MarketCalls,
    MarketClient,
    MemoryCursor,
)
from pmsr_chain.abi import snake_case
from pmsr_chain.events import EVENT_TYPES, OwnerRegistered, QueryAccepted, QueryProposed
from pmsr_chain.testing import MarketHarness

POSITION_FIELDS = {f.name for f in fields(EventRecord)}


def test_every_event_has_a_record(artifacts: ArtifactSet) -> None:
    events = [item for item in artifacts["DataMarket"].abi if item["type"] == "event"]
    assert {e["name"] for e in events} == set(EVENT_TYPES)
    for event in events:
        record_fields = [f.name for f in fields(EVENT_TYPES[event["name"]]) if f.name not in POSITION_FIELDS]
        assert record_fields == [snake_case(i["name"]) for i in event["inputs"]], event["name"]


def test_every_function_has_a_client_method(artifacts: ArtifactSet) -> None:
    for item in artifacts["DataMarket"].abi:
        if item["type"] != "function":
            continue
        method = snake_case(item["name"])
        assert callable(getattr(MarketClient, method, None)), f"MarketClient lacks {method}"
        if item["stateMutability"] in ("nonpayable", "payable"):
            assert callable(getattr(MarketCalls, method, None)), f"MarketCalls lacks {method}"
        parameters = list(inspect.signature(getattr(MarketClient, method)).parameters)
        for argument in item["inputs"]:
            assert snake_case(argument["name"]) in parameters, f"{method} lacks argument {argument['name']}"


def test_chunked_reads_match_single_read(harness: MarketHarness) -> None:
    start = harness.market.logs.latest_block() + 1
    aggregators = harness.register_aggregators(2)
    harness.register_owners(3)
    harness.propose(aggregators)
    end = harness.market.logs.latest_block()

    whole = harness.market.events(None, start, end)
    small = MarketClient(harness.w3, harness.market.address, harness.market.abi, log_chunk_size=2)
    assert small.events(None, start, end) == whole
    names = [e.name for e in whole]
    assert names.count("AggregatorRegistered") == 2
    assert names.count("OwnerRegistered") == 3
    assert names.count("QueryAccepted") == 2
    assert [(e.block_number, e.log_index) for e in whole] == sorted((e.block_number, e.log_index) for e in whole)
    assert all(e.address == harness.market.address for e in whole)


def test_events_filtered_by_name_and_indexed_argument(harness: MarketHarness) -> None:
    start = harness.market.logs.latest_block() + 1
    aggregators = harness.register_aggregators(2)
    first = harness.propose(aggregators)
    harness.propose(aggregators)

    accepted = harness.market.events("QueryAccepted", start, filters={"queryId": first.query_id})
    assert len(accepted) == 2
    assert all(isinstance(e, QueryAccepted) and e.query_id == first.query_id for e in accepted)
    both = harness.market.events(["QueryProposed", "QueryOpened"], start)
    assert [e.name for e in both] == ["QueryProposed", "QueryOpened", "QueryProposed", "QueryOpened"]
    proposed = [e for e in both if isinstance(e, QueryProposed)]
    assert proposed[0].params == first.params
    assert proposed[0].analyst == first.analyst.sender.address  # type: ignore[union-attr]

    with pytest.raises(ConfigurationError, match="no event"):
        harness.market.events("NoSuchEvent", start)


def test_json_cursor_round_trip(tmp_path: Path) -> None:
    cursor = JsonFileCursor(tmp_path / "state" / "cursor.json")
    assert cursor.load() is None
    cursor.save(41)
    assert cursor.load() == 41
    assert JsonFileCursor(tmp_path / "state" / "cursor.json").load() == 41
    (tmp_path / "state" / "cursor.json").write_text("not json")
    with pytest.raises(ConfigurationError, match="malformed"):
        cursor.load()


def test_poller_resumes_after_cursor(harness: MarketHarness, tmp_path: Path) -> None:
    start = harness.market.logs.latest_block() + 1
    cursor = JsonFileCursor(tmp_path / "cursor.json")
    poller = EventPoller(harness.market.logs, cursor, "OwnerRegistered", start_block=start)
    seen: list[EventRecord] = []

    harness.register_owners(2)
    assert poller.poll(seen.extend) == 2
    assert poller.poll(seen.extend) == 0
    harness.register_owners(1)

    # A restarted poller with the same cursor file reads only the new owner.
    restarted = EventPoller(harness.market.logs, JsonFileCursor(tmp_path / "cursor.json"), "OwnerRegistered")
    assert restarted.poll(seen.extend) == 1
    assert len({e.owner for e in seen if isinstance(e, OwnerRegistered)}) == 3


def test_poller_keeps_cursor_when_handler_fails(harness: MarketHarness) -> None:
    start = harness.market.logs.latest_block() + 1
    cursor = MemoryCursor()
    poller = EventPoller(harness.market.logs, cursor, "OwnerRegistered", start_block=start)
    harness.register_owners(1)

    def broken(_: list[EventRecord]) -> None:
        raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError):
        poller.poll(broken)
    assert cursor.load() is None
    assert poller.poll(lambda records: None) == 1
