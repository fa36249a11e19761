// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IDataMarket} from "../interfaces/IDataMarket.sol";
import {MarketTestBase} from "./utils/MarketTestBase.sol";
import {vm} from "./utils/Vm.sol";

contract QueryLifecycleTest is MarketTestBase {
    // ---------------------------------------------------------------------------------------------
    // proposeQuery
    // ---------------------------------------------------------------------------------------------

    function test_proposeQuery_escrowsAndStoresQuery() public {
        IDataMarket.QueryParams memory params = _params();
        uint256 escrow = _escrow(params);
        vm.deal(analyst, escrow);

        vm.expectEmit(address(market));
        emit IDataMarket.QueryProposed(1, analyst, keccak256(SPEC_JSON), params, SPEC_JSON);
        vm.prank(analyst);
        uint256 queryId = market.proposeQuery{value: escrow}(params, SPEC_JSON);

        vm.assertEq(queryId, 1, "first id");
        vm.assertEq(market.queryCount(), 1, "queryCount");
        IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
        vm.assertEq(info.analyst, analyst, "analyst");
        vm.assertEq(uint256(info.status), uint256(IDataMarket.QueryStatus.Proposed), "status");
        vm.assertEq(info.specHash, keccak256(SPEC_JSON), "specHash");
        vm.assertEq(info.escrow, escrow, "escrow");
        vm.assertEq(escrow, 10 * PRICE + 3 * FEE, "escrow formula");
        vm.assertEq(address(market).balance, 3 * AGGREGATOR_STAKE + escrow, "market balance");
        vm.assertEq(analyst.balance, 0, "analyst paid everything");
    }

    function test_proposeQuery_assignsSequentialIds() public {
        uint256 first = _propose(_params());
        uint256 second = _propose(_params());

        vm.assertEq(first, 1, "first");
        vm.assertEq(second, 2, "second");
    }

    function test_proposeQuery_revertsWithTooFewAggregators() public {
        IDataMarket.QueryParams memory params = _params();
        params.aggregators = new address[](1);
        params.aggregators[0] = aggregators[0];

        _expectProposeRevert(
            params,
            abi.encodeWithSelector(IDataMarket.InvalidAggregatorCount.selector, 1, 2, MAX_AGGREGATORS)
        );
    }

    function test_proposeQuery_revertsWithTooManyAggregators() public {
        IDataMarket.QueryParams memory params = _params();
        params.aggregators = new address[](MAX_AGGREGATORS + 1);
        for (uint256 i; i < params.aggregators.length; ++i) {
            params.aggregators[i] = _registerAggregator(10 + i);
        }

        _expectProposeRevert(
            params,
            abi.encodeWithSelector(
                IDataMarket.InvalidAggregatorCount.selector, MAX_AGGREGATORS + 1, 2, MAX_AGGREGATORS
            )
        );
    }

    function test_proposeQuery_acceptsMaxAggregators() public {
        IDataMarket.QueryParams memory params = _params();
        params.aggregators = new address[](MAX_AGGREGATORS);
        for (uint256 i; i < params.aggregators.length; ++i) {
            params.aggregators[i] = _registerAggregator(10 + i);
        }

        uint256 queryId = _propose(params);

        vm.assertEq(market.queryInfo(queryId).params.aggregators.length, MAX_AGGREGATORS, "K");
    }

    function test_proposeQuery_revertsWithZeroOutputLength() public {
        IDataMarket.QueryParams memory params = _params();
        params.outputLength = 0;

        _expectProposeRevert(
            params, abi.encodeWithSelector(IDataMarket.InvalidOutputLength.selector, 0, MAX_OUTPUT_LENGTH)
        );
    }

    function test_proposeQuery_revertsWithOutputLengthAboveMaximum() public {
        IDataMarket.QueryParams memory params = _params();
        params.outputLength = MAX_OUTPUT_LENGTH + 1;

        _expectProposeRevert(
            params,
            abi.encodeWithSelector(IDataMarket.InvalidOutputLength.selector, MAX_OUTPUT_LENGTH + 1, MAX_OUTPUT_LENGTH)
        );
    }

    function test_proposeQuery_revertsWithZeroMinOwners() public {
        IDataMarket.QueryParams memory params = _params();
        params.minOwners = 0;

        _expectProposeRevert(params, abi.encodeWithSelector(IDataMarket.InvalidOwnerBounds.selector, 0, 10));
    }

    function test_proposeQuery_revertsWhenMinOwnersAboveMax() public {
        IDataMarket.QueryParams memory params = _params();
        params.minOwners = 11;

        _expectProposeRevert(params, abi.encodeWithSelector(IDataMarket.InvalidOwnerBounds.selector, 11, 10));
    }

    function test_proposeQuery_revertsWithZeroEncodedBound() public {
        IDataMarket.QueryParams memory params = _params();
        params.maxAbsEncoded = 0;

        _expectProposeRevert(params, abi.encodeWithSelector(IDataMarket.ZeroEncodedBound.selector));
    }

    function test_proposeQuery_revertsWhenEncodedSumReachesLimit() public {
        IDataMarket.QueryParams memory params = _params();
        params.maxOwners = 4;
        params.maxAbsEncoded = ENCODED_SUM_LIMIT / 4;

        _expectProposeRevert(
            params, abi.encodeWithSelector(IDataMarket.EncodedBoundTooLarge.selector, 4, ENCODED_SUM_LIMIT / 4)
        );
    }

    function test_proposeQuery_acceptsEncodedSumJustBelowLimit() public {
        IDataMarket.QueryParams memory params = _params();
        params.maxOwners = 4;
        params.maxAbsEncoded = ENCODED_SUM_LIMIT / 4 - 1;

        uint256 queryId = _propose(params);

        vm.assertEq(market.queryInfo(queryId).params.maxAbsEncoded, ENCODED_SUM_LIMIT / 4 - 1, "maxAbsEncoded");
    }

    function test_proposeQuery_revertsWithTemplateIdOutOfMask() public {
        IDataMarket.QueryParams memory params = _params();
        params.templateId = 32;

        _expectProposeRevert(params, abi.encodeWithSelector(IDataMarket.InvalidTemplate.selector, 32));
    }

    function test_proposeQuery_revertsWhenAcceptDeadlineNotInFuture() public {
        IDataMarket.QueryParams memory params = _params();
        params.acceptDeadline = uint40(block.timestamp);

        _expectProposeRevert(params, _invalidDeadlines(params));
    }

    function test_proposeQuery_revertsWhenSubmitBeforeAccept() public {
        IDataMarket.QueryParams memory params = _params();
        params.submitDeadline = params.acceptDeadline - 1;

        _expectProposeRevert(params, _invalidDeadlines(params));
    }

    function test_proposeQuery_revertsWhenCommitInsideComplaintPeriod() public {
        IDataMarket.QueryParams memory params = _params();
        params.commitDeadline = params.submitDeadline + COMPLAINT_PERIOD;

        _expectProposeRevert(params, _invalidDeadlines(params));
    }

    function test_proposeQuery_revertsWhenRevealNotAfterCommit() public {
        IDataMarket.QueryParams memory params = _params();
        params.revealDeadline = params.commitDeadline;

        _expectProposeRevert(params, _invalidDeadlines(params));
    }

    function test_proposeQuery_acceptsTightestDeadlines() public {
        IDataMarket.QueryParams memory params = _params();
        params.acceptDeadline = uint40(block.timestamp + 1);
        params.submitDeadline = params.acceptDeadline;
        params.commitDeadline = params.submitDeadline + COMPLAINT_PERIOD + 1;
        params.revealDeadline = params.commitDeadline + 1;

        uint256 queryId = _propose(params);

        vm.assertEq(market.queryInfo(queryId).params.revealDeadline, params.revealDeadline, "revealDeadline");
    }

    function test_proposeQuery_revertsWhenPaymentShort() public {
        IDataMarket.QueryParams memory params = _params();
        uint256 required = _escrow(params);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.WrongPayment.selector, required - 1, required));
        vm.prank(analyst);
        market.proposeQuery{value: required - 1}(params, SPEC_JSON);
    }

    function test_proposeQuery_revertsWhenAggregatorNotRegistered() public {
        IDataMarket.QueryParams memory params = _params();
        params.aggregators[1] = stranger;

        _expectProposeRevert(params, abi.encodeWithSelector(IDataMarket.AggregatorNotRegistered.selector, stranger));
    }

    function test_proposeQuery_revertsWhenAggregatorExiting() public {
        IDataMarket.QueryParams memory params = _params();
        vm.prank(aggregators[2]);
        market.beginAggregatorExit();

        _expectProposeRevert(
            params, abi.encodeWithSelector(IDataMarket.AggregatorExiting.selector, aggregators[2], block.timestamp)
        );
    }

    function test_proposeQuery_revertsWhenAggregatorStakeTooLow() public {
        address aggregator = _aggregatorAddress(20);
        _slashBelowMinimum(aggregator);
        IDataMarket.QueryParams memory params = _params();
        params.aggregators[0] = aggregator;
        params.acceptDeadline = uint40(block.timestamp + 1);
        uint256 stake = market.aggregatorInfo(aggregator).stake;

        _expectProposeRevert(
            params, abi.encodeWithSelector(IDataMarket.StakeTooLow.selector, stake, MIN_AGGREGATOR_STAKE)
        );
    }

    function test_proposeQuery_revertsWithDuplicateAggregator() public {
        IDataMarket.QueryParams memory params = _params();
        params.aggregators[2] = params.aggregators[0];

        _expectProposeRevert(
            params, abi.encodeWithSelector(IDataMarket.DuplicateAggregator.selector, params.aggregators[0])
        );
    }

    function testFuzz_proposeQuery_escrowsExactPayment(uint96 price, uint32 maxOwners, uint96 fee, uint8 count)
        public
    {
        IDataMarket.QueryParams memory params = _params();
        params.pricePerOwner = price;
        params.maxOwners = uint32(_bound(maxOwners, 1, type(uint32).max));
        params.minOwners = 1;
        params.maxAbsEncoded = 1;
        params.feePerAggregator = fee;
        params.aggregators = new address[](_bound(count, 2, MAX_AGGREGATORS));
        for (uint256 i; i < params.aggregators.length; ++i) {
            params.aggregators[i] = i < aggregators.length ? aggregators[i] : _registerAggregator(10 + i);
        }
        uint256 required = uint256(price) * params.maxOwners + uint256(fee) * params.aggregators.length;
        uint256 balanceBefore = address(market).balance;

        uint256 queryId = _propose(params);

        vm.assertEq(market.queryInfo(queryId).escrow, required, "escrow");
        vm.assertEq(address(market).balance - balanceBefore, required, "market balance grew by the escrow");
    }

    function testFuzz_proposeQuery_rejectsWrongPayment(uint256 sent) public {
        IDataMarket.QueryParams memory params = _params();
        uint256 required = _escrow(params);
        sent = _bound(sent, 0, 2 * required);
        vm.assume(sent != required);
        vm.deal(analyst, sent);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.WrongPayment.selector, sent, required));
        vm.prank(analyst);
        market.proposeQuery{value: sent}(params, SPEC_JSON);
    }

    function testFuzz_proposeQuery_checksDeadlineOrder(uint40 accept, uint40 submit, uint40 commit, uint40 reveal)
        public
    {
        IDataMarket.QueryParams memory params = _params();
        uint256 horizon = 30 days;
        params.acceptDeadline = uint40(_bound(accept, START - 1, START + horizon));
        params.submitDeadline = uint40(_bound(submit, START - 1, START + horizon));
        params.commitDeadline = uint40(_bound(commit, START - 1, START + 2 * horizon));
        params.revealDeadline = uint40(_bound(reveal, START - 1, START + 2 * horizon));
        bool ordered = START < params.acceptDeadline && params.acceptDeadline <= params.submitDeadline
            && params.submitDeadline + COMPLAINT_PERIOD < params.commitDeadline
            && params.commitDeadline < params.revealDeadline;
        uint256 escrow = _escrow(params);

        if (!ordered) vm.expectRevert(_invalidDeadlines(params));
        vm.prank(analyst);
        market.proposeQuery{value: escrow}(params, SPEC_JSON);

        vm.assertEq(market.queryCount(), ordered ? 1 : 0, "queryCount");
    }

    function testFuzz_proposeQuery_checksOutputLength(uint32 outputLength) public {
        IDataMarket.QueryParams memory params = _params();
        params.outputLength = outputLength;
        bool valid = outputLength >= 1 && outputLength <= MAX_OUTPUT_LENGTH;
        uint256 escrow = _escrow(params);

        if (!valid) {
            vm.expectRevert(
                abi.encodeWithSelector(IDataMarket.InvalidOutputLength.selector, outputLength, MAX_OUTPUT_LENGTH)
            );
        }
        vm.prank(analyst);
        market.proposeQuery{value: escrow}(params, SPEC_JSON);

        if (valid) vm.assertEq(market.ciphertextLength(1), 48 + 8 * uint256(outputLength), "ciphertextLength");
    }

    function testFuzz_proposeQuery_checksEncodedBound(uint32 maxOwners, uint64 maxAbsEncoded) public {
        IDataMarket.QueryParams memory params = _params();
        params.maxOwners = uint32(_bound(maxOwners, 1, type(uint32).max));
        params.minOwners = 1;
        params.pricePerOwner = 0;
        params.maxAbsEncoded = uint64(_bound(maxAbsEncoded, 1, type(uint64).max));
        bool valid = uint256(params.maxOwners) * params.maxAbsEncoded < ENCODED_SUM_LIMIT;
        uint256 escrow = _escrow(params);

        if (!valid) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IDataMarket.EncodedBoundTooLarge.selector, params.maxOwners, params.maxAbsEncoded
                )
            );
        }
        vm.prank(analyst);
        market.proposeQuery{value: escrow}(params, SPEC_JSON);

        vm.assertEq(market.queryCount(), valid ? 1 : 0, "queryCount");
    }

    // ---------------------------------------------------------------------------------------------
    // acceptQuery
    // ---------------------------------------------------------------------------------------------

    function test_acceptQuery_recordsAcceptance() public {
        uint256 queryId = _propose(_params());

        vm.expectEmit(address(market));
        emit IDataMarket.QueryAccepted(queryId, aggregators[0]);
        vm.prank(aggregators[0]);
        market.acceptQuery(queryId);

        IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
        vm.assertEq(uint256(info.status), uint256(IDataMarket.QueryStatus.Proposed), "still proposed");
        vm.assertEq(info.acceptedCount, 1, "acceptedCount");
        vm.assertTrue(market.aggregatorQueryState(queryId, aggregators[0]).accepted, "accepted");
        vm.assertEq(market.aggregatorInfo(aggregators[0]).openQueries, 1, "openQueries");
    }

    function test_acceptQuery_lastAcceptanceOpensQuery() public {
        uint256 queryId = _propose(_params());
        vm.prank(aggregators[0]);
        market.acceptQuery(queryId);
        vm.prank(aggregators[1]);
        market.acceptQuery(queryId);

        vm.expectEmit(address(market));
        emit IDataMarket.QueryAccepted(queryId, aggregators[2]);
        vm.expectEmit(address(market));
        emit IDataMarket.QueryOpened(queryId);
        vm.prank(aggregators[2]);
        market.acceptQuery(queryId);

        vm.assertEq(uint256(market.queryInfo(queryId).status), uint256(IDataMarket.QueryStatus.Open), "status");
    }

    function test_acceptQuery_acceptsAtDeadline() public {
        uint256 queryId = _propose(_params());
        vm.warp(_params().acceptDeadline);

        vm.prank(aggregators[0]);
        market.acceptQuery(queryId);

        vm.assertEq(market.queryInfo(queryId).acceptedCount, 1, "acceptedCount");
    }

    function test_acceptQuery_revertsForUnknownQuery() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.QueryNotFound.selector, 7));
        vm.prank(aggregators[0]);
        market.acceptQuery(7);
    }

    function test_acceptQuery_revertsWhenAlreadyOpen() public {
        uint256 queryId = _openQuery();

        vm.expectRevert(
            abi.encodeWithSelector(
                IDataMarket.WrongQueryStatus.selector,
                queryId,
                IDataMarket.QueryStatus.Open,
                IDataMarket.QueryStatus.Proposed
            )
        );
        vm.prank(aggregators[0]);
        market.acceptQuery(queryId);
    }

    function test_acceptQuery_revertsAfterDeadline() public {
        uint256 queryId = _propose(_params());
        uint256 deadline = _params().acceptDeadline;
        vm.warp(deadline + 1);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.DeadlinePassed.selector, queryId, deadline, deadline + 1));
        vm.prank(aggregators[0]);
        market.acceptQuery(queryId);
    }

    function test_acceptQuery_revertsForUnassignedCaller() public {
        uint256 queryId = _propose(_params());
        address other = _registerAggregator(9);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotAssignedAggregator.selector, queryId, other));
        vm.prank(other);
        market.acceptQuery(queryId);
    }

    function test_acceptQuery_revertsWhenAlreadyAccepted() public {
        uint256 queryId = _propose(_params());
        vm.prank(aggregators[0]);
        market.acceptQuery(queryId);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.AlreadyAccepted.selector, queryId, aggregators[0]));
        vm.prank(aggregators[0]);
        market.acceptQuery(queryId);
    }

    function test_acceptQuery_revertsWhenAggregatorExiting() public {
        uint256 queryId = _propose(_params());
        vm.prank(aggregators[1]);
        market.beginAggregatorExit();

        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.AggregatorExiting.selector, aggregators[1], block.timestamp)
        );
        vm.prank(aggregators[1]);
        market.acceptQuery(queryId);
    }

    function test_acceptQuery_revertsWhenStakeSlashedBelowMinimum() public {
        address aggregator = _aggregatorAddress(20);
        _registerAggregatorAt(aggregator);
        IDataMarket.QueryParams memory params = _params();
        params.aggregators[0] = aggregator;
        // Late enough to outlast the query that slashes the aggregator.
        params.acceptDeadline = START + 2 hours;
        uint256 pending = _propose(params);
        _slashBelowMinimum(aggregator);
        uint256 stake = market.aggregatorInfo(aggregator).stake;

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.StakeTooLow.selector, stake, MIN_AGGREGATOR_STAKE));
        vm.prank(aggregator);
        market.acceptQuery(pending);
    }

    // ---------------------------------------------------------------------------------------------
    // submitShares
    // ---------------------------------------------------------------------------------------------

    function test_submitShares_recordsSubmissionAndReservesEpsilon() public {
        uint256 queryId = _openQuery();
        address owner = _ownerAddress(1);
        _registerOwner(owner);
        bytes[] memory ciphertexts = _ciphertextsFor(queryId, owner);

        vm.expectEmit(address(market));
        emit IDataMarket.SharesSubmitted(queryId, owner, ciphertexts);
        vm.prank(owner);
        market.submitShares(queryId, ciphertexts);

        vm.assertEq(
            uint256(market.submissionState(queryId, owner)),
            uint256(IDataMarket.SubmissionState.Submitted),
            "state"
        );
        vm.assertEq(market.ownerInfo(owner).epsilonUsed, EPSILON, "epsilonUsed");
        vm.assertEq(market.ownerInfo(owner).openSubmissions, 1, "openSubmissions");
        vm.assertEq(market.queryInfo(queryId).submittedCount, 1, "submittedCount");
        vm.assertEq(market.queryInfo(queryId).closedAt, 0, "still open");
    }

    function test_submitShares_keepsOwnersApartAcrossStateWords() public {
        uint256 queryId = _openQuery();
        // Owners 127 and 128 (registration numbers 128 and 129) straddle two 128-owner state words.
        _registerOwners(1, 130);
        _submit(queryId, _ownerAddress(127));
        _submit(queryId, _ownerAddress(128));

        vm.assertEq(uint256(market.submissionState(queryId, _ownerAddress(126))), 0, "neighbour below");
        vm.assertEq(uint256(market.submissionState(queryId, _ownerAddress(127))), 1, "first");
        vm.assertEq(uint256(market.submissionState(queryId, _ownerAddress(128))), 1, "second");
        vm.assertEq(uint256(market.submissionState(queryId, _ownerAddress(129))), 0, "neighbour above");
    }

    function test_submitShares_lastSlotClosesSubmissions() public {
        IDataMarket.QueryParams memory params = _params();
        params.maxOwners = 2;
        uint256 queryId = _openQuery(params);
        _registerOwners(1, 2);
        _submit(queryId, _ownerAddress(1));
        vm.warp(block.timestamp + 5);
        bytes[] memory ciphertexts = _ciphertextsFor(queryId, _ownerAddress(2));

        vm.expectEmit(address(market));
        emit IDataMarket.SharesSubmitted(queryId, _ownerAddress(2), ciphertexts);
        vm.expectEmit(address(market));
        emit IDataMarket.SubmissionsFilled(queryId, block.timestamp);
        vm.prank(_ownerAddress(2));
        market.submitShares(queryId, ciphertexts);

        vm.assertEq(market.queryInfo(queryId).closedAt, block.timestamp, "closedAt");
        vm.assertEq(market.complaintWindowEnd(queryId), block.timestamp + COMPLAINT_PERIOD, "window end");
    }

    function test_submitShares_acceptsAtDeadline() public {
        uint256 queryId = _openQuery();
        _registerOwner(_ownerAddress(1));
        vm.warp(_params().submitDeadline);

        _submit(queryId, _ownerAddress(1));

        vm.assertEq(market.queryInfo(queryId).submittedCount, 1, "submittedCount");
    }

    function test_submitShares_acceptsExactQueryWhenAllowed() public {
        IDataMarket.QueryParams memory params = _params();
        params.epsilon = 0;
        uint256 queryId = _openQuery(params);
        IDataMarket.OwnerPolicy memory policy = _policy();
        policy.allowExact = true;
        policy.epsilonBudget = 0;
        _registerOwner(_ownerAddress(1), policy);

        _submit(queryId, _ownerAddress(1));

        vm.assertEq(market.ownerInfo(_ownerAddress(1)).epsilonUsed, 0, "no epsilon reserved");
    }

    function test_submitShares_revertsForUnknownQuery() public {
        _registerOwner(_ownerAddress(1));
        bytes[] memory ciphertexts = _ciphertexts(3, 1, _ownerAddress(1));

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.QueryNotFound.selector, 5));
        vm.prank(_ownerAddress(1));
        market.submitShares(5, ciphertexts);
    }

    function test_submitShares_revertsBeforeAllAccepted() public {
        uint256 queryId = _propose(_params());
        _registerOwner(_ownerAddress(1));

        _expectSubmitRevert(
            queryId,
            _ownerAddress(1),
            abi.encodeWithSelector(
                IDataMarket.WrongQueryStatus.selector,
                queryId,
                IDataMarket.QueryStatus.Proposed,
                IDataMarket.QueryStatus.Open
            )
        );
    }

    function test_submitShares_revertsAfterDeadline() public {
        uint256 queryId = _openQuery();
        _registerOwner(_ownerAddress(1));
        uint256 deadline = _params().submitDeadline;
        vm.warp(deadline + 1);

        _expectSubmitRevert(
            queryId,
            _ownerAddress(1),
            abi.encodeWithSelector(IDataMarket.DeadlinePassed.selector, queryId, deadline, deadline + 1)
        );
    }

    function test_submitShares_revertsForUnregisteredOwner() public {
        uint256 queryId = _openQuery();

        _expectSubmitRevert(
            queryId, stranger, abi.encodeWithSelector(IDataMarket.OwnerNotRegistered.selector, stranger)
        );
    }

    function test_submitShares_revertsForExitingOwner() public {
        uint256 queryId = _openQuery();
        address owner = _ownerAddress(1);
        _registerOwner(owner);
        vm.prank(owner);
        market.beginOwnerExit();

        _expectSubmitRevert(
            queryId, owner, abi.encodeWithSelector(IDataMarket.OwnerExiting.selector, owner, block.timestamp)
        );
    }

    function test_submitShares_revertsWhenPolicyExpired() public {
        uint256 queryId = _openQuery();
        address owner = _ownerAddress(1);
        IDataMarket.OwnerPolicy memory policy = _policy();
        policy.expiresAt = uint40(block.timestamp + 10);
        _registerOwner(owner, policy);
        vm.warp(block.timestamp + 11);

        _expectSubmitRevert(
            queryId,
            owner,
            abi.encodeWithSelector(IDataMarket.PolicyExpired.selector, owner, policy.expiresAt, block.timestamp)
        );
    }

    function test_submitShares_revertsWhenTemplateNotAllowed() public {
        uint256 queryId = _openQuery();
        address owner = _ownerAddress(1);
        IDataMarket.OwnerPolicy memory policy = _policy();
        policy.templateMask = ~uint32(1 << 1);
        _registerOwner(owner, policy);

        _expectSubmitRevert(
            queryId,
            owner,
            abi.encodeWithSelector(IDataMarket.TemplateNotAllowed.selector, owner, 1, policy.templateMask)
        );
    }

    function test_submitShares_revertsWhenExactQueryNotAllowed() public {
        IDataMarket.QueryParams memory params = _params();
        params.epsilon = 0;
        uint256 queryId = _openQuery(params);
        address owner = _ownerAddress(1);
        _registerOwner(owner);

        _expectSubmitRevert(queryId, owner, abi.encodeWithSelector(IDataMarket.ExactQueryNotAllowed.selector, owner));
    }

    function test_submitShares_revertsWhenPriceBelowMinimum() public {
        uint256 queryId = _openQuery();
        address owner = _ownerAddress(1);
        IDataMarket.OwnerPolicy memory policy = _policy();
        policy.minPricePerQuery = PRICE + 1;
        _registerOwner(owner, policy);

        _expectSubmitRevert(
            queryId,
            owner,
            abi.encodeWithSelector(IDataMarket.PriceBelowMinimum.selector, owner, PRICE, PRICE + 1)
        );
    }

    function test_submitShares_revertsWhenBudgetExceeded() public {
        uint256 first = _openQuery();
        uint256 second = _openQuery();
        address owner = _ownerAddress(1);
        IDataMarket.OwnerPolicy memory policy = _policy();
        policy.epsilonBudget = 2 * EPSILON - 1;
        _registerOwner(owner, policy);
        _submit(first, owner);

        _expectSubmitRevert(
            second,
            owner,
            abi.encodeWithSelector(IDataMarket.BudgetExceeded.selector, owner, EPSILON, EPSILON, 2 * EPSILON - 1)
        );
    }

    function test_submitShares_revertsWhenAlreadySubmitted() public {
        uint256 queryId = _openQuery();
        address owner = _ownerAddress(1);
        _registerOwner(owner);
        _submit(queryId, owner);

        _expectSubmitRevert(queryId, owner, abi.encodeWithSelector(IDataMarket.AlreadySubmitted.selector, queryId, owner));
    }

    function test_submitShares_revertsWhenQueryFull() public {
        IDataMarket.QueryParams memory params = _params();
        params.maxOwners = 2;
        uint256 queryId = _openQuery(params);
        _registerOwners(1, 3);
        _submitOwners(queryId, 1, 2);

        _expectSubmitRevert(
            queryId, _ownerAddress(3), abi.encodeWithSelector(IDataMarket.QueryFull.selector, queryId, 2)
        );
    }

    function test_submitShares_revertsWithWrongCiphertextCount() public {
        uint256 queryId = _openQuery();
        address owner = _ownerAddress(1);
        _registerOwner(owner);
        bytes[] memory ciphertexts = _ciphertexts(2, 1, owner);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.WrongCiphertextCount.selector, 2, 3));
        vm.prank(owner);
        market.submitShares(queryId, ciphertexts);
    }

    function test_submitShares_revertsWithWrongCiphertextLength() public {
        uint256 queryId = _openQuery();
        address owner = _ownerAddress(1);
        _registerOwner(owner);
        bytes[] memory ciphertexts = _ciphertexts(3, 1, owner);
        ciphertexts[2] = new bytes(57);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.WrongCiphertextLength.selector, 2, 57, 56));
        vm.prank(owner);
        market.submitShares(queryId, ciphertexts);
    }

    function testFuzz_submitShares_checksCiphertextLength(uint8 outputLength, uint16 sentLength) public {
        IDataMarket.QueryParams memory params = _params();
        params.outputLength = uint32(_bound(outputLength, 1, MAX_OUTPUT_LENGTH));
        uint256 queryId = _openQuery(params);
        address owner = _ownerAddress(1);
        _registerOwner(owner);
        uint256 expected = 48 + 8 * uint256(params.outputLength);
        uint256 length = _bound(sentLength, 0, 48 + 8 * MAX_OUTPUT_LENGTH);
        bytes[] memory ciphertexts = _ciphertexts(3, params.outputLength, owner);
        ciphertexts[1] = new bytes(length);

        if (length != expected) {
            vm.expectRevert(abi.encodeWithSelector(IDataMarket.WrongCiphertextLength.selector, 1, length, expected));
        }
        vm.prank(owner);
        market.submitShares(queryId, ciphertexts);

        vm.assertEq(market.queryInfo(queryId).submittedCount, length == expected ? 1 : 0, "submittedCount");
    }

    function testFuzz_submitShares_reservesWithinBudget(uint64 budget, uint64 epsilon, uint8 queries) public {
        IDataMarket.QueryParams memory params = _params();
        params.epsilon = uint64(_bound(epsilon, 1, type(uint64).max));
        address owner = _ownerAddress(1);
        IDataMarket.OwnerPolicy memory policy = _policy();
        policy.epsilonBudget = budget;
        _registerOwner(owner, policy);

        uint256 used;
        for (uint256 i = _bound(queries, 1, 4); i > 0; --i) {
            used = _submitWithinBudget(_openQuery(params), owner, used, params.epsilon, budget);
        }

        vm.assertEq(market.ownerInfo(owner).epsilonUsed, used, "epsilonUsed");
        vm.assertTrue(used <= budget, "within budget");
    }

    /// Submits `owner` to `queryId`, expecting `BudgetExceeded` unless the epsilon fits. Returns the
    /// epsilon used afterwards.
    function _submitWithinBudget(uint256 queryId, address owner, uint256 used, uint64 epsilon, uint64 budget)
        internal
        returns (uint256)
    {
        bool fits = used + epsilon <= budget;
        bytes[] memory ciphertexts = _ciphertextsFor(queryId, owner);
        if (!fits) {
            vm.expectRevert(abi.encodeWithSelector(IDataMarket.BudgetExceeded.selector, owner, used, epsilon, budget));
        }
        vm.prank(owner);
        market.submitShares(queryId, ciphertexts);
        return fits ? used + epsilon : used;
    }

    function testFuzz_submitShares_closesAtSubmitDeadline(uint256 delay) public {
        uint256 queryId = _openQuery();
        _registerOwner(_ownerAddress(1));
        uint256 deadline = _params().submitDeadline;
        uint256 at = _bound(delay, block.timestamp, deadline + 1 days);
        vm.warp(at);
        bytes[] memory ciphertexts = _ciphertextsFor(queryId, _ownerAddress(1));

        if (at > deadline) {
            vm.expectRevert(abi.encodeWithSelector(IDataMarket.DeadlinePassed.selector, queryId, deadline, at));
        }
        vm.prank(_ownerAddress(1));
        market.submitShares(queryId, ciphertexts);

        vm.assertEq(market.queryInfo(queryId).submittedCount, at > deadline ? 0 : 1, "submittedCount");
    }

    // ---------------------------------------------------------------------------------------------
    // complain
    // ---------------------------------------------------------------------------------------------

    function test_complain_excludesOwnerAndReleasesEpsilon() public {
        uint256 queryId = _openQuery();
        address owner = _ownerAddress(1);
        _registerOwner(owner);
        _submit(queryId, owner);
        vm.warp(_params().submitDeadline + 1);

        vm.expectEmit(address(market));
        emit IDataMarket.ComplaintFiled(queryId, aggregators[1], owner);
        vm.expectEmit(address(market));
        emit IDataMarket.BudgetReleased(queryId, owner, EPSILON);
        vm.prank(aggregators[1]);
        market.complain(queryId, owner);

        vm.assertEq(
            uint256(market.submissionState(queryId, owner)),
            uint256(IDataMarket.SubmissionState.Excluded),
            "state"
        );
        vm.assertEq(market.ownerInfo(owner).epsilonUsed, 0, "epsilonUsed");
        vm.assertEq(market.ownerInfo(owner).openSubmissions, 0, "openSubmissions");
        vm.assertEq(market.queryInfo(queryId).excludedCount, 1, "excludedCount");
    }

    function test_complain_allowedRightAfterQueryFills() public {
        IDataMarket.QueryParams memory params = _params();
        params.maxOwners = 2;
        uint256 queryId = _openQuery(params);
        _registerOwners(1, 2);
        _submitOwners(queryId, 1, 2);

        vm.prank(aggregators[0]);
        market.complain(queryId, _ownerAddress(2));

        vm.assertEq(market.queryInfo(queryId).excludedCount, 1, "excludedCount");
    }

    function test_complain_allowedAtWindowEnd() public {
        uint256 queryId = _openQuery();
        _registerOwner(_ownerAddress(1));
        _submit(queryId, _ownerAddress(1));
        vm.warp(_params().submitDeadline + COMPLAINT_PERIOD);

        vm.prank(aggregators[0]);
        market.complain(queryId, _ownerAddress(1));

        vm.assertEq(market.queryInfo(queryId).excludedCount, 1, "excludedCount");
    }

    function test_complain_revertsForUnknownQuery() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.QueryNotFound.selector, 3));
        vm.prank(aggregators[0]);
        market.complain(3, _ownerAddress(1));
    }

    function test_complain_revertsWhenQueryNotOpen() public {
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
        market.complain(queryId, _ownerAddress(1));
    }

    function test_complain_revertsForUnassignedCaller() public {
        uint256 queryId = _openQuery();

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotAssignedAggregator.selector, queryId, stranger));
        vm.prank(stranger);
        market.complain(queryId, _ownerAddress(1));
    }

    function test_complain_revertsWhileSubmissionsOpen() public {
        uint256 queryId = _openQuery();
        _registerOwner(_ownerAddress(1));
        _submit(queryId, _ownerAddress(1));
        vm.warp(_params().submitDeadline - 1);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.SubmissionsStillOpen.selector, queryId));
        vm.prank(aggregators[0]);
        market.complain(queryId, _ownerAddress(1));
    }

    function test_complain_revertsAfterWindow() public {
        uint256 queryId = _openQuery();
        _registerOwner(_ownerAddress(1));
        _submit(queryId, _ownerAddress(1));
        uint256 windowEnd = _params().submitDeadline + COMPLAINT_PERIOD;
        vm.warp(windowEnd + 1);

        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.ComplaintWindowClosed.selector, queryId, windowEnd, windowEnd + 1)
        );
        vm.prank(aggregators[0]);
        market.complain(queryId, _ownerAddress(1));
    }

    function test_complain_revertsForOwnerWhoDidNotSubmit() public {
        uint256 queryId = _openQuery();
        vm.warp(_params().submitDeadline + 1);

        vm.expectRevert(
            abi.encodeWithSelector(
                IDataMarket.NotSubmitted.selector, queryId, stranger, IDataMarket.SubmissionState.None
            )
        );
        vm.prank(aggregators[0]);
        market.complain(queryId, stranger);
    }

    function test_complain_revertsForExcludedOwner() public {
        uint256 queryId = _openQuery();
        address owner = _ownerAddress(1);
        _registerOwner(owner);
        _submit(queryId, owner);
        vm.warp(_params().submitDeadline + 1);
        vm.prank(aggregators[0]);
        market.complain(queryId, owner);

        vm.expectRevert(
            abi.encodeWithSelector(
                IDataMarket.NotSubmitted.selector, queryId, owner, IDataMarket.SubmissionState.Excluded
            )
        );
        vm.prank(aggregators[1]);
        market.complain(queryId, owner);
    }

    // ---------------------------------------------------------------------------------------------
    // cancel
    // ---------------------------------------------------------------------------------------------

    function test_cancel_notAcceptedAfterAcceptDeadline() public {
        uint256 queryId = _propose(_params());
        vm.prank(aggregators[0]);
        market.acceptQuery(queryId);
        vm.warp(_params().acceptDeadline + 1);

        vm.expectEmit(address(market));
        emit IDataMarket.QueryCancelled(queryId, IDataMarket.CancelReason.NotAccepted);
        vm.prank(stranger);
        market.cancel(queryId);

        vm.assertEq(uint256(market.queryInfo(queryId).status), uint256(IDataMarket.QueryStatus.Cancelled), "status");
        vm.assertEq(market.aggregatorInfo(aggregators[0]).openQueries, 0, "accepted aggregator released");
        vm.assertEq(market.aggregatorInfo(aggregators[1]).openQueries, 0, "other aggregator untouched");
    }

    function test_cancel_tooFewOwnersAfterSubmitDeadline() public {
        uint256 queryId = _openQuery();
        _registerOwner(_ownerAddress(1));
        _submit(queryId, _ownerAddress(1));
        vm.warp(_params().submitDeadline + 1);

        vm.expectEmit(address(market));
        emit IDataMarket.QueryCancelled(queryId, IDataMarket.CancelReason.TooFewOwners);
        vm.prank(stranger);
        market.cancel(queryId);

        vm.assertEq(uint256(market.queryInfo(queryId).status), uint256(IDataMarket.QueryStatus.Cancelled), "status");
        for (uint256 k; k < aggregators.length; ++k) {
            vm.assertEq(market.aggregatorInfo(aggregators[k]).openQueries, 0, "aggregator released");
        }
    }

    function test_cancel_tooFewOwnersAfterComplaintsOnFullQuery() public {
        IDataMarket.QueryParams memory params = _params();
        params.maxOwners = 2;
        uint256 queryId = _openQuery(params);
        _registerOwners(1, 2);
        _submitOwners(queryId, 1, 2);
        vm.prank(aggregators[0]);
        market.complain(queryId, _ownerAddress(1));

        vm.prank(stranger);
        market.cancel(queryId);

        vm.assertEq(uint256(market.queryInfo(queryId).status), uint256(IDataMarket.QueryStatus.Cancelled), "status");
    }

    function test_cancel_revertsForUnknownQuery() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.QueryNotFound.selector, 4));
        market.cancel(4);
    }

    function test_cancel_revertsBeforeAcceptDeadline() public {
        uint256 queryId = _propose(_params());
        uint256 deadline = _params().acceptDeadline;
        vm.warp(deadline);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotYetDue.selector, queryId, deadline, deadline));
        market.cancel(queryId);
    }

    function test_cancel_revertsAtSubmitDeadline() public {
        uint256 queryId = _openQuery();
        vm.warp(_params().submitDeadline);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.SubmissionsStillOpen.selector, queryId));
        market.cancel(queryId);
    }

    function test_cancel_revertsWithEnoughOwners() public {
        uint256 queryId = _openQuery();
        _registerOwners(1, 2);
        _submitOwners(queryId, 1, 2);
        vm.warp(_params().submitDeadline + 1);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.EnoughOwners.selector, queryId, 2, 2));
        market.cancel(queryId);
    }

    function test_cancel_revertsWhenAlreadyCancelled() public {
        uint256 queryId = _propose(_params());
        vm.warp(_params().acceptDeadline + 1);
        market.cancel(queryId);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NothingToCancel.selector, queryId));
        market.cancel(queryId);
    }

    function test_cancel_revertsWhenPublished() public {
        uint256 queryId = _publishedQuery(1, 2);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NothingToCancel.selector, queryId));
        market.cancel(queryId);
    }

    function testFuzz_cancel_dueOnlyAfterAcceptDeadline(uint256 at) public {
        uint256 queryId = _propose(_params());
        uint256 deadline = _params().acceptDeadline;
        at = _bound(at, block.timestamp, deadline + 1 days);
        vm.warp(at);

        if (at <= deadline) {
            vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotYetDue.selector, queryId, deadline, at));
        }
        market.cancel(queryId);

        IDataMarket.QueryStatus expected = at <= deadline ? IDataMarket.QueryStatus.Proposed : IDataMarket.QueryStatus.Cancelled;
        vm.assertEq(uint256(market.queryInfo(queryId).status), uint256(expected), "status");
    }

    // ---------------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------------

    function _expectProposeRevert(IDataMarket.QueryParams memory params, bytes memory revertData) internal {
        uint256 escrow = _escrow(params);
        vm.expectRevert(revertData);
        vm.prank(analyst);
        market.proposeQuery{value: escrow}(params, SPEC_JSON);
    }

    function _expectSubmitRevert(uint256 queryId, address owner, bytes memory revertData) internal {
        bytes[] memory ciphertexts = _ciphertexts(3, 1, owner);
        vm.expectRevert(revertData);
        vm.prank(owner);
        market.submitShares(queryId, ciphertexts);
    }

    function _invalidDeadlines(IDataMarket.QueryParams memory params) internal view returns (bytes memory) {
        return abi.encodeWithSelector(
            IDataMarket.InvalidDeadlines.selector,
            params.acceptDeadline,
            params.submitDeadline,
            params.commitDeadline,
            params.revealDeadline,
            block.timestamp
        );
    }

    function _registerAggregatorAt(address aggregator) internal {
        vm.deal(aggregator, MIN_AGGREGATOR_STAKE);
        vm.prank(aggregator);
        market.registerAggregator{value: MIN_AGGREGATOR_STAKE}(_encryptionKey(aggregator));
    }

    /// Registers `aggregator` (unless it is) with the minimum stake and slashes it in a query where
    /// it fails to commit, leaving its stake below the minimum.
    function _slashBelowMinimum(address aggregator) internal {
        if (!market.aggregatorInfo(aggregator).registered) _registerAggregatorAt(aggregator);
        IDataMarket.QueryParams memory params = _params();
        params.aggregators = new address[](2);
        params.aggregators[0] = aggregators[0];
        params.aggregators[1] = aggregator;
        params.acceptDeadline = uint40(block.timestamp + 1);
        params.submitDeadline = params.acceptDeadline;
        params.commitDeadline = params.submitDeadline + COMPLAINT_PERIOD + 1;
        params.revealDeadline = params.commitDeadline + 1;
        params.minOwners = 1;
        uint256 queryId = _openQuery(params);
        address owner = _ownerAddress(999);
        _registerOwner(owner);
        _submit(queryId, owner);
        vm.warp(params.commitDeadline + 1);
        market.fail(queryId);
    }
}
