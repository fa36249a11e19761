// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {DataMarket} from "../DataMarket.sol";
import {IDataMarket} from "../interfaces/IDataMarket.sol";
import {MarketTestBase} from "./utils/MarketTestBase.sol";
import {vm} from "./utils/Vm.sol";

contract DataMarketTest is MarketTestBase {
    /// EIP-170 limit on deployed code; forge tests do not enforce it, chains do.
    uint256 internal constant MAX_CODE_SIZE = 24_576;

    function test_constructor_storesParameters() public view {
        vm.assertEq(market.minOwnerStake(), MIN_OWNER_STAKE, "minOwnerStake");
        vm.assertEq(market.minAggregatorStake(), MIN_AGGREGATOR_STAKE, "minAggregatorStake");
        vm.assertEq(market.unbondingPeriod(), UNBONDING_PERIOD, "unbondingPeriod");
        vm.assertEq(market.complaintPeriod(), COMPLAINT_PERIOD, "complaintPeriod");
        vm.assertEq(market.slashAmount(), SLASH_AMOUNT, "slashAmount");
        vm.assertEq(market.maxAggregators(), MAX_AGGREGATORS, "maxAggregators");
        vm.assertEq(market.maxOutputLength(), MAX_OUTPUT_LENGTH, "maxOutputLength");
        vm.assertEq(market.queryCount(), 0, "queryCount");
    }

    function test_constructor_codeFitsSizeLimit() public view {
        vm.assertTrue(address(market).code.length <= MAX_CODE_SIZE, "deployed code exceeds 24,576 bytes");
    }

    function test_constructor_acceptsLargestParameters() public {
        DataMarket deployed =
            new DataMarket(0, 0, type(uint40).max, type(uint40).max, type(uint256).max, 255, type(uint32).max);

        vm.assertEq(deployed.maxAggregators(), 255, "maxAggregators");
        vm.assertEq(deployed.maxOutputLength(), type(uint32).max, "maxOutputLength");
    }

    function test_constructor_revertsWithUnbondingPeriodTooLong() public {
        uint256 period = uint256(type(uint40).max) + 1;

        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.InvalidConstructorArgument.selector, 2, period, 0, type(uint40).max)
        );
        new DataMarket(1, 1, period, 1, 1, 3, 1);
    }

    function test_constructor_revertsWithComplaintPeriodTooLong() public {
        uint256 period = uint256(type(uint40).max) + 1;

        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.InvalidConstructorArgument.selector, 3, period, 0, type(uint40).max)
        );
        new DataMarket(1, 1, 1, period, 1, 3, 1);
    }

    function test_constructor_revertsWithMaxAggregatorsBelowTwo() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.InvalidConstructorArgument.selector, 5, 1, 2, 255));
        new DataMarket(1, 1, 1, 1, 1, 1, 1);
    }

    function test_constructor_revertsWithMaxAggregatorsAbove255() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.InvalidConstructorArgument.selector, 5, 256, 2, 255));
        new DataMarket(1, 1, 1, 1, 1, 256, 1);
    }

    function test_constructor_revertsWithZeroMaxOutputLength() public {
        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.InvalidConstructorArgument.selector, 6, 0, 1, type(uint32).max)
        );
        new DataMarket(1, 1, 1, 1, 1, 3, 0);
    }

    function test_constructor_revertsWithMaxOutputLengthTooLarge() public {
        uint256 length = uint256(type(uint32).max) + 1;

        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.InvalidConstructorArgument.selector, 6, length, 1, type(uint32).max)
        );
        new DataMarket(1, 1, 1, 1, 1, 3, length);
    }

    function test_receive_rejectsPlainTransfer() public {
        vm.deal(stranger, 1 ether);

        vm.prank(stranger);
        (bool success,) = address(market).call{value: 1 ether}("");

        vm.assertFalse(success, "plain transfer accepted");
        vm.assertEq(address(market).balance, 3 * AGGREGATOR_STAKE, "market balance");
    }
}
