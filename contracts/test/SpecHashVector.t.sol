// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IDataMarket} from "../interfaces/IDataMarket.sol";
import {MarketTestBase} from "./utils/MarketTestBase.sol";
import {Vm, vm} from "./utils/Vm.sol";

/// @notice Checks the shared spec-hash vector, which the Python side checks too: the contract's
/// `specHash` of the vector's canonical spec JSON equals the vector's `specHash`.
contract SpecHashVectorTest is MarketTestBase {
    string internal constant VECTOR_PATH = "contracts/test/vectors/spec_hash.json";

    function test_proposeQuery_specHashMatchesVector() public {
        string memory vector = vm.readFile(VECTOR_PATH);
        bytes memory specJson = bytes(vm.parseJsonString(vector, ".specJson"));
        bytes32 expected = vm.parseJsonBytes32(vector, ".specHash");
        vm.assertEq(keccak256(specJson), expected, "vector is self-consistent");
        IDataMarket.QueryParams memory params = _params();
        uint256 escrow = _escrow(params);

        vm.recordLogs();
        vm.prank(analyst);
        uint256 queryId = market.proposeQuery{value: escrow}(params, specJson);

        (bytes32 emittedHash, bytes memory emittedJson) = _proposedEvent(queryId);
        vm.assertEq(emittedHash, expected, "QueryProposed.specHash");
        vm.assertEq(emittedJson, specJson, "QueryProposed.specJson");
        vm.assertEq(market.queryInfo(queryId).specHash, expected, "queryInfo.specHash");
    }

    /// Returns `specHash` and `specJson` of the recorded `QueryProposed` event for `queryId`.
    function _proposedEvent(uint256 queryId) internal returns (bytes32 specHash, bytes memory specJson) {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == IDataMarket.QueryProposed.selector && logs[i].topics[1] == bytes32(queryId)) {
                (specHash,, specJson) = abi.decode(logs[i].data, (bytes32, IDataMarket.QueryParams, bytes));
                return (specHash, specJson);
            }
        }
        revert("QueryProposed not emitted");
    }
}
