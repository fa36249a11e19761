// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IDataMarket} from "../interfaces/IDataMarket.sol";
import {MarketTestBase} from "./utils/MarketTestBase.sol";
import {vm} from "./utils/Vm.sol";

contract QueryViewsTest is MarketTestBase {
    function test_queryInfo_returnsProposedParams() public {
        IDataMarket.QueryParams memory params = _params();
        params.templateId = 5;
        params.outputLength = 7;
        params.maxAbsEncoded = 12345;
        uint256 queryId = _propose(params);

        IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
        IDataMarket.QueryParams memory stored = info.params;

        vm.assertEq(stored.templateId, 5, "templateId");
        vm.assertEq(stored.outputLength, 7, "outputLength");
        vm.assertEq(stored.epsilon, EPSILON, "epsilon");
        vm.assertEq(stored.pricePerOwner, PRICE, "pricePerOwner");
        vm.assertEq(stored.minOwners, 2, "minOwners");
        vm.assertEq(stored.maxOwners, 10, "maxOwners");
        vm.assertEq(stored.aggregators.length, 3, "aggregator count");
        for (uint256 k; k < 3; ++k) {
            vm.assertEq(stored.aggregators[k], aggregators[k], "aggregator order");
        }
        vm.assertEq(stored.feePerAggregator, FEE, "feePerAggregator");
        vm.assertEq(stored.acceptDeadline, params.acceptDeadline, "acceptDeadline");
        vm.assertEq(stored.submitDeadline, params.submitDeadline, "submitDeadline");
        vm.assertEq(stored.commitDeadline, params.commitDeadline, "commitDeadline");
        vm.assertEq(stored.revealDeadline, params.revealDeadline, "revealDeadline");
        vm.assertEq(stored.maxAbsEncoded, 12345, "maxAbsEncoded");
        vm.assertEq(info.acceptedCount, 0, "acceptedCount");
        vm.assertEq(info.submittedCount, 0, "submittedCount");
        vm.assertEq(info.excludedCount, 0, "excludedCount");
        vm.assertEq(info.committedCount, 0, "committedCount");
        vm.assertEq(info.revealedCount, 0, "revealedCount");
        vm.assertEq(info.closedAt, 0, "closedAt");
        vm.assertEq(info.slashed, 0, "slashed");
        vm.assertFalse(info.analystRefunded, "analystRefunded");
    }

    function test_queryInfo_tracksCountsThroughPublication() public {
        uint256 queryId = _openQuery();
        _registerOwners(1, 3);
        _submitOwners(queryId, 1, 3);
        vm.warp(_params().submitDeadline + 1);
        vm.prank(aggregators[0]);
        market.complain(queryId, _ownerAddress(1));
        _warpToCommitWindow(queryId);
        _commitAll(queryId);
        _revealAll(queryId);

        IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
        vm.assertEq(uint256(info.status), uint256(IDataMarket.QueryStatus.Published), "status");
        vm.assertEq(info.acceptedCount, 3, "acceptedCount");
        vm.assertEq(info.submittedCount, 3, "submittedCount");
        vm.assertEq(info.excludedCount, 1, "excludedCount");
        vm.assertEq(info.committedCount, 3, "committedCount");
        vm.assertEq(info.revealedCount, 3, "revealedCount");
    }

    function test_queryInfo_revertsForUnknownQuery() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.QueryNotFound.selector, 0));
        market.queryInfo(0);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.QueryNotFound.selector, 1));
        market.queryInfo(1);
    }

    function test_submissionState_noneForOwnerWhoDidNotSubmit() public {
        uint256 queryId = _openQuery();
        _registerOwner(_ownerAddress(1));

        vm.assertEq(uint256(market.submissionState(queryId, _ownerAddress(1))), 0, "registered owner");
        vm.assertEq(uint256(market.submissionState(queryId, stranger)), 0, "unregistered address");
    }

    function test_submissionState_revertsForUnknownQuery() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.QueryNotFound.selector, 4));
        market.submissionState(4, stranger);
    }

    function test_aggregatorQueryState_defaultsForUnassignedAddress() public {
        uint256 queryId = _openQuery();

        IDataMarket.AggregatorQueryState memory state = market.aggregatorQueryState(queryId, stranger);

        vm.assertFalse(state.accepted, "accepted");
        vm.assertFalse(state.committed, "committed");
        vm.assertFalse(state.revealed, "revealed");
        vm.assertFalse(state.feeClaimed, "feeClaimed");
        vm.assertEq(state.commitment, bytes32(0), "commitment");
    }

    function test_aggregatorQueryState_revertsForUnknownQuery() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.QueryNotFound.selector, 4));
        market.aggregatorQueryState(4, aggregators[0]);
    }

    function test_complaintWindowEnd_zeroWhileSubmissionsOpen() public {
        uint256 queryId = _openQuery();
        vm.warp(_params().submitDeadline - 1);

        vm.assertEq(market.complaintWindowEnd(queryId), 0, "window end");
    }

    function test_complaintWindowEnd_fromSubmitDeadline() public {
        uint256 queryId = _openQuery();
        vm.warp(_params().submitDeadline);

        vm.assertEq(
            market.complaintWindowEnd(queryId), _params().submitDeadline + COMPLAINT_PERIOD, "window end"
        );
    }

    function test_complaintWindowEnd_fromFillTime() public {
        IDataMarket.QueryParams memory params = _params();
        params.maxOwners = 2;
        uint256 queryId = _openQuery(params);
        _registerOwners(1, 2);
        vm.warp(block.timestamp + 100);
        _submitOwners(queryId, 1, 2);

        vm.assertEq(market.complaintWindowEnd(queryId), block.timestamp + COMPLAINT_PERIOD, "window end");
    }

    function test_complaintWindowEnd_revertsForUnknownQuery() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.QueryNotFound.selector, 4));
        market.complaintWindowEnd(4);
    }

    function test_queryResult_emptyUnlessPublished() public {
        uint256 queryId = _committedQuery(1, 2);
        _reveal(queryId, 0, _share(queryId, 0, 1));

        vm.assertEq(market.queryResult(queryId).length, 0, "partial sum hidden");
    }

    function test_queryResult_revertsForUnknownQuery() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.QueryNotFound.selector, 4));
        market.queryResult(4);
    }

    function test_ciphertextLength_isKeyPlusCoordinatesPlusTag() public {
        IDataMarket.QueryParams memory params = _params();
        params.outputLength = 12;
        uint256 queryId = _propose(params);

        vm.assertEq(market.ciphertextLength(queryId), 32 + 8 * 12 + 16, "ciphertextLength");
    }

    function test_ciphertextLength_revertsForUnknownQuery() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.QueryNotFound.selector, 4));
        market.ciphertextLength(4);
    }
}
