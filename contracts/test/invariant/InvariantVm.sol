// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The Foundry cheatcodes the invariant suite uses, with their Foundry 1.x signatures.
/// Forge serves them at `CHEATCODE_ADDRESS`.
interface InvariantVm {
    function warp(uint256 newTimestamp) external;
    function prank(address msgSender) external;
    function deal(address account, uint256 newBalance) external;
    function label(address account, string calldata newLabel) external;

    /// Each assertion cheatcode reverts with `error` and both values when the check fails.
    function assertEq(uint256 left, uint256 right, string calldata error) external pure;
    function assertEq(uint256[] calldata left, uint256[] calldata right, string calldata error) external pure;
    function assertEq(string calldata left, string calldata right, string calldata error) external pure;
    function assertLe(uint256 left, uint256 right, string calldata error) external pure;
    function assertGe(uint256 left, uint256 right, string calldata error) external pure;
}

/// @dev `address(uint160(uint256(keccak256("hevm cheat code"))))`.
address constant CHEATCODE_ADDRESS = 0x7109709ECfa91a80626fF3989D68f67F5b1DD12D;
