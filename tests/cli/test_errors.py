"""Each user error gets one line naming the value and the fix, a non-zero status, and changes nothing.

One Anvil serves the module. The set-up runs through the command line too: it deploys a market,
creates and funds keystores, registers two aggregators and two owners (one demands a price no query
here pays), and proposes one query. Each test then makes one mistake and checks the balances,
nonces and files it could have touched.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from web3 import Web3

from pmsr_chain import AnvilConfig, AnvilNode, increase_time
from pmsr_chain.anvil import dev_accounts

from .helpers import CliResult, assert_one_line_error, file_state, free_port, run_cli

PASSPHRASE = "correct horse"


@dataclass
class Market:
    node: AnvilNode
    data_dir: Path
    work_dir: Path
    env: dict[str, str]
    addresses: dict[str, str]
    query_id: int

    @property
    def w3(self) -> Web3:
        return self.node.web3

    def run(self, *args: str, **env: str) -> CliResult:
        return run_cli(*args, env={**self.env, **env})

    def ok(self, *args: str) -> CliResult:
        result = self.run(*args)
        assert result.status == 0, result
        return result

    def account(self, name: str) -> tuple[int, int]:
        """Balance and nonce of a keystore's or an address's account."""
        address = self.addresses.get(name, name)
        return self.w3.eth.get_balance(address), self.w3.eth.get_transaction_count(address)

    def query_count(self) -> int:
        return len(self.ok("query", "list", "--json", "--last", "1000").json())


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    root = tmp_path_factory.mktemp("cli-errors")
    data_dir, work_dir = root / "data", root / "work"
    work_dir.mkdir()
    with AnvilNode(AnvilConfig(accounts=2), log_path=root / "anvil.log") as node:
        env = {"PMSR_DATA_DIR": str(data_dir), "PMSR_RPC_URL": node.url, "PMSR_PASSWORD": PASSPHRASE}
        market = Market(node, data_dir, work_dir, env, {}, 0)
        market.ok("deploy", "--dev-account", "0", "--complaint-period", "5s", "--unbonding-period", "1m")
        funding = {"analyst": "10ether", "poor": "0.001ether", "agg1": "2ether", "agg2": "2ether",
                   "alice": "1ether", "picky": "1ether"}
        for name, amount in funding.items():
            created = market.ok("wallet", "new", name, "--light-kdf", "--json").json()
            market.addresses[name] = created["address"]
            market.ok("wallet", "fund", name, amount, "--dev-account", "0")
        for name in ("agg1", "agg2"):
            market.ok("aggregator", "register", "--keystore", name, "--light-kdf")
        table = work_dir / "owner.csv"
        table.write_text("wage,education\n640,14\n")
        market.ok("owner", "register", "--keystore", "alice", "--data", str(table))
        market.ok("owner", "register", "--keystore", "picky", "--data", str(table), "--min-price", "1ether")
        proposed = market.ok(
            "query", "propose", "--keystore", "analyst", "--template", "histogram", "--columns", "wage",
            "--bins", "0:1000:4", "--epsilon", "1", "--price", "0.001ether", "--max-owners", "2",
            "--aggregator-count", "2", "--accept-window", "1h", "--json",
        ).json()
        market.query_id = proposed["queryId"]
        yield market


def test_unreachable_rpc(market: Market) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    before = file_state(market.data_dir)

    result = market.run("--rpc", url, "query", "list")

    assert_one_line_error(result, url, "connection refused", "pmsr chain up", "--rpc")
    assert file_state(market.data_dir) == before


def test_manifest_only_for_another_chain(market: Market, tmp_path: Path) -> None:
    manifest = json.loads((market.data_dir / "deployments" / "31337.json").read_text())
    other = tmp_path / "deployments" / "999.json"
    other.parent.mkdir()
    other.write_text(json.dumps({**manifest, "chainId": 999}))
    before = file_state(tmp_path)

    result = market.run("--data-dir", str(tmp_path), "query", "list")

    assert_one_line_error(result, "no market deployed on chain 31337", "only for chain 999", "--rpc", "pmsr deploy")
    assert file_state(tmp_path) == before


def test_manifest_naming_another_chain(market: Market, tmp_path: Path) -> None:
    manifest = json.loads((market.data_dir / "deployments" / "31337.json").read_text())
    edited = tmp_path / "deployments" / "31337.json"
    edited.parent.mkdir()
    edited.write_text(json.dumps({**manifest, "chainId": 999}))
    before = file_state(tmp_path)

    result = market.run("--data-dir", str(tmp_path), "owner", "status", "--dev-account", "1")

    assert_one_line_error(result, str(edited), "manifest is for chain 999", "chain 31337")
    assert file_state(tmp_path) == before


def test_no_deployment_on_chain(market: Market, tmp_path: Path) -> None:
    result = market.run("--data-dir", str(tmp_path), "query", "status", "1")

    assert_one_line_error(result, "no market deployed on chain 31337", "pmsr deploy")
    assert file_state(tmp_path) == {}


def test_badly_checksummed_address(market: Market) -> None:
    dev = dev_accounts(1)[0].address
    good = market.addresses["alice"]
    # Flip the case of one letter: still valid hex, but the EIP-55 checksum no longer matches.
    index = next(i for i, c in enumerate(good) if i > 1 and c.isalpha())
    typo = good[:index] + good[index].swapcase() + good[index + 1:]
    before_dev, before_alice = market.account(dev), market.account("alice")

    result = market.run("wallet", "fund", typo, "0.5ether", "--dev-account", "0")

    assert_one_line_error(result, typo, "checksum", "typo")
    assert market.account(dev) == before_dev
    assert market.account("alice") == before_alice


def test_invalid_address(market: Market) -> None:
    dev = dev_accounts(1)[0].address
    before = market.account(dev)

    result = market.run("wallet", "fund", "0x1234abcd", "0.5ether", "--dev-account", "0")

    assert_one_line_error(result, "0x1234abcd", "40 hexadecimal digits")
    assert market.account(dev) == before


def test_amount_that_does_not_parse(market: Market) -> None:
    dev = dev_accounts(1)[0].address
    before = market.account(dev), market.account("alice")

    result = market.run("wallet", "fund", "alice", "1.5foo", "--dev-account", "0")

    assert_one_line_error(result, "invalid amount '1.5foo'", "0.01ether", status=2)
    assert (market.account(dev), market.account("alice")) == before


def test_negative_amounts(market: Market) -> None:
    dev = dev_accounts(1)[0].address
    before = market.account(dev), market.account("alice"), file_state(market.data_dir)

    as_value = market.run("wallet", "fund", "alice", "-1ether", "--dev-account", "0")
    as_option = market.run("aggregator", "register", "--keystore", "analyst", "--stake=-5", "--light-kdf")

    assert_one_line_error(as_value, "'-1ether'", "cannot be negative", status=2)
    assert_one_line_error(as_option, "--stake", "'-5'", "cannot be negative", status=2)
    assert (market.account(dev), market.account("alice"), file_state(market.data_dir)) == before


def test_insufficient_funds(market: Market) -> None:
    before = market.account("poor"), file_state(market.data_dir)

    result = market.run("aggregator", "register", "--keystore", "poor", "--light-kdf")

    assert_one_line_error(result, "insufficient funds", market.addresses["poor"], "has 0.001 ETH", "needs 1 ETH",
                          "pmsr wallet fund")
    # No transaction, and no key file left behind for an aggregator that never registered.
    assert (market.account("poor"), file_state(market.data_dir)) == before


def test_stake_below_minimum(market: Market) -> None:
    table = market.work_dir / "owner.csv"
    before = market.account("analyst"), file_state(market.data_dir)

    aggregator = market.run("aggregator", "register", "--keystore", "analyst", "--stake", "0.5ether", "--light-kdf")
    owner = market.run("owner", "register", "--keystore", "analyst", "--data", str(table), "--stake", "1gwei")

    assert_one_line_error(aggregator, "stake 0.5 ETH", "minimum aggregator stake 1 ETH", "--stake 1ether")
    assert_one_line_error(owner, "stake 0.000000001 ETH", "minimum owner stake 0.01 ETH", "--stake 0.01ether")
    assert (market.account("analyst"), file_state(market.data_dir)) == before


def test_unknown_query_id(market: Market) -> None:
    before = market.account("analyst")

    for command in (("query", "status", "42"), ("query", "result", "42"),
                    ("query", "refund", "42", "--keystore", "analyst")):
        assert_one_line_error(market.run(*command), "query 42 not found", "pmsr query list")
    assert market.account("analyst") == before


def test_deadline_already_passed_at_proposal(market: Market) -> None:
    before = market.account("analyst"), market.query_count()

    result = market.run(
        "query", "propose", "--keystore", "analyst", "--template", "count", "--exact", "--max-owners", "2",
        "--aggregator-count", "2", "--accept-window", "0s",
    )

    assert_one_line_error(result, "--accept-window 0s", "already passed", "pass a window such as 2m")
    assert (market.account("analyst"), market.query_count()) == before


def test_query_refused_by_owner_policy(market: Market) -> None:
    before = market.account("picky"), file_state(market.data_dir)
    epsilon_used = market.ok("owner", "status", "--keystore", "picky", "--json").json()["epsilonUsed"]

    result = market.run("owner", "run", "--keystore", "picky", "--query", str(market.query_id))

    assert_one_line_error(result, f"query {market.query_id} rejected by the policy", market.addresses["picky"],
                          "below the policy's minimum", "pmsr owner policy")
    assert (market.account("picky"), file_state(market.data_dir)) == before
    assert market.ok("owner", "status", "--keystore", "picky", "--json").json()["epsilonUsed"] == epsilon_used


def test_wrong_keystore_passphrase(market: Market) -> None:
    password_file = market.work_dir / "wrong-passphrase"
    password_file.write_text("not the passphrase\n")
    before = market.account("analyst"), market.account("alice")

    from_env = market.run("wallet", "fund", "alice", "0.1ether", "--keystore", "analyst", PMSR_PASSWORD="nope")
    from_file = market.run("wallet", "fund", "alice", "0.1ether", "--keystore", "analyst",
                           "--password-file", str(password_file))

    assert_one_line_error(from_env, "wrong passphrase", "analyst.json", "PMSR_PASSWORD")
    assert_one_line_error(from_file, "wrong passphrase", "analyst.json")
    assert (market.account("analyst"), market.account("alice")) == before


def test_spec_file_with_invalid_field(market: Market) -> None:
    spec = {
        "version": 1, "template": "count", "params": {}, "schema": ["count"], "clip": [["0", "1"]],
        "fractionalBits": 99, "contributionBound": 1, "epsilon": 0, "exact": True, "postprocess": "count",
    }
    path = market.work_dir / "bad-spec.json"
    path.write_text(json.dumps(spec, indent=2))
    before = market.account("analyst"), market.query_count()

    result = market.run("query", "propose", "--keystore", "analyst", "--spec", str(path), "--max-owners", "2",
                        "--aggregator-count", "2")

    assert_one_line_error(result, str(path), "fractionalBits = 99", "between 0 and 62")
    assert (market.account("analyst"), market.query_count()) == before


# --------------------------------------------------------------------------------------------------
# Out-of-range flags of `query propose`, `owner register` and `owner policy`, and the column kinds
# that `owner register` reports

# Flags every proposal below needs besides its own; two aggregators are registered.
_PROPOSE = ("query", "propose", "--keystore", "analyst", "--aggregator-count", "2")


def _propose_state(market: Market) -> tuple[tuple[int, int], int]:
    return market.account("analyst"), market.query_count()


def test_max_owners_above_uint32(market: Market) -> None:
    before = _propose_state(market)

    result = market.run(*_PROPOSE, "--template", "count", "--exact", "--max-owners", "99999999999999")

    assert_one_line_error(result, "--max-owners 99999999999999", "largest accepted is 4294967295", "uint32")
    assert "clip" not in result.stderr
    assert _propose_state(market) == before


def test_max_owners_above_encoded_bound(market: Market) -> None:
    sum_flags = ("--template", "sum", "--columns", "wage", "--clip", "0:1e9", "--exact")
    # One owner's value encodes to at most 1e9 * 2^16, and max owners times that must stay below 2^62.
    largest = (2**62 - 1) // (10**9 * 2**16)
    before = _propose_state(market)

    result = market.run(*_PROPOSE, *sum_flags, "--max-owners", str(largest + 1))

    assert_one_line_error(result, f"--max-owners {largest + 1}", f"largest accepted for this query is {largest}",
                          "--clip '0:1e9'", "--fractional-bits 16", "2^62")
    assert _propose_state(market) == before
    accepted = market.run(*_PROPOSE, *sum_flags, "--max-owners", str(largest), "--json")
    assert accepted.status == 0, accepted
    assert market.query_count() == before[1] + 1


def test_max_owners_above_bound_of_spec_file(market: Market) -> None:
    spec = {
        "version": 1, "template": "sum", "params": {"column": "wage"}, "schema": ["sum(wage)"], "clip": [["0", "1000000000"]],
        "fractionalBits": 16, "contributionBound": 1, "epsilon": 0, "exact": True, "postprocess": "sum",
    }
    path = market.work_dir / "wide-spec.json"
    path.write_text(json.dumps(spec))
    before = _propose_state(market)

    result = market.run(*_PROPOSE, "--spec", str(path), "--max-owners", "1000000")

    assert_one_line_error(result, "--max-owners 1000000", "largest accepted for this query is 70368", str(path))
    assert _propose_state(market) == before


def test_accept_window_beyond_uint40(market: Market) -> None:
    before = _propose_state(market)
    now = market.w3.eth.get_block("latest")["timestamp"]
    # The reveal deadline is now + accept + submit + complaint period (5s) + commit + reveal windows.
    room = 2**40 - 1 - now - 5 - 3 * 300

    result = market.run(*_PROPOSE, "--template", "count", "--exact", "--max-owners", "2",
                        "--accept-window", "99999999999d")

    assert_one_line_error(result, "--accept-window 99999999999d", "2^40 - 1 seconds", "largest --accept-window is")
    assert "accept_deadline" not in result.stderr
    largest_days = int(result.error_lines[0].rsplit(" ", 1)[1].removesuffix("d"))
    # The chain clock may tick between the two reads.
    assert largest_days in (room // 86400, (room - 60) // 86400)
    assert _propose_state(market) == before


def test_bins_with_huge_number(market: Market) -> None:
    before = _propose_state(market)

    for bins, position in (("0:1e400:4", "STOP"), ("0,1e400", "edge 2")):
        result = market.run(*_PROPOSE, "--template", "histogram", "--columns", "wage", "--bins", bins,
                            "--epsilon", "1", "--max-owners", "2")

        assert_one_line_error(result, f"--bins '{bins}'", position, "at most 64", "between -1e63 and 1e63")
        assert re.search(r"[0-9]{70}", result.stderr) is None, result.stderr
    assert _propose_state(market) == before


@pytest.mark.parametrize(
    ("flags", "fragments", "status"),
    [
        (("--template", "count", "--exact", "--price", "1000000000000ether"),
         ("--price", "'1000000000000ether'", "79228162514.264337593543950335ether", "uint96"), 2),
        (("--template", "count", "--exact", "--fractional-bits", "99"), ("--fractional-bits", "'99'", "0 to 62"), 2),
        (("--template", "count", "--exact", "--contribution-bound", "0"),
         ("--contribution-bound", "'0'", "1 to 1000000"), 2),
        (("--template", "count", "--epsilon", "1e300"), ("--epsilon", "'1e300'", "exponent"), 2),
        (("--template", "count", "--epsilon", "200"), ("--epsilon 200", "largest accepted epsilon 100"), 1),
        (("--template", "count", "--exact", "--timeout", "99999999999999999999d"),
         ("--timeout", "'99999999999999999999d'", "largest accepted is 12725829d"), 2),
        (("--template", "sum", "--columns", "wage", "--clip", "0:1e30", "--exact"),
         ("--clip '0:1e30'", "2^62", "at most 70368744177663"), 1),
        (("--template", "sum", "--columns", "wage", "--clip", "0:0.0000001", "--exact"),
         ("--clip '0:0.0000001'", "rounds to 0", "--fractional-bits 23 or more"), 1),
        (("--template", "ols", "--columns", "wage,education", "--clip", "0:1e12", "--exact"),
         ("--clip '0:1e12'", "largest product, 1.00e+24", "at most 70368744177663"), 1),
        (("--template", "histogram", "--columns", "wage", "--bins", "5,1", "--exact"),
         ("--bins '5,1'", "strictly increasing"), 1),
        (("--template", "count", "--exact", "--filter", "wage >>> 3"), ("--filter 'wage >>> 3'", "position 6"), 1),
        (("--template", "count", "--epsilon", "0.000001", "--fractional-bits", "40"),
         ("--epsilon 0.000001", "--fractional-bits 40", "wrap", "raise --epsilon"), 1),
        (("--template", "count", "--exact", "--submit-window", "99999999999d"),
         ("--submit-window 99999999999d", "largest --submit-window is"), 1),
    ],
    ids=["price", "fractional-bits", "contribution-bound", "epsilon-exponent", "epsilon-above-100", "timeout",
         "clip-wide", "clip-rounds-to-zero", "ols-clip-products", "bins-decreasing", "filter", "noise-wraps",
         "submit-window"],
)
def test_propose_flag_out_of_range(
    market: Market, flags: tuple[str, ...], fragments: tuple[str, ...], status: int
) -> None:
    before = _propose_state(market)

    result = market.run(*_PROPOSE, "--max-owners", "2", *flags)

    assert_one_line_error(result, *fragments, status=status)
    assert "invalid spec field" not in result.stderr
    assert _propose_state(market) == before


def test_epsilon_budget_beyond_uint64(market: Market) -> None:
    table = market.work_dir / "owner.csv"
    policy = market.ok("owner", "policy", "--keystore", "alice", "--json").json()["policy"]
    before = market.account("analyst"), market.account("alice"), file_state(market.data_dir)

    exponent = market.run("owner", "register", "--keystore", "analyst", "--data", str(table),
                          "--epsilon-budget", "1e300")
    too_large = market.run("owner", "policy", "--keystore", "alice", "--epsilon-budget", "99999999999999999")

    assert_one_line_error(exponent, "--epsilon-budget", "'1e300'", "exponent notation", "18446744073709.551615",
                          status=2)
    assert_one_line_error(too_large, "--epsilon-budget", "'99999999999999999'", "largest accepted is 18446744073709.551615",
                          status=2)
    assert (market.account("analyst"), market.account("alice"), file_state(market.data_dir)) == before
    assert market.ok("owner", "policy", "--keystore", "alice", "--json").json()["policy"] == policy


def test_policy_expiry_beyond_uint40(market: Market) -> None:
    table = market.work_dir / "owner.csv"
    before = market.account("analyst"), market.account("alice"), file_state(market.data_dir)

    register = market.run("owner", "register", "--keystore", "analyst", "--data", str(table), "--expiry", "99999999999d")
    policy = market.run("owner", "policy", "--keystore", "alice", "--expiry", "99999999999d")
    min_price = market.run("owner", "policy", "--keystore", "alice", "--min-price", "1000000000000ether")

    for result in (register, policy):
        assert_one_line_error(result, "--expiry 99999999999d", "2^40 - 1 seconds", "largest --expiry now is")
        assert "expires_at" not in result.stderr
    assert_one_line_error(min_price, "--min-price", "'1000000000000ether'", "uint96", status=2)
    assert (market.account("analyst"), market.account("alice"), file_state(market.data_dir)) == before


def test_register_lists_column_kinds(market: Market) -> None:
    table = market.work_dir / "mixed.csv"
    # One value of education is not a number, so the whole column reads as text.
    table.write_text("wage,education,region,member\n640,14,south,true\n700,unknown,,false\n810,12,west,true\n")
    for name in ("mixed-json", "mixed-text"):
        market.ok("wallet", "new", name, "--light-kdf")
        market.ok("wallet", "fund", name, "1ether", "--dev-account", "0")

    as_json = market.ok("owner", "register", "--keystore", "mixed-json", "--data", str(table), "--json").json()
    as_text = market.ok("owner", "register", "--keystore", "mixed-text", "--data", str(table)).stdout

    assert as_json["datasetRows"] == 3
    assert as_json["datasetColumns"] == [
        {"name": "wage", "kind": "number", "missing": 0, "nonNumeric": 0},
        {"name": "education", "kind": "text", "missing": 0, "nonNumeric": 1},
        {"name": "region", "kind": "text", "missing": 1, "nonNumeric": 2},
        {"name": "member", "kind": "other", "missing": 0, "nonNumeric": 0},
    ]
    assert "rows:            3" in as_text
    assert ("columns:         wage (number), education (text, 1 of 3 values are not numbers), "
            "region (text, 1 missing), member (other)") in as_text
    assert "ols terms need number columns" in as_text
    assert "no query reads columns of kind other" in as_text


def test_debug_shows_the_traceback(market: Market) -> None:
    result = market.run("--debug", "query", "status", "42")

    assert result.status == 1
    assert "Traceback" in result.stderr
    assert result.error_lines[-1].startswith("error: query 42 not found")


# --------------------------------------------------------------------------------------------------
# Last in the module, because they move the chain clock forward.


def test_deadline_passed_before_owner_joins(market: Market) -> None:
    proposed = market.ok(
        "query", "propose", "--keystore", "analyst", "--template", "count", "--epsilon", "1", "--max-owners", "2",
        "--aggregator-count", "2", "--accept-window", "10s", "--submit-window", "10s", "--json",
    ).json()
    increase_time(market.w3, 120)
    before = market.account("alice"), file_state(market.data_dir)

    result = market.run("owner", "run", "--keystore", "alice", "--query", str(proposed["queryId"]))

    assert_one_line_error(result, f"query {proposed['queryId']}", "accept deadline", "passed", "will be cancelled")
    assert (market.account("alice"), file_state(market.data_dir)) == before


def test_query_cancel_when_due_then_refund(market: Market) -> None:
    query = str(market.query_id)
    early = market.run("query", "cancel", query, "--keystore", "analyst")
    assert_one_line_error(early, f"query {query} cannot move on until after", "try again then")

    increase_time(market.w3, 3700)
    cancelled = market.ok("query", "cancel", query, "--keystore", "analyst", "--json").json()
    balance_before, _ = market.account("analyst")
    refunded = market.ok("query", "refund", query, "--keystore", "analyst", "--json").json()
    balance_after, _ = market.account("analyst")

    assert cancelled["status"] == "CANCELLED"
    assert refunded["amountWei"] == str(2 * 10**15)
    assert market.ok("query", "status", query, "--json").json()["escrowWei"] == "0"
    assert 0 < balance_after - balance_before < 2 * 10**15


def test_owner_policy_exit_and_withdraw(market: Market) -> None:
    updated = market.ok("owner", "policy", "--keystore", "alice", "--min-price", "0.002ether", "--templates",
                        "histogram,mean", "--json").json()
    assert updated["policy"]["minPricePerQueryWei"] == str(2 * 10**15)
    assert updated["policy"]["templates"] == ["mean", "histogram"]

    market.ok("owner", "exit", "--keystore", "alice")
    early = market.run("owner", "withdraw", "--keystore", "alice")
    assert_one_line_error(early, "can be withdrawn only after", "try again then")

    increase_time(market.w3, 61)
    withdrawn = market.ok("owner", "withdraw", "--keystore", "alice", "--json").json()
    assert withdrawn["amountWei"] == str(10**16)
    assert market.ok("owner", "status", "--keystore", "alice", "--json").json()["stakeWei"] == "0"
    assert_one_line_error(market.run("owner", "withdraw", "--keystore", "alice"), "the amount is 0")


def test_aggregator_exit_and_withdraw(market: Market) -> None:
    status = market.ok("aggregator", "status", "--keystore", "agg1", "--json").json()
    assert status["keyFileMatches"] is True

    market.ok("aggregator", "exit", "--keystore", "agg1")
    increase_time(market.w3, 61)
    withdrawn = market.ok("aggregator", "withdraw", "--keystore", "agg1", "--json").json()

    assert withdrawn["amountWei"] == str(10**18)


def test_copied_manifest_finds_market(market: Market, tmp_path: Path) -> None:
    # A copied data directory works like the original: the manifest is all a command needs.
    shutil.copytree(market.data_dir / "deployments", tmp_path / "deployments")

    result = market.run("--data-dir", str(tmp_path), "query", "status", str(market.query_id), "--json")

    assert result.status == 0, result
    assert result.json()["queryId"] == market.query_id
