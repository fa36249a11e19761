// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IDataMarket} from "../interfaces/IDataMarket.sol";
import {MarketTestBase, EtherRejecter} from "./utils/MarketTestBase.sol";
import {vm} from "./utils/Vm.sol";

contract OwnerRegistryTest is MarketTestBase {
    address internal owner = address(0x0E0001);

    // ---------------------------------------------------------------------------------------------
    // registerOwner
    // ---------------------------------------------------------------------------------------------

    function test_registerOwner_storesStakePolicyAndCommitment() public {
        IDataMarket.OwnerPolicy memory policy = _policy();
        vm.deal(owner, 3 ether);

        vm.expectEmit(address(market));
        emit IDataMarket.OwnerRegistered(owner, 3 ether, policy, _datasetCommitment(owner));
        vm.prank(owner);
        market.registerOwner{value: 3 ether}(policy, _datasetCommitment(owner));

        IDataMarket.OwnerInfo memory info = market.ownerInfo(owner);
        vm.assertEq(info.stake, 3 ether, "stake");
        vm.assertTrue(info.registered, "registered");
        vm.assertEq(info.policy.minPricePerQuery, policy.minPricePerQuery, "minPricePerQuery");
        vm.assertEq(info.policy.epsilonBudget, policy.epsilonBudget, "epsilonBudget");
        vm.assertEq(info.policy.templateMask, policy.templateMask, "templateMask");
        vm.assertEq(info.policy.allowExact, policy.allowExact, "allowExact");
        vm.assertEq(info.policy.expiresAt, policy.expiresAt, "expiresAt");
        vm.assertEq(info.epsilonUsed, 0, "epsilonUsed");
        vm.assertEq(info.openSubmissions, 0, "openSubmissions");
        vm.assertEq(info.exitRequestedAt, 0, "exitRequestedAt");
        vm.assertEq(info.datasetCommitment, _datasetCommitment(owner), "datasetCommitment");
        vm.assertEq(address(market).balance, 3 * AGGREGATOR_STAKE + 3 ether, "market balance");
    }

    function test_registerOwner_revertsWhenAlreadyRegistered() public {
        _registerOwner(owner);
        vm.deal(owner, MIN_OWNER_STAKE);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.OwnerAlreadyRegistered.selector, owner));
        vm.prank(owner);
        market.registerOwner{value: MIN_OWNER_STAKE}(_policy(), bytes32(0));
    }

    function test_registerOwner_revertsWhenStakeTooLow() public {
        vm.deal(owner, MIN_OWNER_STAKE);

        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.StakeTooLow.selector, MIN_OWNER_STAKE - 1, MIN_OWNER_STAKE)
        );
        vm.prank(owner);
        market.registerOwner{value: MIN_OWNER_STAKE - 1}(_policy(), bytes32(0));
    }

    function test_registerOwner_revertsWhenStakeTooLarge() public {
        uint256 stake = uint256(type(uint88).max) + 1;
        vm.deal(owner, stake);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.StakeTooLarge.selector, stake, type(uint88).max));
        vm.prank(owner);
        market.registerOwner{value: stake}(_policy(), bytes32(0));
    }

    function test_registerOwner_revertsWhenPolicyAlreadyExpired() public {
        IDataMarket.OwnerPolicy memory policy = _policy();
        policy.expiresAt = uint40(block.timestamp);
        vm.deal(owner, MIN_OWNER_STAKE);

        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.InvalidPolicyExpiry.selector, block.timestamp, block.timestamp)
        );
        vm.prank(owner);
        market.registerOwner{value: MIN_OWNER_STAKE}(policy, bytes32(0));
    }

    function testFuzz_registerOwner_acceptsStakeInRange(uint256 stake) public {
        stake = _bound(stake, MIN_OWNER_STAKE, type(uint88).max);
        vm.deal(owner, stake);

        vm.prank(owner);
        market.registerOwner{value: stake}(_policy(), bytes32(0));

        vm.assertEq(market.ownerInfo(owner).stake, stake, "stake");
    }

    // ---------------------------------------------------------------------------------------------
    // updateOwnerPolicy
    // ---------------------------------------------------------------------------------------------

    function test_updateOwnerPolicy_replacesPolicy() public {
        _registerOwner(owner);
        IDataMarket.OwnerPolicy memory policy = IDataMarket.OwnerPolicy({
            minPricePerQuery: 7 ether,
            epsilonBudget: 42,
            templateMask: 1 << 5,
            allowExact: true,
            expiresAt: uint40(block.timestamp + 1)
        });

        vm.expectEmit(address(market));
        emit IDataMarket.OwnerPolicyUpdated(owner, policy);
        vm.prank(owner);
        market.updateOwnerPolicy(policy);

        IDataMarket.OwnerPolicy memory stored = market.ownerInfo(owner).policy;
        vm.assertEq(stored.minPricePerQuery, 7 ether, "minPricePerQuery");
        vm.assertEq(stored.epsilonBudget, 42, "epsilonBudget");
        vm.assertEq(stored.templateMask, 1 << 5, "templateMask");
        vm.assertTrue(stored.allowExact, "allowExact");
        vm.assertEq(stored.expiresAt, block.timestamp + 1, "expiresAt");
    }

    function test_updateOwnerPolicy_revertsWhenNotRegistered() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.OwnerNotRegistered.selector, owner));
        vm.prank(owner);
        market.updateOwnerPolicy(_policy());
    }

    function test_updateOwnerPolicy_revertsWhenPolicyAlreadyExpired() public {
        _registerOwner(owner);
        IDataMarket.OwnerPolicy memory policy = _policy();
        policy.expiresAt = uint40(block.timestamp - 1);

        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.InvalidPolicyExpiry.selector, block.timestamp - 1, block.timestamp)
        );
        vm.prank(owner);
        market.updateOwnerPolicy(policy);
    }

    function test_updateOwnerPolicy_keepsReservedEpsilonWhenBudgetLowered() public {
        uint256 queryId = _openQuery();
        _registerOwner(owner);
        _submit(queryId, owner);
        IDataMarket.OwnerPolicy memory policy = _policy();
        policy.epsilonBudget = 0;

        vm.prank(owner);
        market.updateOwnerPolicy(policy);

        vm.assertEq(market.ownerInfo(owner).epsilonUsed, EPSILON, "epsilonUsed");
        vm.assertEq(
            uint256(market.submissionState(queryId, owner)),
            uint256(IDataMarket.SubmissionState.Submitted),
            "submission kept"
        );
    }

    // ---------------------------------------------------------------------------------------------
    // topUpOwnerStake
    // ---------------------------------------------------------------------------------------------

    function test_topUpOwnerStake_addsToStake() public {
        _registerOwner(owner);
        vm.deal(owner, 2 ether);

        vm.expectEmit(address(market));
        emit IDataMarket.OwnerStakeIncreased(owner, 2 ether, MIN_OWNER_STAKE + 2 ether);
        vm.prank(owner);
        market.topUpOwnerStake{value: 2 ether}();

        vm.assertEq(market.ownerInfo(owner).stake, MIN_OWNER_STAKE + 2 ether, "stake");
    }

    function test_topUpOwnerStake_revertsWhenNotRegistered() public {
        vm.deal(owner, 1 ether);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.OwnerNotRegistered.selector, owner));
        vm.prank(owner);
        market.topUpOwnerStake{value: 1 ether}();
    }

    function test_topUpOwnerStake_revertsWhenExiting() public {
        _registerOwner(owner);
        vm.prank(owner);
        market.beginOwnerExit();
        vm.deal(owner, 1 ether);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.OwnerExiting.selector, owner, block.timestamp));
        vm.prank(owner);
        market.topUpOwnerStake{value: 1 ether}();
    }

    function test_topUpOwnerStake_revertsWhenZero() public {
        _registerOwner(owner);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.ZeroAmount.selector));
        vm.prank(owner);
        market.topUpOwnerStake();
    }

    function test_topUpOwnerStake_revertsWhenStakeTooLarge() public {
        _registerOwner(owner);
        uint256 amount = uint256(type(uint88).max) - MIN_OWNER_STAKE + 1;
        vm.deal(owner, amount);

        vm.expectRevert(
            abi.encodeWithSelector(
                IDataMarket.StakeTooLarge.selector, uint256(type(uint88).max) + 1, type(uint88).max
            )
        );
        vm.prank(owner);
        market.topUpOwnerStake{value: amount}();
    }

    // ---------------------------------------------------------------------------------------------
    // beginOwnerExit
    // ---------------------------------------------------------------------------------------------

    function test_beginOwnerExit_recordsExit() public {
        _registerOwner(owner);

        vm.expectEmit(address(market));
        emit IDataMarket.OwnerExitBegun(owner, block.timestamp + UNBONDING_PERIOD);
        vm.prank(owner);
        market.beginOwnerExit();

        vm.assertEq(market.ownerInfo(owner).exitRequestedAt, block.timestamp, "exitRequestedAt");
    }

    function test_beginOwnerExit_revertsWhenNotRegistered() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.OwnerNotRegistered.selector, owner));
        vm.prank(owner);
        market.beginOwnerExit();
    }

    function test_beginOwnerExit_revertsWhenAlreadyExiting() public {
        _registerOwner(owner);
        vm.prank(owner);
        market.beginOwnerExit();
        uint256 exitRequestedAt = block.timestamp;
        vm.warp(block.timestamp + 10);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.OwnerExiting.selector, owner, exitRequestedAt));
        vm.prank(owner);
        market.beginOwnerExit();
    }

    // ---------------------------------------------------------------------------------------------
    // withdrawOwnerStake
    // ---------------------------------------------------------------------------------------------

    function test_withdrawOwnerStake_sendsWholeStake() public {
        _registerOwner(owner);
        vm.prank(owner);
        market.beginOwnerExit();
        vm.warp(block.timestamp + UNBONDING_PERIOD);

        vm.expectEmit(address(market));
        emit IDataMarket.OwnerStakeWithdrawn(owner, MIN_OWNER_STAKE);
        vm.prank(owner);
        market.withdrawOwnerStake();

        vm.assertEq(owner.balance, MIN_OWNER_STAKE, "owner balance");
        vm.assertEq(market.ownerInfo(owner).stake, 0, "stake");
        vm.assertTrue(market.ownerInfo(owner).registered, "still registered");
    }

    function test_withdrawOwnerStake_revertsWhenNotRegistered() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.OwnerNotRegistered.selector, owner));
        vm.prank(owner);
        market.withdrawOwnerStake();
    }

    function test_withdrawOwnerStake_revertsWhenNotExiting() public {
        _registerOwner(owner);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.OwnerNotExiting.selector, owner));
        vm.prank(owner);
        market.withdrawOwnerStake();
    }

    function test_withdrawOwnerStake_revertsBeforeUnbondingEnds() public {
        _registerOwner(owner);
        vm.prank(owner);
        market.beginOwnerExit();
        uint256 withdrawableAt = block.timestamp + UNBONDING_PERIOD;
        vm.warp(withdrawableAt - 1);

        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.UnbondingNotOver.selector, withdrawableAt, withdrawableAt - 1)
        );
        vm.prank(owner);
        market.withdrawOwnerStake();
    }

    function test_withdrawOwnerStake_revertsWithOpenSubmission() public {
        uint256 queryId = _openQuery();
        _registerOwner(owner);
        _submit(queryId, owner);
        vm.prank(owner);
        market.beginOwnerExit();
        vm.warp(block.timestamp + UNBONDING_PERIOD);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.OwnerHasOpenSubmissions.selector, owner, 1));
        vm.prank(owner);
        market.withdrawOwnerStake();
    }

    function test_withdrawOwnerStake_revertsWhenAlreadyWithdrawn() public {
        _registerOwner(owner);
        vm.prank(owner);
        market.beginOwnerExit();
        vm.warp(block.timestamp + UNBONDING_PERIOD);
        vm.prank(owner);
        market.withdrawOwnerStake();

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.ZeroAmount.selector));
        vm.prank(owner);
        market.withdrawOwnerStake();
    }

    function test_withdrawOwnerStake_revertsWhenTransferFails() public {
        address rejecter = address(new EtherRejecter());
        _registerOwner(rejecter);
        vm.prank(rejecter);
        market.beginOwnerExit();
        vm.warp(block.timestamp + UNBONDING_PERIOD);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.TransferFailed.selector, rejecter, MIN_OWNER_STAKE));
        vm.prank(rejecter);
        market.withdrawOwnerStake();
    }

    function test_withdrawOwnerStake_allowedAfterClaim() public {
        uint256 queryId = _publishedQuery(1, 2);
        address first = _ownerAddress(1);
        vm.prank(first);
        market.beginOwnerExit();
        vm.prank(first);
        market.claim(queryId);
        vm.warp(block.timestamp + UNBONDING_PERIOD);

        vm.prank(first);
        market.withdrawOwnerStake();

        vm.assertEq(first.balance, PRICE + MIN_OWNER_STAKE, "price plus stake");
    }

    function testFuzz_withdrawOwnerStake_unbondingBoundary(uint256 waited) public {
        waited = _bound(waited, 0, 2 * UNBONDING_PERIOD);
        _registerOwner(owner);
        vm.prank(owner);
        market.beginOwnerExit();
        uint256 withdrawableAt = block.timestamp + UNBONDING_PERIOD;
        vm.warp(block.timestamp + waited);

        if (waited < UNBONDING_PERIOD) {
            vm.expectRevert(
                abi.encodeWithSelector(IDataMarket.UnbondingNotOver.selector, withdrawableAt, block.timestamp)
            );
        }
        vm.prank(owner);
        market.withdrawOwnerStake();

        vm.assertEq(owner.balance, waited < UNBONDING_PERIOD ? 0 : MIN_OWNER_STAKE, "owner balance");
    }

    // ---------------------------------------------------------------------------------------------
    // ownerInfo
    // ---------------------------------------------------------------------------------------------

    function test_ownerInfo_emptyForUnknownAddress() public view {
        IDataMarket.OwnerInfo memory info = market.ownerInfo(stranger);

        vm.assertFalse(info.registered, "registered");
        vm.assertEq(info.stake, 0, "stake");
    }
}
