// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice The Foundry cheatcodes the market's unit tests use, with their Foundry 1.x signatures.
/// Forge serves them at the address below; outside forge every call reverts.
interface Vm {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function warp(uint256 newTimestamp) external;
    function prank(address msgSender) external;
    function startPrank(address msgSender) external;
    function stopPrank() external;
    function deal(address account, uint256 newBalance) external;
    function assume(bool condition) external pure;

    function expectRevert(bytes calldata revertData) external;
    function expectRevert(bytes4 revertData) external;
    /// Checks every topic and the data of the next event `emitter` emits against the one the test
    /// emits next.
    function expectEmit(address emitter) external;
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory logs);

    function readFile(string calldata path) external view returns (string memory data);
    function parseJsonString(string calldata json, string calldata key) external pure returns (string memory);
    function parseJsonBytes32(string calldata json, string calldata key) external pure returns (bytes32);

    /// Each assertion cheatcode reverts with `error` and both values when the check fails.
    function assertEq(uint256 left, uint256 right, string calldata error) external pure;
    function assertEq(address left, address right, string calldata error) external pure;
    function assertEq(bytes32 left, bytes32 right, string calldata error) external pure;
    function assertEq(bool left, bool right, string calldata error) external pure;
    function assertEq(bytes calldata left, bytes calldata right, string calldata error) external pure;
    function assertEq(uint256[] calldata left, uint256[] calldata right, string calldata error) external pure;
    function assertTrue(bool condition, string calldata error) external pure;
    function assertFalse(bool condition, string calldata error) external pure;
}

/// @dev `address(uint160(uint256(keccak256("hevm cheat code"))))`.
Vm constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
