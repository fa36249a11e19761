// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IDataMarket} from "../interfaces/IDataMarket.sol";
import {MarketStorage} from "./MarketStorage.sol";
import {ReentrancyGuard} from "../utils/ReentrancyGuard.sol";

/// @title Data owners: registration, consent policy, stake and exit
/// @notice An address registers once. After it withdraws its stake it stays registered, exiting and
/// without stake, so it can neither submit nor register again.
abstract contract OwnerRegistry is MarketStorage, ReentrancyGuard {
    /// @inheritdoc IDataMarket
    function registerOwner(OwnerPolicy calldata policy, bytes32 datasetCommitment) external payable {
        if (_owners[msg.sender].index != 0) revert OwnerAlreadyRegistered(msg.sender);
        if (msg.value < minOwnerStake) revert StakeTooLow(msg.value, minOwnerStake);
        if (msg.value > MAX_OWNER_STAKE) revert StakeTooLarge(msg.value, MAX_OWNER_STAKE);
        _checkPolicy(policy);

        uint32 index = ++_ownerCount;
        _owners[msg.sender] = OwnerRecord({
            stake: uint88(msg.value),
            epsilonUsed: 0,
            openSubmissions: 0,
            exitRequestedAt: 0,
            index: index
        });
        _policies[msg.sender] = policy;
        _datasetCommitments[msg.sender] = datasetCommitment;
        emit OwnerRegistered(msg.sender, msg.value, policy, datasetCommitment);
    }

    /// @inheritdoc IDataMarket
    function updateOwnerPolicy(OwnerPolicy calldata policy) external {
        if (_owners[msg.sender].index == 0) revert OwnerNotRegistered(msg.sender);
        _checkPolicy(policy);

        _policies[msg.sender] = policy;
        emit OwnerPolicyUpdated(msg.sender, policy);
    }

    /// @inheritdoc IDataMarket
    function topUpOwnerStake() external payable {
        OwnerRecord storage owner = _owners[msg.sender];
        if (owner.index == 0) revert OwnerNotRegistered(msg.sender);
        if (owner.exitRequestedAt != 0) revert OwnerExiting(msg.sender, owner.exitRequestedAt);
        if (msg.value == 0) revert ZeroAmount();
        uint256 stake = uint256(owner.stake) + msg.value;
        if (stake > MAX_OWNER_STAKE) revert StakeTooLarge(stake, MAX_OWNER_STAKE);

        // The check above keeps the stake within 88 bits.
        // forge-lint: disable-next-line(unsafe-typecast)
        owner.stake = uint88(stake);
        emit OwnerStakeIncreased(msg.sender, msg.value, stake);
    }

    /// @inheritdoc IDataMarket
    function beginOwnerExit() external {
        OwnerRecord storage owner = _owners[msg.sender];
        if (owner.index == 0) revert OwnerNotRegistered(msg.sender);
        if (owner.exitRequestedAt != 0) revert OwnerExiting(msg.sender, owner.exitRequestedAt);

        owner.exitRequestedAt = uint40(block.timestamp);
        emit OwnerExitBegun(msg.sender, block.timestamp + unbondingPeriod);
    }

    /// @inheritdoc IDataMarket
    function withdrawOwnerStake() external nonReentrant {
        OwnerRecord storage owner = _owners[msg.sender];
        if (owner.index == 0) revert OwnerNotRegistered(msg.sender);
        uint256 exitRequestedAt = owner.exitRequestedAt;
        if (exitRequestedAt == 0) revert OwnerNotExiting(msg.sender);
        uint256 withdrawableAt = exitRequestedAt + unbondingPeriod;
        if (block.timestamp < withdrawableAt) revert UnbondingNotOver(withdrawableAt, block.timestamp);
        if (owner.openSubmissions != 0) revert OwnerHasOpenSubmissions(msg.sender, owner.openSubmissions);
        uint256 amount = owner.stake;
        if (amount == 0) revert ZeroAmount();

        owner.stake = 0;
        emit OwnerStakeWithdrawn(msg.sender, amount);
        _sendValue(msg.sender, amount);
    }

    /// @inheritdoc IDataMarket
    function ownerInfo(address owner) external view returns (OwnerInfo memory info) {
        OwnerRecord storage record = _owners[owner];
        info.stake = record.stake;
        info.policy = _policies[owner];
        info.epsilonUsed = record.epsilonUsed;
        info.openSubmissions = record.openSubmissions;
        info.exitRequestedAt = record.exitRequestedAt;
        info.registered = record.index != 0;
        info.datasetCommitment = _datasetCommitments[owner];
    }

    /// Rejects a policy that has already expired.
    function _checkPolicy(OwnerPolicy calldata policy) private view {
        if (policy.expiresAt <= block.timestamp) revert InvalidPolicyExpiry(policy.expiresAt, block.timestamp);
    }
}
