// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IDataMarket} from "../interfaces/IDataMarket.sol";
import {MarketTestBase, EtherRejecter} from "./utils/MarketTestBase.sol";
import {vm} from "./utils/Vm.sol";

contract PayoutsTest is MarketTestBase {
    /// The analyst starts empty, so its balance afterwards is exactly what the market paid it.
    function setUp() public override {
        super.setUp();
        vm.deal(analyst, 0);
    }

    // ---------------------------------------------------------------------------------------------
    // claim
    // ---------------------------------------------------------------------------------------------

    function test_claim_paysPriceAndSettles() public {
        uint256 queryId = _publishedQuery(1, 2);
        address owner = _ownerAddress(1);
        uint256 escrowBefore = market.queryInfo(queryId).escrow;

        vm.expectEmit(address(market));
        emit IDataMarket.OwnerPaid(queryId, owner, PRICE);
        vm.prank(owner);
        market.claim(queryId);

        vm.assertEq(owner.balance, PRICE, "owner paid");
        vm.assertEq(market.queryInfo(queryId).escrow, escrowBefore - PRICE, "escrow");
        vm.assertEq(
            uint256(market.submissionState(queryId, owner)), uint256(IDataMarket.SubmissionState.Settled), "state"
        );
        vm.assertEq(market.ownerInfo(owner).openSubmissions, 0, "openSubmissions");
        vm.assertEq(market.ownerInfo(owner).epsilonUsed, EPSILON, "epsilon stays spent");
    }

    function test_claim_revertsForUnknownQuery() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.QueryNotFound.selector, 9));
        vm.prank(_ownerAddress(1));
        market.claim(9);
    }

    function test_claim_revertsBeforePublication() public {
        uint256 queryId = _committedQuery(1, 2);

        vm.expectRevert(
            abi.encodeWithSelector(
                IDataMarket.WrongQueryStatus.selector,
                queryId,
                IDataMarket.QueryStatus.Open,
                IDataMarket.QueryStatus.Published
            )
        );
        vm.prank(_ownerAddress(1));
        market.claim(queryId);
    }

    function test_claim_revertsForOwnerWhoDidNotSubmit() public {
        uint256 queryId = _publishedQuery(1, 2);

        vm.expectRevert(
            abi.encodeWithSelector(
                IDataMarket.NotSubmitted.selector, queryId, stranger, IDataMarket.SubmissionState.None
            )
        );
        vm.prank(stranger);
        market.claim(queryId);
    }

    function test_claim_revertsWhenAlreadyClaimed() public {
        uint256 queryId = _publishedQuery(1, 2);
        vm.prank(_ownerAddress(1));
        market.claim(queryId);

        vm.expectRevert(
            abi.encodeWithSelector(
                IDataMarket.NotSubmitted.selector, queryId, _ownerAddress(1), IDataMarket.SubmissionState.Settled
            )
        );
        vm.prank(_ownerAddress(1));
        market.claim(queryId);
    }

    function test_claim_revertsForExcludedOwner() public {
        uint256 queryId = _openQuery();
        _registerOwners(1, 3);
        _submitOwners(queryId, 1, 3);
        vm.warp(_params().submitDeadline + 1);
        vm.prank(aggregators[0]);
        market.complain(queryId, _ownerAddress(3));
        _warpToCommitWindow(queryId);
        _commitAll(queryId);
        _revealAll(queryId);

        vm.expectRevert(
            abi.encodeWithSelector(
                IDataMarket.NotSubmitted.selector, queryId, _ownerAddress(3), IDataMarket.SubmissionState.Excluded
            )
        );
        vm.prank(_ownerAddress(3));
        market.claim(queryId);
    }

    function test_claim_revertsWhenTransferFails() public {
        uint256 queryId = _openQuery();
        address rejecter = address(new EtherRejecter());
        _registerOwners(1, 1);
        _registerOwner(rejecter);
        _submit(queryId, _ownerAddress(1));
        _submit(queryId, rejecter);
        _warpToCommitWindow(queryId);
        _commitAll(queryId);
        _revealAll(queryId);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.TransferFailed.selector, rejecter, PRICE));
        vm.prank(rejecter);
        market.claim(queryId);
    }

    // ---------------------------------------------------------------------------------------------
    // claimMany
    // ---------------------------------------------------------------------------------------------

    function test_claimMany_paysEveryListedQueryOnce() public {
        uint256 first = _publishedQuery(1, 2);
        uint256 second = _publishedQueryLater(1, 2);
        address owner = _ownerAddress(1);
        uint256[] memory ids = new uint256[](2);
        ids[0] = first;
        ids[1] = second;

        vm.expectEmit(address(market));
        emit IDataMarket.OwnerPaid(first, owner, PRICE);
        vm.expectEmit(address(market));
        emit IDataMarket.OwnerPaid(second, owner, PRICE);
        vm.prank(owner);
        market.claimMany(ids);

        vm.assertEq(owner.balance, 2 * PRICE, "paid twice");
        vm.assertEq(market.ownerInfo(owner).openSubmissions, 0, "openSubmissions");
    }

    function test_claimMany_emptyListChangesNothing() public {
        _publishedQuery(1, 2);
        address owner = _ownerAddress(1);

        vm.prank(owner);
        market.claimMany(new uint256[](0));

        vm.assertEq(owner.balance, 0, "nothing paid");
        vm.assertEq(market.ownerInfo(owner).openSubmissions, 1, "openSubmissions");
    }

    function test_claimMany_revertsOnDuplicateId() public {
        uint256 queryId = _publishedQuery(1, 2);
        uint256[] memory ids = new uint256[](2);
        ids[0] = queryId;
        ids[1] = queryId;

        vm.expectRevert(
            abi.encodeWithSelector(
                IDataMarket.NotSubmitted.selector, queryId, _ownerAddress(1), IDataMarket.SubmissionState.Settled
            )
        );
        vm.prank(_ownerAddress(1));
        market.claimMany(ids);
    }

    function test_claimMany_revertsWhenAnyQueryUnpublished() public {
        uint256 published = _publishedQuery(1, 2);
        uint256 pending = _propose(_paramsLater());
        uint256[] memory ids = new uint256[](2);
        ids[0] = published;
        ids[1] = pending;

        vm.expectRevert(
            abi.encodeWithSelector(
                IDataMarket.WrongQueryStatus.selector,
                pending,
                IDataMarket.QueryStatus.Proposed,
                IDataMarket.QueryStatus.Published
            )
        );
        vm.prank(_ownerAddress(1));
        market.claimMany(ids);
    }

    function test_claimMany_revertsWhenTransferFails() public {
        uint256 queryId = _openQuery();
        address rejecter = address(new EtherRejecter());
        _registerOwners(1, 1);
        _registerOwner(rejecter);
        _submit(queryId, _ownerAddress(1));
        _submit(queryId, rejecter);
        _warpToCommitWindow(queryId);
        _commitAll(queryId);
        _revealAll(queryId);
        uint256[] memory ids = new uint256[](1);
        ids[0] = queryId;

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.TransferFailed.selector, rejecter, PRICE));
        vm.prank(rejecter);
        market.claimMany(ids);
    }

    // ---------------------------------------------------------------------------------------------
    // releaseBudget
    // ---------------------------------------------------------------------------------------------

    function test_releaseBudget_afterCancel() public {
        uint256 queryId = _openQuery();
        address owner = _ownerAddress(1);
        _registerOwner(owner);
        _submit(queryId, owner);
        vm.warp(_params().submitDeadline + 1);
        market.cancel(queryId);

        vm.expectEmit(address(market));
        emit IDataMarket.BudgetReleased(queryId, owner, EPSILON);
        vm.prank(owner);
        market.releaseBudget(queryId);

        vm.assertEq(market.ownerInfo(owner).epsilonUsed, 0, "epsilonUsed");
        vm.assertEq(market.ownerInfo(owner).openSubmissions, 0, "openSubmissions");
        vm.assertEq(
            uint256(market.submissionState(queryId, owner)), uint256(IDataMarket.SubmissionState.Settled), "state"
        );
    }

    function test_releaseBudget_afterFail() public {
        uint256 queryId = _openQuery();
        _registerOwners(1, 2);
        _submitOwners(queryId, 1, 2);
        vm.warp(_params().commitDeadline + 1);
        market.fail(queryId);

        vm.prank(_ownerAddress(2));
        market.releaseBudget(queryId);

        vm.assertEq(market.ownerInfo(_ownerAddress(2)).epsilonUsed, 0, "epsilonUsed");
        vm.assertEq(market.ownerInfo(_ownerAddress(2)).openSubmissions, 0, "openSubmissions");
    }

    function test_releaseBudget_revertsForUnknownQuery() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.QueryNotFound.selector, 9));
        market.releaseBudget(9);
    }

    function test_releaseBudget_revertsWhenPublished() public {
        uint256 queryId = _publishedQuery(1, 2);

        vm.expectRevert(
            abi.encodeWithSelector(
                IDataMarket.WrongQueryStatus.selector,
                queryId,
                IDataMarket.QueryStatus.Published,
                IDataMarket.QueryStatus.Cancelled
            )
        );
        vm.prank(_ownerAddress(1));
        market.releaseBudget(queryId);
    }

    function test_releaseBudget_revertsWhenAlreadyReleased() public {
        uint256 queryId = _openQuery();
        address owner = _ownerAddress(1);
        _registerOwner(owner);
        _submit(queryId, owner);
        vm.warp(_params().submitDeadline + 1);
        market.cancel(queryId);
        vm.prank(owner);
        market.releaseBudget(queryId);

        vm.expectRevert(
            abi.encodeWithSelector(
                IDataMarket.NotSubmitted.selector, queryId, owner, IDataMarket.SubmissionState.Settled
            )
        );
        vm.prank(owner);
        market.releaseBudget(queryId);
    }

    // ---------------------------------------------------------------------------------------------
    // claimFee
    // ---------------------------------------------------------------------------------------------

    function test_claimFee_paysFee() public {
        uint256 queryId = _publishedQuery(1, 2);
        address aggregator = aggregators[1];
        uint256 balanceBefore = aggregator.balance;
        uint256 escrowBefore = market.queryInfo(queryId).escrow;

        vm.expectEmit(address(market));
        emit IDataMarket.AggregatorFeePaid(queryId, aggregator, FEE);
        vm.prank(aggregator);
        market.claimFee(queryId);

        vm.assertEq(aggregator.balance, balanceBefore + FEE, "fee paid");
        vm.assertEq(market.queryInfo(queryId).escrow, escrowBefore - FEE, "escrow");
        vm.assertTrue(market.aggregatorQueryState(queryId, aggregator).feeClaimed, "feeClaimed");
    }

    function test_claimFee_revertsForUnknownQuery() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.QueryNotFound.selector, 9));
        vm.prank(aggregators[0]);
        market.claimFee(9);
    }

    function test_claimFee_revertsBeforePublication() public {
        uint256 queryId = _committedQuery(1, 2);

        vm.expectRevert(
            abi.encodeWithSelector(
                IDataMarket.WrongQueryStatus.selector,
                queryId,
                IDataMarket.QueryStatus.Open,
                IDataMarket.QueryStatus.Published
            )
        );
        vm.prank(aggregators[0]);
        market.claimFee(queryId);
    }

    function test_claimFee_revertsForUnassignedCaller() public {
        uint256 queryId = _publishedQuery(1, 2);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotAssignedAggregator.selector, queryId, stranger));
        vm.prank(stranger);
        market.claimFee(queryId);
    }

    function test_claimFee_revertsWhenAlreadyClaimed() public {
        uint256 queryId = _publishedQuery(1, 2);
        vm.prank(aggregators[0]);
        market.claimFee(queryId);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.FeeAlreadyClaimed.selector, queryId, aggregators[0]));
        vm.prank(aggregators[0]);
        market.claimFee(queryId);
    }

    function test_claimFee_revertsWhenTransferFails() public {
        address rejecter = address(new EtherRejecter());
        vm.deal(rejecter, AGGREGATOR_STAKE);
        vm.prank(rejecter);
        market.registerAggregator{value: AGGREGATOR_STAKE}(_encryptionKey(rejecter));
        aggregators[2] = rejecter;
        uint256 queryId = _publishedQuery(1, 2);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.TransferFailed.selector, rejecter, FEE));
        vm.prank(rejecter);
        market.claimFee(queryId);
    }

    // ---------------------------------------------------------------------------------------------
    // refund
    // ---------------------------------------------------------------------------------------------

    function test_refund_unusedEscrowAfterPublication() public {
        uint256 queryId = _publishedQuery(1, 3);
        uint256 unused = (10 - 3) * uint256(PRICE);
        uint256 escrowBefore = market.queryInfo(queryId).escrow;

        vm.expectEmit(address(market));
        emit IDataMarket.AnalystRefunded(queryId, analyst, unused);
        vm.prank(analyst);
        market.refund(queryId);

        vm.assertEq(analyst.balance, unused, "analyst refunded");
        IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
        vm.assertEq(info.escrow, escrowBefore - unused, "escrow keeps owner and aggregator pay");
        vm.assertEq(info.escrow, 3 * uint256(PRICE) + 3 * uint256(FEE), "escrow");
        vm.assertTrue(info.analystRefunded, "analystRefunded");
    }

    function test_refund_excludedOwnersReturnToAnalyst() public {
        uint256 queryId = _openQuery();
        _registerOwners(1, 3);
        _submitOwners(queryId, 1, 3);
        vm.warp(_params().submitDeadline + 1);
        vm.prank(aggregators[0]);
        market.complain(queryId, _ownerAddress(2));
        _warpToCommitWindow(queryId);
        _commitAll(queryId);
        _revealAll(queryId);

        vm.prank(analyst);
        market.refund(queryId);

        vm.assertEq(analyst.balance, (10 - 2) * uint256(PRICE), "refund covers the excluded owner");
    }

    function test_refund_wholeEscrowAfterCancel() public {
        uint256 queryId = _propose(_params());
        vm.warp(_params().acceptDeadline + 1);
        market.cancel(queryId);

        vm.prank(analyst);
        market.refund(queryId);

        vm.assertEq(analyst.balance, _escrow(_params()), "whole escrow");
        vm.assertEq(market.queryInfo(queryId).escrow, 0, "escrow emptied");
        vm.assertEq(address(market).balance, 3 * AGGREGATOR_STAKE, "only stakes remain");
    }

    function test_refund_escrowPlusSlashedAfterFail() public {
        uint256 queryId = _openQuery();
        _registerOwners(1, 2);
        _submitOwners(queryId, 1, 2);
        vm.warp(_params().commitDeadline + 1);
        market.fail(queryId);
        uint256 expected = _escrow(_params()) + 3 * SLASH_AMOUNT;

        vm.expectEmit(address(market));
        emit IDataMarket.AnalystRefunded(queryId, analyst, expected);
        vm.prank(analyst);
        market.refund(queryId);

        vm.assertEq(analyst.balance, expected, "escrow and slashed stake");
        vm.assertEq(market.queryInfo(queryId).slashed, 0, "slashed paid out");
        vm.assertEq(
            address(market).balance,
            3 * (AGGREGATOR_STAKE - SLASH_AMOUNT) + 2 * MIN_OWNER_STAKE,
            "only stakes remain"
        );
    }

    function test_refund_revertsForUnknownQuery() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.QueryNotFound.selector, 9));
        vm.prank(analyst);
        market.refund(9);
    }

    function test_refund_revertsForOtherCaller() public {
        uint256 queryId = _publishedQuery(1, 2);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotAnalyst.selector, queryId, stranger, analyst));
        vm.prank(stranger);
        market.refund(queryId);
    }

    function test_refund_revertsWhenAlreadyRefunded() public {
        uint256 queryId = _publishedQuery(1, 2);
        vm.prank(analyst);
        market.refund(queryId);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.AlreadyRefunded.selector, queryId));
        vm.prank(analyst);
        market.refund(queryId);
    }

    function test_refund_revertsWhileOpen() public {
        uint256 queryId = _openQuery();

        vm.expectRevert(
            abi.encodeWithSelector(
                IDataMarket.WrongQueryStatus.selector,
                queryId,
                IDataMarket.QueryStatus.Open,
                IDataMarket.QueryStatus.Published
            )
        );
        vm.prank(analyst);
        market.refund(queryId);
    }

    function test_refund_revertsWhenTransferFails() public {
        address rejecter = address(new EtherRejecter());
        IDataMarket.QueryParams memory params = _params();
        vm.deal(rejecter, _escrow(params));
        vm.prank(rejecter);
        uint256 queryId = market.proposeQuery{value: _escrow(params)}(params, SPEC_JSON);
        vm.warp(params.acceptDeadline + 1);
        market.cancel(queryId);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.TransferFailed.selector, rejecter, _escrow(params)));
        vm.prank(rejecter);
        market.refund(queryId);
    }

    /// Every wei of a published query's escrow goes to exactly one payee: each included owner its
    /// price, each aggregator its fee, and the analyst the rest.
    function testFuzz_refund_publishedEscrowFullyPaidOut(uint96 price, uint96 fee, uint8 maxOwners, uint8 submitted)
        public
    {
        IDataMarket.QueryParams memory params = _params();
        params.pricePerOwner = uint96(_bound(price, 0, 1_000 ether));
        params.feePerAggregator = uint96(_bound(fee, 0, 1_000 ether));
        params.maxOwners = uint32(_bound(maxOwners, 2, 12));
        uint256 count = _bound(submitted, 2, params.maxOwners);
        IDataMarket.OwnerPolicy memory policy = _policy();
        policy.minPricePerQuery = 0;
        for (uint256 i = 1; i <= count; ++i) {
            _registerOwner(_ownerAddress(i), policy);
        }
        uint256 queryId = _openQuery(params);
        _submitOwners(queryId, 1, count);
        _warpToCommitWindow(queryId);
        _commitAll(queryId);
        _revealAll(queryId);
        uint256 balanceBefore = address(market).balance;

        vm.prank(analyst);
        market.refund(queryId);
        for (uint256 i = 1; i <= count; ++i) {
            vm.prank(_ownerAddress(i));
            market.claim(queryId);
            vm.assertEq(_ownerAddress(i).balance, params.pricePerOwner, "owner paid its price");
        }
        for (uint256 k; k < aggregators.length; ++k) {
            vm.prank(aggregators[k]);
            market.claimFee(queryId);
        }

        vm.assertEq(analyst.balance, uint256(params.pricePerOwner) * (params.maxOwners - count), "analyst refund");
        vm.assertEq(market.queryInfo(queryId).escrow, 0, "escrow emptied");
        vm.assertEq(balanceBefore - address(market).balance, _escrow(params), "paid out exactly the escrow");
    }

    /// A cancelled or failed query returns the whole escrow, plus any slashed stake, to the analyst.
    function testFuzz_refund_cancelledEscrowReturned(uint96 price, uint96 fee, uint32 maxOwners) public {
        IDataMarket.QueryParams memory params = _params();
        params.pricePerOwner = uint96(_bound(price, 0, type(uint96).max / 4));
        params.feePerAggregator = uint96(_bound(fee, 0, type(uint96).max / 4));
        params.maxOwners = uint32(_bound(maxOwners, 2, 1_000_000));
        params.maxAbsEncoded = 1;
        uint256 escrow = _escrow(params);
        uint256 queryId = _propose(params);
        vm.warp(params.acceptDeadline + 1);
        market.cancel(queryId);
        uint256 balanceBefore = analyst.balance;

        vm.prank(analyst);
        market.refund(queryId);

        vm.assertEq(analyst.balance - balanceBefore, escrow, "whole escrow");
        vm.assertEq(address(market).balance, 3 * AGGREGATOR_STAKE, "only stakes remain");
    }

    // ---------------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------------

    /// Default parameters with every deadline moved forward by the time elapsed since `START`.
    function _paramsLater() internal view returns (IDataMarket.QueryParams memory params) {
        params = _params();
        uint40 shift = uint40(block.timestamp) - START;
        params.acceptDeadline += shift;
        params.submitDeadline += shift;
        params.commitDeadline += shift;
        params.revealDeadline += shift;
    }

    /// Like `_publishedQuery`, but for a query proposed now, after earlier queries moved time on.
    /// Owners that are already registered are not registered again.
    function _publishedQueryLater(uint256 first, uint256 count) internal returns (uint256 queryId) {
        IDataMarket.QueryParams memory params = _paramsLater();
        queryId = _openQuery(params);
        for (uint256 i = first; i < first + count; ++i) {
            if (!market.ownerInfo(_ownerAddress(i)).registered) _registerOwner(_ownerAddress(i));
        }
        _submitOwners(queryId, first, count);
        vm.warp(params.submitDeadline + COMPLAINT_PERIOD + 1);
        _commitAll(queryId);
        _revealAll(queryId);
    }
}
