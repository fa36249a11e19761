// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IDataMarket} from "../interfaces/IDataMarket.sol";
import {MarketTestBase} from "./utils/MarketTestBase.sol";
import {Vm, vm} from "./utils/Vm.sol";

contract AggregationTest is MarketTestBase {
    // ---------------------------------------------------------------------------------------------
    // commitAggregate
    // ---------------------------------------------------------------------------------------------

    function test_commitAggregate_storesCommitment() public {
        uint256 queryId = _filledQueryInCommitWindow();
        bytes32 commitment = _commitment(queryId, aggregators[0], _share(queryId, 0, 1), keccak256("salt"));

        vm.expectEmit(address(market));
        emit IDataMarket.AggregateCommitted(queryId, aggregators[0], commitment);
        vm.prank(aggregators[0]);
        market.commitAggregate(queryId, commitment);

        IDataMarket.AggregatorQueryState memory state = market.aggregatorQueryState(queryId, aggregators[0]);
        vm.assertTrue(state.committed, "committed");
        vm.assertEq(state.commitment, commitment, "commitment");
        vm.assertEq(market.queryInfo(queryId).committedCount, 1, "committedCount");
    }

    function test_commitAggregate_opensEarlyWhenQueryFills() public {
        IDataMarket.QueryParams memory params = _params();
        params.maxOwners = 2;
        uint256 queryId = _openQuery(params);
        _registerOwners(1, 2);
        _submitOwners(queryId, 1, 2);
        uint256 opensAfter = block.timestamp + COMPLAINT_PERIOD;
        vm.warp(opensAfter);

        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.CommitWindowNotOpen.selector, queryId, opensAfter, opensAfter)
        );
        vm.prank(aggregators[0]);
        market.commitAggregate(queryId, keccak256("c"));

        vm.warp(opensAfter + 1);
        vm.prank(aggregators[0]);
        market.commitAggregate(queryId, keccak256("c"));
        vm.assertEq(market.queryInfo(queryId).committedCount, 1, "committedCount");
    }

    function test_commitAggregate_acceptedAtDeadline() public {
        uint256 queryId = _filledQueryInCommitWindow();
        vm.warp(_params().commitDeadline);

        vm.prank(aggregators[0]);
        market.commitAggregate(queryId, keccak256("c"));

        vm.assertEq(market.queryInfo(queryId).committedCount, 1, "committedCount");
    }

    function test_commitAggregate_revertsForUnknownQuery() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.QueryNotFound.selector, 9));
        vm.prank(aggregators[0]);
        market.commitAggregate(9, keccak256("c"));
    }

    function test_commitAggregate_revertsWhenQueryNotOpen() public {
        uint256 queryId = _propose(_params());

        vm.expectRevert(
            abi.encodeWithSelector(
                IDataMarket.WrongQueryStatus.selector,
                queryId,
                IDataMarket.QueryStatus.Proposed,
                IDataMarket.QueryStatus.Open
            )
        );
        vm.prank(aggregators[0]);
        market.commitAggregate(queryId, keccak256("c"));
    }

    function test_commitAggregate_revertsForUnassignedCaller() public {
        uint256 queryId = _filledQueryInCommitWindow();

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotAssignedAggregator.selector, queryId, stranger));
        vm.prank(stranger);
        market.commitAggregate(queryId, keccak256("c"));
    }

    function test_commitAggregate_revertsDuringComplaintPeriod() public {
        uint256 queryId = _openQuery();
        _registerOwners(1, 2);
        _submitOwners(queryId, 1, 2);
        uint256 opensAfter = _params().submitDeadline + COMPLAINT_PERIOD;
        vm.warp(opensAfter);

        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.CommitWindowNotOpen.selector, queryId, opensAfter, opensAfter)
        );
        vm.prank(aggregators[0]);
        market.commitAggregate(queryId, keccak256("c"));
    }

    function test_commitAggregate_revertsAfterDeadline() public {
        uint256 queryId = _filledQueryInCommitWindow();
        uint256 deadline = _params().commitDeadline;
        vm.warp(deadline + 1);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.DeadlinePassed.selector, queryId, deadline, deadline + 1));
        vm.prank(aggregators[0]);
        market.commitAggregate(queryId, keccak256("c"));
    }

    function test_commitAggregate_revertsWhenAlreadyCommitted() public {
        uint256 queryId = _filledQueryInCommitWindow();
        vm.prank(aggregators[0]);
        market.commitAggregate(queryId, keccak256("c"));

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.AlreadyCommitted.selector, queryId, aggregators[0]));
        vm.prank(aggregators[0]);
        market.commitAggregate(queryId, keccak256("d"));
    }

    function test_commitAggregate_revertsWithTooFewOwners() public {
        uint256 queryId = _openQuery();
        _registerOwner(_ownerAddress(1));
        _submit(queryId, _ownerAddress(1));
        _warpToCommitWindow(queryId);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.TooFewOwners.selector, queryId, 1, 2));
        vm.prank(aggregators[0]);
        market.commitAggregate(queryId, keccak256("c"));
    }

    function test_commitAggregate_revertsWhenComplaintsLeaveTooFewOwners() public {
        uint256 queryId = _openQuery();
        _registerOwners(1, 2);
        _submitOwners(queryId, 1, 2);
        vm.warp(_params().submitDeadline + 1);
        vm.prank(aggregators[2]);
        market.complain(queryId, _ownerAddress(2));
        _warpToCommitWindow(queryId);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.TooFewOwners.selector, queryId, 1, 2));
        vm.prank(aggregators[0]);
        market.commitAggregate(queryId, keccak256("c"));
    }

    // ---------------------------------------------------------------------------------------------
    // revealAggregate
    // ---------------------------------------------------------------------------------------------

    function test_revealAggregate_recordsShare() public {
        uint256 queryId = _committedQuery(1, 3);
        uint64[] memory share = _share(queryId, 0, 1);

        vm.expectEmit(address(market));
        emit IDataMarket.AggregateRevealed(queryId, aggregators[0], share);
        _reveal(queryId, 0, share);

        vm.assertTrue(market.aggregatorQueryState(queryId, aggregators[0]).revealed, "revealed");
        vm.assertEq(market.queryInfo(queryId).revealedCount, 1, "revealedCount");
        vm.assertEq(market.queryResult(queryId).length, 0, "no result before publication");
    }

    function test_revealAggregate_lastRevealPublishesSum() public {
        uint256 queryId = _committedQuery(1, 3);
        _reveal(queryId, 0, _share(queryId, 0, 1));
        _reveal(queryId, 1, _share(queryId, 1, 1));
        uint64[] memory expected = new uint64[](1);
        unchecked {
            expected[0] = _share(queryId, 0, 1)[0] + _share(queryId, 1, 1)[0] + _share(queryId, 2, 1)[0];
        }

        vm.expectEmit(address(market));
        emit IDataMarket.AggregateRevealed(queryId, aggregators[2], _share(queryId, 2, 1));
        vm.expectEmit(address(market));
        emit IDataMarket.ResultPublished(queryId, expected, 3);
        _reveal(queryId, 2, _share(queryId, 2, 1));

        IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
        vm.assertEq(uint256(info.status), uint256(IDataMarket.QueryStatus.Published), "status");
        vm.assertEq(market.queryResult(queryId)[0], expected[0], "result");
        for (uint256 k; k < aggregators.length; ++k) {
            vm.assertEq(market.aggregatorInfo(aggregators[k]).openQueries, 0, "aggregator released");
        }
    }

    function test_revealAggregate_reportsIncludedOwnersAfterComplaint() public {
        uint256 queryId = _openQuery();
        _registerOwners(1, 3);
        _submitOwners(queryId, 1, 3);
        vm.warp(_params().submitDeadline + 1);
        vm.prank(aggregators[1]);
        market.complain(queryId, _ownerAddress(3));
        _warpToCommitWindow(queryId);
        _commitAll(queryId);
        _reveal(queryId, 0, _share(queryId, 0, 1));
        _reveal(queryId, 1, _share(queryId, 1, 1));

        vm.recordLogs();
        _reveal(queryId, 2, _share(queryId, 2, 1));

        (, uint256 included) = _publishedEvent(queryId);
        vm.assertEq(included, 2, "includedOwners");
    }

    function test_revealAggregate_revertsForUnknownQuery() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.QueryNotFound.selector, 9));
        vm.prank(aggregators[0]);
        market.revealAggregate(9, new uint64[](1), bytes32(0));
    }

    function test_revealAggregate_revertsWhenPublished() public {
        uint256 queryId = _publishedQuery(1, 2);
        uint64[] memory share = _share(queryId, 0, 1);

        vm.expectRevert(
            abi.encodeWithSelector(
                IDataMarket.WrongQueryStatus.selector,
                queryId,
                IDataMarket.QueryStatus.Published,
                IDataMarket.QueryStatus.Open
            )
        );
        _reveal(queryId, 0, share);
    }

    function test_revealAggregate_revertsForUnassignedCaller() public {
        uint256 queryId = _committedQuery(1, 2);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotAssignedAggregator.selector, queryId, stranger));
        vm.prank(stranger);
        market.revealAggregate(queryId, new uint64[](1), bytes32(0));
    }

    function test_revealAggregate_revertsWhenCallerNotCommitted() public {
        uint256 queryId = _filledQueryInCommitWindow();
        _commit(queryId, 0, _share(queryId, 0, 1));
        uint64[] memory share = _share(queryId, 1, 1);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotCommitted.selector, queryId, aggregators[1]));
        _reveal(queryId, 1, share);
    }

    function test_revealAggregate_revertsWhenAlreadyRevealed() public {
        uint256 queryId = _committedQuery(1, 2);
        uint64[] memory share = _share(queryId, 0, 1);
        _reveal(queryId, 0, share);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.AlreadyRevealed.selector, queryId, aggregators[0]));
        _reveal(queryId, 0, share);
    }

    function test_revealAggregate_revertsBeforeAllCommitted() public {
        uint256 queryId = _filledQueryInCommitWindow();
        _commit(queryId, 0, _share(queryId, 0, 1));
        _commit(queryId, 1, _share(queryId, 1, 1));
        uint64[] memory share = _share(queryId, 0, 1);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotAllCommitted.selector, queryId, 2, 3));
        _reveal(queryId, 0, share);
    }

    function test_revealAggregate_revertsAfterDeadline() public {
        uint256 queryId = _committedQuery(1, 2);
        uint256 deadline = _params().revealDeadline;
        vm.warp(deadline + 1);
        uint64[] memory share = _share(queryId, 0, 1);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.DeadlinePassed.selector, queryId, deadline, deadline + 1));
        _reveal(queryId, 0, share);
    }

    function test_revealAggregate_acceptedAtDeadline() public {
        uint256 queryId = _committedQuery(1, 2);
        vm.warp(_params().revealDeadline);

        _revealAll(queryId);

        vm.assertEq(uint256(market.queryInfo(queryId).status), uint256(IDataMarket.QueryStatus.Published), "status");
    }

    function test_revealAggregate_revertsWithWrongShareLength() public {
        uint256 queryId = _committedQuery(1, 2);
        uint64[] memory share = new uint64[](2);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.WrongShareLength.selector, 2, 1));
        _reveal(queryId, 0, share);
    }

    function test_revealAggregate_revertsWhenShareDiffersFromCommitment() public {
        uint256 queryId = _committedQuery(1, 2);
        uint64[] memory share = _share(queryId, 0, 1);
        share[0] ^= 1;
        bytes32 salt = _salt(queryId, aggregators[0]);
        bytes32 expected = _commitment(queryId, aggregators[0], _share(queryId, 0, 1), salt);
        bytes32 actual = _commitment(queryId, aggregators[0], share, salt);

        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.CommitmentMismatch.selector, queryId, aggregators[0], expected, actual)
        );
        _reveal(queryId, 0, share);
    }

    function test_revealAggregate_revertsWhenSaltDiffers() public {
        uint256 queryId = _committedQuery(1, 2);
        uint64[] memory share = _share(queryId, 0, 1);
        bytes32 expected = _commitment(queryId, aggregators[0], share, _salt(queryId, aggregators[0]));
        bytes32 actual = _commitment(queryId, aggregators[0], share, keccak256("other salt"));

        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.CommitmentMismatch.selector, queryId, aggregators[0], expected, actual)
        );
        vm.prank(aggregators[0]);
        market.revealAggregate(queryId, share, keccak256("other salt"));
    }

    /// The published result is the coordinate-wise sum of the revealed shares modulo 2^64, for
    /// shares anywhere in the ring (so sums wrap).
    function testFuzz_revealAggregate_publishesSumModulo2To64(uint256 seed, uint8 outputLength) public {
        IDataMarket.QueryParams memory params = _params();
        params.outputLength = uint32(_bound(outputLength, 1, 8));
        uint256 queryId = _openQuery(params);
        _registerOwners(1, 2);
        _submitOwners(queryId, 1, 2);
        _warpToCommitWindow(queryId);

        uint64[][] memory shares = new uint64[][](aggregators.length);
        uint64[] memory expected = new uint64[](params.outputLength);
        for (uint256 k; k < shares.length; ++k) {
            shares[k] = new uint64[](params.outputLength);
            for (uint256 i; i < params.outputLength; ++i) {
                shares[k][i] = uint64(uint256(keccak256(abi.encode(seed, k, i))));
                unchecked {
                    expected[i] += shares[k][i];
                }
            }
            _commit(queryId, k, shares[k]);
        }
        for (uint256 k; k < shares.length; ++k) {
            _reveal(queryId, k, shares[k]);
        }

        uint64[] memory result = market.queryResult(queryId);
        vm.assertEq(result.length, params.outputLength, "result length");
        for (uint256 i; i < result.length; ++i) {
            vm.assertEq(result[i], expected[i], "coordinate");
        }
    }

    function test_revealAggregate_wrapsAtRingBoundary() public {
        uint256 queryId = _filledQueryInCommitWindow();
        uint64[][3] memory shares;
        for (uint256 k; k < 3; ++k) {
            shares[k] = new uint64[](1);
        }
        shares[0][0] = type(uint64).max;
        shares[1][0] = type(uint64).max;
        shares[2][0] = 5;
        for (uint256 k; k < 3; ++k) {
            _commit(queryId, k, shares[k]);
        }
        for (uint256 k; k < 3; ++k) {
            _reveal(queryId, k, shares[k]);
        }

        // (2^64 - 1) + (2^64 - 1) + 5 = 2^65 + 3, which is 3 modulo 2^64.
        vm.assertEq(market.queryResult(queryId)[0], 3, "wrapped sum");
    }

    // ---------------------------------------------------------------------------------------------
    // fail
    // ---------------------------------------------------------------------------------------------

    function test_fail_slashesAggregatorsThatMissedCommit() public {
        uint256 queryId = _filledQueryInCommitWindow();
        _commit(queryId, 0, _share(queryId, 0, 1));
        vm.warp(_params().commitDeadline + 1);

        vm.expectEmit(address(market));
        emit IDataMarket.AggregatorSlashed(queryId, aggregators[1], SLASH_AMOUNT);
        vm.expectEmit(address(market));
        emit IDataMarket.AggregatorSlashed(queryId, aggregators[2], SLASH_AMOUNT);
        vm.expectEmit(address(market));
        emit IDataMarket.QueryFailed(queryId, 2 * SLASH_AMOUNT);
        vm.prank(stranger);
        market.fail(queryId);

        IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
        vm.assertEq(uint256(info.status), uint256(IDataMarket.QueryStatus.Failed), "status");
        vm.assertEq(info.slashed, 2 * SLASH_AMOUNT, "slashed");
        vm.assertEq(market.aggregatorInfo(aggregators[0]).stake, AGGREGATOR_STAKE, "committed kept stake");
        vm.assertEq(market.aggregatorInfo(aggregators[1]).stake, AGGREGATOR_STAKE - SLASH_AMOUNT, "slashed");
        vm.assertEq(market.aggregatorInfo(aggregators[2]).stake, AGGREGATOR_STAKE - SLASH_AMOUNT, "slashed");
        for (uint256 k; k < aggregators.length; ++k) {
            vm.assertEq(market.aggregatorInfo(aggregators[k]).openQueries, 0, "aggregator released");
        }
    }

    /// Reveals need all K commitments, so an aggregator that committed is not slashed when another
    /// missed the commit, even once the reveal deadline has passed too.
    function test_fail_sparesCommittersWhenCommitMissed() public {
        uint256 queryId = _filledQueryInCommitWindow();
        _commit(queryId, 0, _share(queryId, 0, 1));
        _commit(queryId, 1, _share(queryId, 1, 1));
        vm.warp(_params().revealDeadline + 1);

        vm.expectEmit(address(market));
        emit IDataMarket.AggregatorSlashed(queryId, aggregators[2], SLASH_AMOUNT);
        vm.expectEmit(address(market));
        emit IDataMarket.QueryFailed(queryId, SLASH_AMOUNT);
        market.fail(queryId);

        vm.assertEq(market.aggregatorInfo(aggregators[0]).stake, AGGREGATOR_STAKE, "committer 0 kept stake");
        vm.assertEq(market.aggregatorInfo(aggregators[1]).stake, AGGREGATOR_STAKE, "committer 1 kept stake");
        vm.assertEq(market.aggregatorInfo(aggregators[2]).stake, AGGREGATOR_STAKE - SLASH_AMOUNT, "slashed");
    }

    function test_fail_slashesAggregatorsThatMissedReveal() public {
        uint256 queryId = _committedQuery(1, 2);
        _reveal(queryId, 0, _share(queryId, 0, 1));
        _reveal(queryId, 2, _share(queryId, 2, 1));
        vm.warp(_params().revealDeadline + 1);

        vm.expectEmit(address(market));
        emit IDataMarket.AggregatorSlashed(queryId, aggregators[1], SLASH_AMOUNT);
        vm.expectEmit(address(market));
        emit IDataMarket.QueryFailed(queryId, SLASH_AMOUNT);
        market.fail(queryId);

        vm.assertEq(market.queryInfo(queryId).slashed, SLASH_AMOUNT, "slashed");
        vm.assertEq(market.aggregatorInfo(aggregators[1]).stake, AGGREGATOR_STAKE - SLASH_AMOUNT, "slashed");
        vm.assertEq(market.aggregatorInfo(aggregators[0]).stake, AGGREGATOR_STAKE, "revealed kept stake");
        vm.assertEq(market.queryResult(queryId).length, 0, "no result");
    }

    function test_fail_slashCappedAtStake() public {
        // An aggregator with the minimum stake accepts three queries, then misses all three commits:
        // 10 ether loses 4, then 4, then only the 2 that are left.
        address aggregator = _aggregatorAddress(50);
        vm.deal(aggregator, MIN_AGGREGATOR_STAKE);
        vm.prank(aggregator);
        market.registerAggregator{value: MIN_AGGREGATOR_STAKE}(_encryptionKey(aggregator));
        IDataMarket.QueryParams memory params = _params();
        params.aggregators[2] = aggregator;
        params.minOwners = 1;
        _registerOwner(_ownerAddress(1));
        uint256[3] memory queryIds;
        for (uint256 i; i < 3; ++i) {
            queryIds[i] = _openQuery(params);
            _submit(queryIds[i], _ownerAddress(1));
        }
        vm.warp(params.commitDeadline + 1);

        market.fail(queryIds[0]);
        market.fail(queryIds[1]);
        vm.expectEmit(address(market));
        emit IDataMarket.AggregatorSlashed(queryIds[2], aggregator, MIN_AGGREGATOR_STAKE - 2 * SLASH_AMOUNT);
        market.fail(queryIds[2]);

        vm.assertEq(market.aggregatorInfo(aggregator).stake, 0, "stake exhausted");
        vm.assertEq(
            market.queryInfo(queryIds[2]).slashed,
            2 * SLASH_AMOUNT + MIN_AGGREGATOR_STAKE - 2 * SLASH_AMOUNT,
            "two full slashes and the rest of the stake"
        );
    }

    function test_fail_revertsForUnknownQuery() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.QueryNotFound.selector, 9));
        market.fail(9);
    }

    function test_fail_revertsWhenProposed() public {
        uint256 queryId = _propose(_params());
        vm.warp(_params().revealDeadline + 1);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NothingToFail.selector, queryId));
        market.fail(queryId);
    }

    function test_fail_revertsWhenPublished() public {
        uint256 queryId = _publishedQuery(1, 2);
        vm.warp(_params().revealDeadline + 1);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NothingToFail.selector, queryId));
        market.fail(queryId);
    }

    function test_fail_revertsWhenAlreadyFailed() public {
        uint256 queryId = _filledQueryInCommitWindow();
        vm.warp(_params().commitDeadline + 1);
        market.fail(queryId);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NothingToFail.selector, queryId));
        market.fail(queryId);
    }

    function test_fail_revertsWithTooFewOwners() public {
        uint256 queryId = _openQuery();
        _registerOwner(_ownerAddress(1));
        _submit(queryId, _ownerAddress(1));
        vm.warp(_params().revealDeadline + 1);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.TooFewOwners.selector, queryId, 1, 2));
        market.fail(queryId);
    }

    function test_fail_revertsBeforeCommitDeadline() public {
        uint256 queryId = _filledQueryInCommitWindow();
        uint256 deadline = _params().commitDeadline;
        vm.warp(deadline);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotYetDue.selector, queryId, deadline, deadline));
        market.fail(queryId);
    }

    function test_fail_revertsBeforeRevealDeadlineOnceAllCommitted() public {
        uint256 queryId = _committedQuery(1, 2);
        uint256 deadline = _params().revealDeadline;
        vm.warp(deadline);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotYetDue.selector, queryId, deadline, deadline));
        market.fail(queryId);
    }

    function testFuzz_fail_dueOnlyAfterMissedDeadline(uint256 at, uint8 commits) public {
        uint256 queryId = _filledQueryInCommitWindow();
        uint256 committed = _bound(commits, 0, 3);
        for (uint256 k; k < committed; ++k) {
            _commit(queryId, k, _share(queryId, k, 1));
        }
        uint256 deadline = committed < 3 ? _params().commitDeadline : _params().revealDeadline;
        at = _bound(at, block.timestamp, _params().revealDeadline + 1 days);
        vm.warp(at);

        if (at <= deadline) {
            vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotYetDue.selector, queryId, deadline, at));
        }
        market.fail(queryId);

        uint256 expectedSlash = at <= deadline ? 0 : (3 - (committed < 3 ? committed : 0)) * SLASH_AMOUNT;
        vm.assertEq(market.queryInfo(queryId).slashed, expectedSlash, "slashed");
    }

    // ---------------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------------

    /// An open default query with two owners, moved to the first second of its commit window.
    function _filledQueryInCommitWindow() internal returns (uint256 queryId) {
        queryId = _openQuery();
        _registerOwners(1, 2);
        _submitOwners(queryId, 1, 2);
        _warpToCommitWindow(queryId);
    }

    /// Returns the result and the included-owner count of the `ResultPublished` event in the
    /// recorded logs.
    function _publishedEvent(uint256 queryId) internal returns (uint64[] memory result, uint256 included) {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == IDataMarket.ResultPublished.selector) {
                vm.assertEq(logs[i].topics[1], bytes32(queryId), "queryId topic");
                return abi.decode(logs[i].data, (uint64[], uint256));
            }
        }
        revert("ResultPublished not emitted");
    }

}
