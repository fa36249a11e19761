// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {DataMarket} from "../../DataMarket.sol";
import {IDataMarket} from "../../interfaces/IDataMarket.sol";
import {DataMarketHandler} from "./DataMarketHandler.sol";
import {CHEATCODE_ADDRESS, InvariantVm} from "./InvariantVm.sol";

/// @notice Invariants of `DataMarket` over random action sequences driven by `DataMarketHandler`.
/// @dev Without forge-std, forge reads the fuzz targets from `targetContracts` and
/// `targetSelectors`, which return the ABI forge expects. Each `invariant_*` function is its own
/// campaign of `runs` sequences of `depth` handler calls.
contract DataMarketInvariantTest {
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    InvariantVm private constant vm = InvariantVm(CHEATCODE_ADDRESS);

    uint256 private constant START_TIME = 1_700_000_000;
    uint256 private constant MIN_OWNER_STAKE = 1 ether;
    uint256 private constant MIN_AGGREGATOR_STAKE = 2 ether;
    uint256 private constant UNBONDING_PERIOD = 2 days;
    uint256 private constant COMPLAINT_PERIOD = 1 hours;
    /// Below the minimum aggregator stake, so a second slash meets a partly emptied stake.
    uint256 private constant SLASH_AMOUNT = 1.5 ether;
    uint256 private constant MAX_AGGREGATORS = 3;
    uint256 private constant MAX_OUTPUT_LENGTH = 4;

    DataMarket private market;
    DataMarketHandler private handler;

    function setUp() public {
        vm.warp(START_TIME);
        market = new DataMarket(
            MIN_OWNER_STAKE,
            MIN_AGGREGATOR_STAKE,
            UNBONDING_PERIOD,
            COMPLAINT_PERIOD,
            SLASH_AMOUNT,
            MAX_AGGREGATORS,
            MAX_OUTPUT_LENGTH
        );
        handler = new DataMarketHandler(market);

        // Three aggregators and three owners start registered. Seed 0 gives the minimum stake and a
        // nonzero key. The policy seed gives price 0, budget 5.0, every template, exact queries, and
        // expiry in 60 days.
        uint256 generousPolicy = (59 days << 48) | (2 << 16);
        for (uint256 i = 0; i < 3; i++) {
            handler.registerAggregator(i, 0, 0);
            handler.registerOwner(i, 0, generousPolicy);
        }
        vm.assertEq(handler.successCount("registerAggregator"), 3, "aggregators registered in setUp");
        vm.assertEq(handler.successCount("registerOwner"), 3, "owners registered in setUp");

        // Every run also starts with queries at three stages, so that a 50-call sequence reaches
        // commits, reveals and payouts: query 1 is open with two of its three owners in, query 2
        // is open and full (its complaint window running), and query 3 waits for acceptance.
        handler.proposeFixedQuery(0, _fixedParams(_aggregators(0, 2), 4, 500_000, 1, 3));
        handler.proposeFixedQuery(1, _fixedParams(_aggregators(0, 3), 2, 0, 2, 2));
        handler.proposeFixedQuery(0, _fixedParams(_aggregators(1, 2), 1, 250_000, 1, 2));
        // Query seed 0 picks the first query in the needed status from id 1; a step seed of 0
        // moves every remaining participant, 5 moves two.
        handler.acceptQuery(0, 0, 0);
        handler.acceptQuery(0, 0, 0);
        handler.submitShares(0, 0, 5, 1);
        handler.submitShares(1, 1, 5, 2);
        vm.assertEq(handler.successCount("proposeQuery"), 3, "queries proposed in setUp");
        vm.assertEq(handler.successCount("acceptQuery"), 5, "acceptances in setUp");
        vm.assertEq(handler.successCount("submitShares"), 4, "submissions in setUp");
        vm.assertEq(market.queryInfo(2).closedAt, START_TIME, "query 2 filled in setUp");
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    function targetSelectors() public view returns (FuzzSelector[] memory targets) {
        targets = new FuzzSelector[](1);
        targets[0] = FuzzSelector(address(handler), handler.entryPoints());
    }

    // ---------------------------------------------------------------------------------------------
    // Invariants
    // ---------------------------------------------------------------------------------------------

    /// The contract holds exactly the stakes, the escrow not yet paid out and the slashed stake
    /// not yet refunded, all read from its own views (`refund` zeroes a query's `slashed`). Also
    /// checks that no status changed outside the calls that change it.
    function invariant_balanceEqualsStakesEscrowAndSlashed() public view {
        uint256 stakes = _sumOfStakes();
        uint256 held = 0;
        uint256 count = market.queryCount();
        for (uint256 queryId = 1; queryId <= count; queryId++) {
            IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
            held += info.escrow + info.slashed;
            vm.assertEq(uint8(info.status), uint8(handler.statusSeen(queryId)), "status changed unexpectedly");
        }

        vm.assertEq(address(market).balance, stakes + held, "balance != stakes + escrow + slashed owed");
        vm.assertEq(
            stakes,
            handler.ghostStakeDeposited() - handler.ghostStakeWithdrawn() - handler.ghostStakeSlashed(),
            "stakes != deposited - withdrawn - slashed"
        );
    }

    /// Every owner's `epsilonUsed` is the epsilon of its submissions still reserved (Submitted) or
    /// spent (Settled in a published query), both as read from the views and as tracked by the
    /// handler, and never more than the largest budget its policy had. Its `openSubmissions` counts
    /// its Submitted states. The handler separately reports any submission that took an owner past
    /// its budget at that moment.
    function invariant_epsilonUsedMatchesReservations() public view {
        address[] memory owners = handler.ownerList();
        uint256[] memory reserved = new uint256[](owners.length);
        uint256[] memory submitted = new uint256[](owners.length);
        uint256 count = market.queryCount();
        for (uint256 queryId = 1; queryId <= count; queryId++) {
            IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
            bool published = info.status == IDataMarket.QueryStatus.Published;
            for (uint256 i = 0; i < owners.length; i++) {
                IDataMarket.SubmissionState state = market.submissionState(queryId, owners[i]);
                if (state == IDataMarket.SubmissionState.Submitted) submitted[i]++;
                bool spent = published && state == IDataMarket.SubmissionState.Settled;
                if (state == IDataMarket.SubmissionState.Submitted || spent) reserved[i] += info.params.epsilon;
            }
        }

        for (uint256 i = 0; i < owners.length; i++) {
            IDataMarket.OwnerInfo memory info = market.ownerInfo(owners[i]);
            vm.assertEq(info.epsilonUsed, reserved[i], "epsilonUsed != epsilon of held submissions");
            vm.assertEq(info.epsilonUsed, handler.ghostEpsilonReserved(owners[i]), "epsilonUsed != handler's total");
            vm.assertLe(info.epsilonUsed, handler.ghostBudgetCeiling(owners[i]), "epsilonUsed above every budget");
            vm.assertEq(info.openSubmissions, submitted[i], "openSubmissions != Submitted states");
        }
    }

    /// Each owner claim, aggregator fee and analyst refund is paid at most once, exactly when the
    /// contract marks it paid, and no query pays out more than it took in. Only published queries
    /// pay owners and aggregators.
    function invariant_nobodyPaidTwice() public view {
        address[] memory owners = handler.ownerList();
        address[] memory aggregators = handler.aggregatorList();
        uint256 count = market.queryCount();
        for (uint256 queryId = 1; queryId <= count; queryId++) {
            IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
            (uint256[] memory claims, uint256[] memory fees, uint256 refunds, DataMarketHandler.QueryGhost memory ghost)
            = handler.payoutRecord(queryId);
            bool published = info.status == IDataMarket.QueryStatus.Published;
            for (uint256 i = 0; i < owners.length; i++) {
                vm.assertLe(claims[i], 1, "owner paid twice for one query");
                if (!published) continue;
                bool settled = market.submissionState(queryId, owners[i]) == IDataMarket.SubmissionState.Settled;
                vm.assertEq(claims[i], settled ? 1 : 0, "owner claims != settled submissions");
            }
            for (uint256 i = 0; i < aggregators.length; i++) {
                vm.assertLe(fees[i], 1, "aggregator fee paid twice for one query");
                if (!published) continue;
                bool feeClaimed = market.aggregatorQueryState(queryId, aggregators[i]).feeClaimed;
                vm.assertEq(fees[i], feeClaimed ? 1 : 0, "fees paid != feeClaimed");
            }
            vm.assertLe(refunds, 1, "analyst refunded twice for one query");
            vm.assertEq(refunds, info.analystRefunded ? 1 : 0, "refunds paid != analystRefunded");
            if (!published) {
                vm.assertEq(_sum(claims) + _sum(fees), 0, "unpublished query paid an owner or aggregator");
            }

            vm.assertLe(ghost.paidOut, ghost.escrowDeposited + ghost.slashed, "query paid more than it took in");
            vm.assertEq(
                ghost.paidOut + info.escrow + info.slashed,
                ghost.escrowDeposited + ghost.slashed,
                "query paid out + still held != escrow + slashed"
            );
        }
    }

    /// A published result is the coordinate-wise sum, modulo 2^64, of the K revealed shares, and
    /// no other query has a result.
    function invariant_resultIsSumOfRevealedShares() public view {
        uint256 count = market.queryCount();
        for (uint256 queryId = 1; queryId <= count; queryId++) {
            IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
            uint64[] memory result = market.queryResult(queryId);
            if (info.status != IDataMarket.QueryStatus.Published) {
                vm.assertEq(result.length, 0, "unpublished query has a result");
                continue;
            }

            uint256[] memory expected = new uint256[](info.params.outputLength);
            for (uint256 a = 0; a < info.params.aggregators.length; a++) {
                uint64[] memory share = handler.revealedShare(queryId, info.params.aggregators[a]);
                vm.assertEq(share.length, expected.length, "published without every share revealed");
                for (uint256 i = 0; i < share.length; i++) {
                    // forge-lint: disable-next-line(unsafe-typecast)
                    expected[i] = uint64(expected[i] + share[i]); // the sum modulo 2^64
                }
            }
            vm.assertEq(_widen(result), expected, "result != sum of revealed shares mod 2^64");
        }
    }

    /// The balance covers what the contract owes: the stakes, and for each query what the rules
    /// still owe its payees, which is also exactly what the query holds (so no wei is stuck or
    /// missing). Every wei paid in is either held or paid out, and paid to the payee the handler
    /// credited.
    function invariant_balanceCoversObligations() public view {
        uint256 owed = handler.ghostStakeDeposited() - handler.ghostStakeWithdrawn() - handler.ghostStakeSlashed();
        uint256 count = market.queryCount();
        for (uint256 queryId = 1; queryId <= count; queryId++) {
            IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
            uint256 owedByQuery = _owedByQuery(queryId, info);
            vm.assertEq(info.escrow + info.slashed, owedByQuery, "query holds other than it owes");
            owed += owedByQuery;
        }

        vm.assertGe(address(market).balance, owed, "balance below obligations");
        vm.assertEq(
            handler.ghostStakeDeposited() + handler.ghostEscrowDeposited(),
            address(market).balance + handler.ghostStakeWithdrawn() + handler.ghostPaidOut(),
            "paid in != held + paid out"
        );
        (address[] memory actors, uint256[] memory balances) = handler.expectedBalances();
        for (uint256 i = 0; i < actors.length; i++) {
            vm.assertEq(actors[i].balance, balances[i], "actor balance != payouts and withdrawals credited to it");
        }
    }

    /// An aggregator's `openQueries` counts the queries it accepted that are still proposed or open.
    function invariant_openQueriesMatchAcceptances() public view {
        address[] memory aggregators = handler.aggregatorList();
        uint256[] memory openQueries = new uint256[](aggregators.length);
        uint256 count = market.queryCount();
        for (uint256 queryId = 1; queryId <= count; queryId++) {
            IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
            bool live = info.status == IDataMarket.QueryStatus.Proposed || info.status == IDataMarket.QueryStatus.Open;
            if (!live) continue;
            for (uint256 i = 0; i < aggregators.length; i++) {
                if (market.aggregatorQueryState(queryId, aggregators[i]).accepted) openQueries[i]++;
            }
        }

        for (uint256 i = 0; i < aggregators.length; i++) {
            vm.assertEq(market.aggregatorInfo(aggregators[i]).openQueries, openQueries[i], "openQueries wrong");
        }
    }

    /// No call succeeded that the protocol rules forbid, every payout had the amount the rules
    /// give, and the handler itself never reverted (`fail-on-revert`), so no ghost total
    /// underflowed.
    /// forge-config: default.invariant.fail-on-revert = true
    function invariant_callsFollowTheRules() public view {
        vm.assertEq(handler.firstViolation(), "", "handler saw a rule broken");
        vm.assertEq(handler.violationCount(), 0, "rule violations");
    }

    // ---------------------------------------------------------------------------------------------
    // Fixed sequence
    // ---------------------------------------------------------------------------------------------

    /// Drives the handler through publication, failure and cancellation with chosen seeds, so the
    /// random campaigns are known to reach every payout and not only to pass vacuously.
    function test_handlerReachesEveryPayout() public {
        // Query 1: both aggregators commit (warping into the commit window) and reveal.
        handler.commitAggregate(0, 0, 0, 11, true);
        handler.revealAggregate(0, 0, 0, 0);
        vm.assertEq(uint8(market.queryInfo(1).status), uint8(IDataMarket.QueryStatus.Published), "query 1 status");
        handler.claim(0, 0, true);
        handler.claimMany(1, 0, 0);
        handler.claimFee(0, 0, true);
        handler.claimFee(0, 1, true);
        handler.refund(0, 0, true);

        // Query 2: two of three aggregators commit; the third is slashed when the query fails.
        handler.commitAggregate(1, 0, 5, 12, false);
        handler.fail(1, 1);
        vm.assertEq(market.queryInfo(2).slashed, SLASH_AMOUNT, "query 2 slashed");
        handler.refund(1, 0, true);
        handler.releaseBudget(1, 1, true);
        handler.releaseBudget(1, 2, true);

        // Query 3 was never accepted; the accept deadline has passed.
        handler.cancel(2, 1);
        handler.refund(2, 0, true);

        // Owner 0 has no unsettled submission left, and aggregator 2 serves no query.
        handler.beginOwnerExit(0, 1);
        handler.withdrawOwnerStake(0, true, 0);
        handler.beginAggregatorExit(2, 1);
        handler.withdrawAggregatorStake(2, true, 0);

        vm.assertEq(handler.firstViolation(), "", "rule broken in the fixed sequence");
        vm.assertEq(handler.successCount("commitAggregate"), 4, "commits");
        vm.assertEq(handler.successCount("revealAggregate"), 2, "reveals");
        vm.assertEq(handler.successCount("published"), 1, "publications");
        vm.assertEq(handler.successCount("claim"), 1, "claims");
        vm.assertEq(handler.successCount("claimMany"), 1, "batch claims");
        vm.assertEq(handler.successCount("claimFee"), 2, "fees");
        vm.assertEq(handler.successCount("fail"), 1, "fails");
        vm.assertEq(handler.successCount("cancel"), 1, "cancels");
        vm.assertEq(handler.successCount("refund"), 3, "refunds");
        vm.assertEq(handler.successCount("releaseBudget"), 2, "budget releases");
        vm.assertEq(handler.successCount("withdrawOwnerStake"), 1, "owner withdrawals");
        vm.assertEq(handler.successCount("withdrawAggregatorStake"), 1, "aggregator withdrawals");

        invariant_balanceEqualsStakesEscrowAndSlashed();
        invariant_epsilonUsedMatchesReservations();
        invariant_nobodyPaidTwice();
        invariant_resultIsSumOfRevealedShares();
        invariant_balanceCoversObligations();
        invariant_openQueriesMatchAcceptances();
        // Every query is settled and every payee paid, so only the untouched stakes remain.
        vm.assertEq(address(market).balance, _sumOfStakes(), "balance after every payout");
    }

    // ---------------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------------

    /// Template 1 (sum), price 0.05 ether, fee 0.01 ether, and one to two days per deadline.
    function _fixedParams(
        address[] memory assigned,
        uint32 outputLength,
        uint64 epsilon,
        uint32 minOwners,
        uint32 maxOwners
    ) private pure returns (IDataMarket.QueryParams memory params) {
        params.templateId = 1;
        params.outputLength = outputLength;
        params.epsilon = epsilon;
        params.pricePerOwner = 0.05 ether;
        params.minOwners = minOwners;
        params.maxOwners = maxOwners;
        params.aggregators = assigned;
        params.feePerAggregator = 0.01 ether;
        // forge-lint: disable-start(unsafe-typecast)
        params.acceptDeadline = uint40(START_TIME + 1 days);
        params.submitDeadline = uint40(START_TIME + 2 days);
        params.commitDeadline = uint40(START_TIME + 3 days + COMPLAINT_PERIOD);
        params.revealDeadline = uint40(START_TIME + 4 days + COMPLAINT_PERIOD);
        // forge-lint: disable-end(unsafe-typecast)
        params.maxAbsEncoded = 1_000_000;
    }

    /// The handler's aggregators `first` to `first + count - 1`.
    function _aggregators(uint256 first, uint256 count) private view returns (address[] memory assigned) {
        assigned = new address[](count);
        for (uint256 i = 0; i < count; i++) {
            assigned[i] = handler.aggregators(first + i);
        }
    }

    function _sumOfStakes() private view returns (uint256 stakes) {
        address[] memory owners = handler.ownerList();
        for (uint256 i = 0; i < owners.length; i++) {
            stakes += market.ownerInfo(owners[i]).stake;
        }
        address[] memory aggregators = handler.aggregatorList();
        for (uint256 i = 0; i < aggregators.length; i++) {
            stakes += market.aggregatorInfo(aggregators[i]).stake;
        }
    }

    /// What a query still owes under the rules: everything while it runs; after publication the
    /// unclaimed prices of included owners, the unclaimed fees and the unrefunded unused escrow;
    /// after a cancel or fail the escrow plus slashed stake until the analyst's refund.
    function _owedByQuery(uint256 queryId, IDataMarket.QueryInfo memory info) private view returns (uint256) {
        DataMarketHandler.QueryGhost memory ghost = handler.queryGhost(queryId);
        IDataMarket.QueryStatus status = info.status;
        if (status == IDataMarket.QueryStatus.Proposed || status == IDataMarket.QueryStatus.Open) {
            return ghost.escrowDeposited;
        }
        if (status != IDataMarket.QueryStatus.Published) {
            return info.analystRefunded ? 0 : ghost.escrowDeposited + ghost.slashed;
        }

        address[] memory owners = handler.ownerList();
        uint256 unclaimedOwners = 0;
        for (uint256 i = 0; i < owners.length; i++) {
            if (market.submissionState(queryId, owners[i]) == IDataMarket.SubmissionState.Submitted) unclaimedOwners++;
        }
        uint256 unclaimedFees = 0;
        for (uint256 i = 0; i < info.params.aggregators.length; i++) {
            if (!market.aggregatorQueryState(queryId, info.params.aggregators[i]).feeClaimed) unclaimedFees++;
        }
        uint256 included = info.submittedCount - info.excludedCount;
        uint256 unused = info.analystRefunded ? 0 : info.params.maxOwners - included;
        return (unclaimedOwners + unused) * info.params.pricePerOwner + unclaimedFees * info.params.feePerAggregator;
    }

    function _sum(uint256[] memory values) private pure returns (uint256 total) {
        for (uint256 i = 0; i < values.length; i++) {
            total += values[i];
        }
    }

    function _widen(uint64[] memory values) private pure returns (uint256[] memory wide) {
        wide = new uint256[](values.length);
        for (uint256 i = 0; i < values.length; i++) {
            wide[i] = values[i];
        }
    }
}
