"""The spec hash vector shared with the Foundry tests matches what proposeQuery computes."""

from __future__ import annotations

import json

from eth_utils import keccak

from pmsr_chain import QueryStatus
from pmsr_chain._paths import repository_root
from pmsr_chain.events import QueryProposed
from pmsr_chain.testing import MarketHarness

VECTOR_PATH = repository_root() / "contracts" / "test" / "vectors" / "spec_hash.json"


def test_spec_hash_vector_matches_contract(harness: MarketHarness) -> None:
    vector = json.loads(VECTOR_PATH.read_text())
    spec_json = vector["specJson"].encode("utf-8")
    expected = bytes.fromhex(vector["specHash"].removeprefix("0x"))
    assert keccak(spec_json) == expected

    aggregators = harness.register_aggregators(2)
    query = harness.propose(aggregators, spec_json=spec_json, accept=False)

    info = harness.market.query_info(query.query_id)
    assert info.status == QueryStatus.PROPOSED
    assert info.spec_hash == expected
    (event,) = harness.market.events("QueryProposed", filters={"queryId": query.query_id})
    assert isinstance(event, QueryProposed)
    assert event.spec_hash == expected
    assert event.spec_json == spec_json
    assert event.params == query.params
