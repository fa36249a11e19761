// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IDataMarket} from "../interfaces/IDataMarket.sol";
import {MarketTestBase, EtherRejecter} from "./utils/MarketTestBase.sol";
import {vm} from "./utils/Vm.sol";

contract AggregatorRegistryTest is MarketTestBase {
    address internal aggregator = address(0xA66FFF);
    bytes32 internal constant KEY = bytes32(uint256(0x25519));

    // ---------------------------------------------------------------------------------------------
    // registerAggregator
    // ---------------------------------------------------------------------------------------------

    function test_registerAggregator_storesStakeAndKey() public {
        vm.deal(aggregator, 15 ether);

        vm.expectEmit(address(market));
        emit IDataMarket.AggregatorRegistered(aggregator, 15 ether, KEY);
        vm.prank(aggregator);
        market.registerAggregator{value: 15 ether}(KEY);

        IDataMarket.AggregatorInfo memory info = market.aggregatorInfo(aggregator);
        vm.assertEq(info.stake, 15 ether, "stake");
        vm.assertEq(info.encryptionKey, KEY, "encryptionKey");
        vm.assertEq(info.openQueries, 0, "openQueries");
        vm.assertEq(info.exitRequestedAt, 0, "exitRequestedAt");
        vm.assertTrue(info.registered, "registered");
    }

    function test_registerAggregator_revertsWhenAlreadyRegistered() public {
        _register(aggregator);
        vm.deal(aggregator, MIN_AGGREGATOR_STAKE);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.AggregatorAlreadyRegistered.selector, aggregator));
        vm.prank(aggregator);
        market.registerAggregator{value: MIN_AGGREGATOR_STAKE}(KEY);
    }

    function test_registerAggregator_revertsWhenStakeTooLow() public {
        vm.deal(aggregator, MIN_AGGREGATOR_STAKE);

        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.StakeTooLow.selector, MIN_AGGREGATOR_STAKE - 1, MIN_AGGREGATOR_STAKE)
        );
        vm.prank(aggregator);
        market.registerAggregator{value: MIN_AGGREGATOR_STAKE - 1}(KEY);
    }

    function test_registerAggregator_revertsWhenStakeTooLarge() public {
        uint256 stake = uint256(type(uint128).max) + 1;
        vm.deal(aggregator, stake);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.StakeTooLarge.selector, stake, type(uint128).max));
        vm.prank(aggregator);
        market.registerAggregator{value: stake}(KEY);
    }

    function test_registerAggregator_revertsWithZeroKey() public {
        vm.deal(aggregator, MIN_AGGREGATOR_STAKE);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.InvalidEncryptionKey.selector, bytes32(0)));
        vm.prank(aggregator);
        market.registerAggregator{value: MIN_AGGREGATOR_STAKE}(bytes32(0));
    }

    function testFuzz_registerAggregator_checksStakeBounds(uint256 stake) public {
        stake = _bound(stake, 0, uint256(type(uint128).max) + 1);
        vm.deal(aggregator, stake);
        if (stake < MIN_AGGREGATOR_STAKE) {
            vm.expectRevert(abi.encodeWithSelector(IDataMarket.StakeTooLow.selector, stake, MIN_AGGREGATOR_STAKE));
        } else if (stake > type(uint128).max) {
            vm.expectRevert(abi.encodeWithSelector(IDataMarket.StakeTooLarge.selector, stake, type(uint128).max));
        }

        vm.prank(aggregator);
        market.registerAggregator{value: stake}(KEY);

        bool valid = stake >= MIN_AGGREGATOR_STAKE && stake <= type(uint128).max;
        vm.assertEq(market.aggregatorInfo(aggregator).stake, valid ? stake : 0, "stake");
    }

    // ---------------------------------------------------------------------------------------------
    // rotateAggregatorKey
    // ---------------------------------------------------------------------------------------------

    function test_rotateAggregatorKey_replacesKey() public {
        _register(aggregator);
        bytes32 next = bytes32(uint256(0xBEEF));

        vm.expectEmit(address(market));
        emit IDataMarket.AggregatorKeyRotated(aggregator, next);
        vm.prank(aggregator);
        market.rotateAggregatorKey(next);

        vm.assertEq(market.aggregatorInfo(aggregator).encryptionKey, next, "encryptionKey");
    }

    function test_rotateAggregatorKey_allowedAfterQuerySettles() public {
        _publishedQuery(1, 2);

        vm.prank(aggregators[0]);
        market.rotateAggregatorKey(bytes32(uint256(7)));

        vm.assertEq(market.aggregatorInfo(aggregators[0]).encryptionKey, bytes32(uint256(7)), "encryptionKey");
    }

    function test_rotateAggregatorKey_revertsWhenNotRegistered() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.AggregatorNotRegistered.selector, aggregator));
        vm.prank(aggregator);
        market.rotateAggregatorKey(KEY);
    }

    function test_rotateAggregatorKey_revertsWithZeroKey() public {
        _register(aggregator);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.InvalidEncryptionKey.selector, bytes32(0)));
        vm.prank(aggregator);
        market.rotateAggregatorKey(bytes32(0));
    }

    function test_rotateAggregatorKey_revertsWithOpenQuery() public {
        _openQuery();

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.AggregatorHasOpenQueries.selector, aggregators[0], 1));
        vm.prank(aggregators[0]);
        market.rotateAggregatorKey(KEY);
    }

    // ---------------------------------------------------------------------------------------------
    // topUpAggregatorStake
    // ---------------------------------------------------------------------------------------------

    function test_topUpAggregatorStake_addsToStake() public {
        _register(aggregator);
        vm.deal(aggregator, 3 ether);

        vm.expectEmit(address(market));
        emit IDataMarket.AggregatorStakeIncreased(aggregator, 3 ether, MIN_AGGREGATOR_STAKE + 3 ether);
        vm.prank(aggregator);
        market.topUpAggregatorStake{value: 3 ether}();

        vm.assertEq(market.aggregatorInfo(aggregator).stake, MIN_AGGREGATOR_STAKE + 3 ether, "stake");
    }

    function test_topUpAggregatorStake_revertsWhenNotRegistered() public {
        vm.deal(aggregator, 1 ether);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.AggregatorNotRegistered.selector, aggregator));
        vm.prank(aggregator);
        market.topUpAggregatorStake{value: 1 ether}();
    }

    function test_topUpAggregatorStake_revertsWhenExiting() public {
        _register(aggregator);
        vm.prank(aggregator);
        market.beginAggregatorExit();
        vm.deal(aggregator, 1 ether);

        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.AggregatorExiting.selector, aggregator, block.timestamp)
        );
        vm.prank(aggregator);
        market.topUpAggregatorStake{value: 1 ether}();
    }

    function test_topUpAggregatorStake_revertsWhenZero() public {
        _register(aggregator);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.ZeroAmount.selector));
        vm.prank(aggregator);
        market.topUpAggregatorStake();
    }

    function test_topUpAggregatorStake_revertsWhenStakeTooLarge() public {
        _register(aggregator);
        uint256 amount = uint256(type(uint128).max) - MIN_AGGREGATOR_STAKE + 1;
        vm.deal(aggregator, amount);

        vm.expectRevert(
            abi.encodeWithSelector(
                IDataMarket.StakeTooLarge.selector, uint256(type(uint128).max) + 1, type(uint128).max
            )
        );
        vm.prank(aggregator);
        market.topUpAggregatorStake{value: amount}();
    }

    // ---------------------------------------------------------------------------------------------
    // beginAggregatorExit
    // ---------------------------------------------------------------------------------------------

    function test_beginAggregatorExit_recordsExit() public {
        _register(aggregator);

        vm.expectEmit(address(market));
        emit IDataMarket.AggregatorExitBegun(aggregator, block.timestamp + UNBONDING_PERIOD);
        vm.prank(aggregator);
        market.beginAggregatorExit();

        vm.assertEq(market.aggregatorInfo(aggregator).exitRequestedAt, block.timestamp, "exitRequestedAt");
    }

    function test_beginAggregatorExit_revertsWhenNotRegistered() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.AggregatorNotRegistered.selector, aggregator));
        vm.prank(aggregator);
        market.beginAggregatorExit();
    }

    function test_beginAggregatorExit_revertsWhenAlreadyExiting() public {
        _register(aggregator);
        vm.prank(aggregator);
        market.beginAggregatorExit();
        uint256 exitRequestedAt = block.timestamp;
        vm.warp(block.timestamp + 1);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.AggregatorExiting.selector, aggregator, exitRequestedAt));
        vm.prank(aggregator);
        market.beginAggregatorExit();
    }

    // ---------------------------------------------------------------------------------------------
    // withdrawAggregatorStake
    // ---------------------------------------------------------------------------------------------

    function test_withdrawAggregatorStake_sendsWholeStake() public {
        _register(aggregator);
        vm.prank(aggregator);
        market.beginAggregatorExit();
        vm.warp(block.timestamp + UNBONDING_PERIOD);

        vm.expectEmit(address(market));
        emit IDataMarket.AggregatorStakeWithdrawn(aggregator, MIN_AGGREGATOR_STAKE);
        vm.prank(aggregator);
        market.withdrawAggregatorStake();

        vm.assertEq(aggregator.balance, MIN_AGGREGATOR_STAKE, "aggregator balance");
        vm.assertEq(market.aggregatorInfo(aggregator).stake, 0, "stake");
    }

    function test_withdrawAggregatorStake_revertsWhenNotRegistered() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.AggregatorNotRegistered.selector, aggregator));
        vm.prank(aggregator);
        market.withdrawAggregatorStake();
    }

    function test_withdrawAggregatorStake_revertsWhenNotExiting() public {
        _register(aggregator);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.AggregatorNotExiting.selector, aggregator));
        vm.prank(aggregator);
        market.withdrawAggregatorStake();
    }

    function test_withdrawAggregatorStake_revertsBeforeUnbondingEnds() public {
        _register(aggregator);
        vm.prank(aggregator);
        market.beginAggregatorExit();
        uint256 withdrawableAt = block.timestamp + UNBONDING_PERIOD;
        vm.warp(withdrawableAt - 1);

        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.UnbondingNotOver.selector, withdrawableAt, withdrawableAt - 1)
        );
        vm.prank(aggregator);
        market.withdrawAggregatorStake();
    }

    function test_withdrawAggregatorStake_revertsWithOpenQuery() public {
        _openQuery();
        vm.prank(aggregators[1]);
        market.beginAggregatorExit();
        vm.warp(block.timestamp + UNBONDING_PERIOD);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.AggregatorHasOpenQueries.selector, aggregators[1], 1));
        vm.prank(aggregators[1]);
        market.withdrawAggregatorStake();
    }

    function test_withdrawAggregatorStake_revertsWhenAlreadyWithdrawn() public {
        _register(aggregator);
        vm.prank(aggregator);
        market.beginAggregatorExit();
        vm.warp(block.timestamp + UNBONDING_PERIOD);
        vm.prank(aggregator);
        market.withdrawAggregatorStake();

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.ZeroAmount.selector));
        vm.prank(aggregator);
        market.withdrawAggregatorStake();
    }

    function test_withdrawAggregatorStake_revertsWhenTransferFails() public {
        address rejecter = address(new EtherRejecter());
        _register(rejecter);
        vm.prank(rejecter);
        market.beginAggregatorExit();
        vm.warp(block.timestamp + UNBONDING_PERIOD);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.TransferFailed.selector, rejecter, MIN_AGGREGATOR_STAKE));
        vm.prank(rejecter);
        market.withdrawAggregatorStake();
    }

    function test_withdrawAggregatorStake_returnsSlashedRemainder() public {
        uint256 queryId = _openQuery();
        _registerOwners(1, 2);
        _submitOwners(queryId, 1, 2);
        vm.prank(aggregators[0]);
        market.beginAggregatorExit();
        vm.warp(_params().commitDeadline + 1);
        market.fail(queryId);
        vm.warp(START + UNBONDING_PERIOD);
        uint256 before = aggregators[0].balance;

        vm.prank(aggregators[0]);
        market.withdrawAggregatorStake();

        vm.assertEq(aggregators[0].balance - before, AGGREGATOR_STAKE - SLASH_AMOUNT, "stake after slash");
    }

    // ---------------------------------------------------------------------------------------------
    // aggregatorInfo
    // ---------------------------------------------------------------------------------------------

    function test_aggregatorInfo_emptyForUnknownAddress() public view {
        IDataMarket.AggregatorInfo memory info = market.aggregatorInfo(stranger);

        vm.assertFalse(info.registered, "registered");
        vm.assertEq(info.encryptionKey, bytes32(0), "encryptionKey");
    }

    function _register(address account) internal {
        vm.deal(account, MIN_AGGREGATOR_STAKE);
        vm.prank(account);
        market.registerAggregator{value: MIN_AGGREGATOR_STAKE}(KEY);
    }
}
