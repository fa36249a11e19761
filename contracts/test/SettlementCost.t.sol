// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IDataMarket} from "../interfaces/IDataMarket.sol";
import {MarketTestBase} from "./utils/MarketTestBase.sol";
import {vm} from "./utils/Vm.sol";

/// @notice Settlement steps cost the same for a query with 1,000 owners as for one with 10, because
/// none of them loops over owners. Each step is measured once per query on storage that no earlier
/// call in the test touched, so both measurements pay the same cold-access costs.
contract SettlementCostTest is MarketTestBase {
    uint32 internal constant LARGE = 1_000;
    uint256 internal constant SMALL = 10;
    /// Allowed difference in gas between the two queries, for values that differ in their zero bytes.
    uint256 internal constant TOLERANCE = 100;

    address internal smallAnalyst = address(0xA11CE1);
    address internal largeAnalyst = address(0xA11CE2);
    uint256 internal smallQuery;
    uint256 internal largeQuery;
    uint256 internal smallCommitQuery;
    uint256 internal largeCommitQuery;

    function setUp() public override {
        super.setUp();
        IDataMarket.QueryParams memory params = _params();
        params.maxOwners = LARGE + 1;
        _registerOwners(1, LARGE);

        analyst = smallAnalyst;
        smallQuery = _openQuery(params);
        smallCommitQuery = _openQuery(params);
        analyst = largeAnalyst;
        largeQuery = _openQuery(params);
        largeCommitQuery = _openQuery(params);

        _submitOwners(smallQuery, 1, SMALL);
        _submitOwners(smallCommitQuery, 1, SMALL);
        _submitOwners(largeQuery, 1, LARGE);
        _submitOwners(largeCommitQuery, 1, LARGE);
        vm.warp(params.submitDeadline + COMPLAINT_PERIOD + 1);
        _commitAll(smallQuery);
        _commitAll(largeQuery);
        _revealAll(smallQuery);
        _revealAll(largeQuery);
    }

    function test_claim_costIndependentOfOwnerCount() public {
        market.queryCount(); // warms the market's account for both measurements

        uint256 smallGas = _measureClaim(smallQuery, _ownerAddress(1));
        uint256 largeGas = _measureClaim(largeQuery, _ownerAddress(LARGE));

        _assertClose(smallGas, largeGas, "claim");
    }

    function test_claimFee_costIndependentOfOwnerCount() public {
        market.queryCount();

        vm.prank(aggregators[0]);
        uint256 start = gasleft();
        market.claimFee(smallQuery);
        uint256 smallGas = start - gasleft();
        vm.prank(aggregators[1]);
        start = gasleft();
        market.claimFee(largeQuery);
        uint256 largeGas = start - gasleft();

        _assertClose(smallGas, largeGas, "claimFee");
    }

    function test_refund_costIndependentOfOwnerCount() public {
        market.queryCount();

        vm.prank(smallAnalyst);
        uint256 start = gasleft();
        market.refund(smallQuery);
        uint256 smallGas = start - gasleft();
        vm.prank(largeAnalyst);
        start = gasleft();
        market.refund(largeQuery);
        uint256 largeGas = start - gasleft();

        _assertClose(smallGas, largeGas, "refund");
    }

    function test_commitAggregate_costIndependentOfOwnerCount() public {
        market.queryCount();
        bytes32 commitment = keccak256("commitment");

        vm.prank(aggregators[0]);
        uint256 start = gasleft();
        market.commitAggregate(smallCommitQuery, commitment);
        uint256 smallGas = start - gasleft();
        vm.prank(aggregators[1]);
        start = gasleft();
        market.commitAggregate(largeCommitQuery, commitment);
        uint256 largeGas = start - gasleft();

        _assertClose(smallGas, largeGas, "commitAggregate");
    }

    function _measureClaim(uint256 queryId, address owner) internal returns (uint256 used) {
        vm.prank(owner);
        uint256 start = gasleft();
        market.claim(queryId);
        used = start - gasleft();
    }

    function _assertClose(uint256 a, uint256 b, string memory step) internal pure {
        uint256 difference = a > b ? a - b : b - a;
        vm.assertTrue(difference <= TOLERANCE, string.concat(step, ": gas differs between 10 and 1,000 owners"));
    }
}
