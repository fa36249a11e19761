// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IDataMarket} from "../interfaces/IDataMarket.sol";
import {MarketTestBase} from "./utils/MarketTestBase.sol";
import {vm} from "./utils/Vm.sol";

/// @notice A payee that, on receiving ether, calls the market once with `reentryCall` and keeps the
/// revert data, so the outer payout still succeeds and the test can read why the inner call failed.
contract ReentrantPayee {
    address internal immutable market;
    bytes internal reentryCall;
    bool public reentered;
    bytes public reentryError;

    constructor(address market_) {
        market = market_;
    }

    function setReentryCall(bytes calldata data) external {
        reentryCall = data;
    }

    receive() external payable {
        if (reentered || reentryCall.length == 0) return;
        reentered = true;
        (bool success, bytes memory returned) = market.call(reentryCall);
        if (!success) reentryError = returned;
    }
}

contract ReentrancyGuardTest is MarketTestBase {
    ReentrantPayee internal payee;

    function setUp() public override {
        super.setUp();
        payee = new ReentrantPayee(address(market));
    }

    /// Without the guard the inner call would fail with `ZeroAmount`, because the stake is zeroed
    /// before the transfer; with it, the inner call never starts.
    function test_withdrawOwnerStake_blocksReentry() public {
        _registerOwner(address(payee));
        vm.prank(address(payee));
        market.beginOwnerExit();
        vm.warp(block.timestamp + UNBONDING_PERIOD);
        payee.setReentryCall(abi.encodeCall(IDataMarket.withdrawOwnerStake, ()));

        vm.prank(address(payee));
        market.withdrawOwnerStake();

        vm.assertTrue(payee.reentered(), "receive ran");
        vm.assertEq(payee.reentryError(), abi.encodeWithSelector(IDataMarket.Reentrancy.selector), "inner error");
        vm.assertEq(address(payee).balance, MIN_OWNER_STAKE, "stake paid once");
    }

    function test_claim_blocksReentryIntoClaimMany() public {
        uint256 queryId = _openQuery();
        _registerOwner(_ownerAddress(1));
        _registerOwner(address(payee));
        _submit(queryId, _ownerAddress(1));
        _submit(queryId, address(payee));
        _warpToCommitWindow(queryId);
        _commitAll(queryId);
        _revealAll(queryId);
        uint256[] memory ids = new uint256[](1);
        ids[0] = queryId;
        payee.setReentryCall(abi.encodeCall(IDataMarket.claimMany, (ids)));

        vm.prank(address(payee));
        market.claim(queryId);

        vm.assertEq(payee.reentryError(), abi.encodeWithSelector(IDataMarket.Reentrancy.selector), "inner error");
        vm.assertEq(address(payee).balance, PRICE, "price paid once");
    }

    function test_refund_blocksReentry() public {
        IDataMarket.QueryParams memory params = _params();
        uint256 escrow = _escrow(params);
        vm.deal(address(payee), escrow);
        vm.prank(address(payee));
        uint256 queryId = market.proposeQuery{value: escrow}(params, SPEC_JSON);
        vm.warp(params.acceptDeadline + 1);
        market.cancel(queryId);
        payee.setReentryCall(abi.encodeCall(IDataMarket.refund, (queryId)));

        vm.prank(address(payee));
        market.refund(queryId);

        vm.assertEq(payee.reentryError(), abi.encodeWithSelector(IDataMarket.Reentrancy.selector), "inner error");
        vm.assertEq(address(payee).balance, escrow, "escrow refunded once");
    }

    function test_claimFee_blocksReentryIntoWithdrawAggregatorStake() public {
        vm.deal(address(payee), AGGREGATOR_STAKE);
        vm.prank(address(payee));
        market.registerAggregator{value: AGGREGATOR_STAKE}(_encryptionKey(address(payee)));
        aggregators[2] = address(payee);
        uint256 queryId = _publishedQuery(1, 2);
        payee.setReentryCall(abi.encodeCall(IDataMarket.withdrawAggregatorStake, ()));

        vm.prank(address(payee));
        market.claimFee(queryId);

        vm.assertEq(payee.reentryError(), abi.encodeWithSelector(IDataMarket.Reentrancy.selector), "inner error");
        vm.assertEq(address(payee).balance, FEE, "fee paid once");
    }

    /// The lock is released after each call, so two payouts in one transaction both succeed.
    function test_nonReentrant_releasesLockAfterCall() public {
        uint256 queryId = _publishedQuery(1, 2);

        vm.prank(_ownerAddress(1));
        market.claim(queryId);
        vm.prank(_ownerAddress(2));
        market.claim(queryId);

        vm.assertEq(_ownerAddress(1).balance + _ownerAddress(2).balance, 2 * PRICE, "both paid");
    }
}
