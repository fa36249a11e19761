// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IDataMarket} from "../interfaces/IDataMarket.sol";
import {MarketStorage} from "./MarketStorage.sol";
import {ReentrancyGuard} from "../utils/ReentrancyGuard.sol";

/// @title Aggregators: registration, encryption key, stake and exit
/// @notice An address registers once. After it withdraws its stake it stays registered, exiting and
/// without stake, so no query can assign it again.
abstract contract AggregatorRegistry is MarketStorage, ReentrancyGuard {
    /// @inheritdoc IDataMarket
    function registerAggregator(bytes32 encryptionKey) external payable {
        if (_aggregators[msg.sender].registered) revert AggregatorAlreadyRegistered(msg.sender);
        if (msg.value < minAggregatorStake) revert StakeTooLow(msg.value, minAggregatorStake);
        if (msg.value > MAX_AGGREGATOR_STAKE) revert StakeTooLarge(msg.value, MAX_AGGREGATOR_STAKE);
        if (encryptionKey == bytes32(0)) revert InvalidEncryptionKey(encryptionKey);

        _aggregators[msg.sender] =
            AggregatorRecord({stake: uint128(msg.value), openQueries: 0, exitRequestedAt: 0, registered: true});
        _encryptionKeys[msg.sender] = encryptionKey;
        emit AggregatorRegistered(msg.sender, msg.value, encryptionKey);
    }

    /// @inheritdoc IDataMarket
    function rotateAggregatorKey(bytes32 encryptionKey) external {
        AggregatorRecord storage aggregator = _aggregators[msg.sender];
        if (!aggregator.registered) revert AggregatorNotRegistered(msg.sender);
        if (encryptionKey == bytes32(0)) revert InvalidEncryptionKey(encryptionKey);
        // Owners of an open query already encrypted to the current key.
        if (aggregator.openQueries != 0) revert AggregatorHasOpenQueries(msg.sender, aggregator.openQueries);

        _encryptionKeys[msg.sender] = encryptionKey;
        emit AggregatorKeyRotated(msg.sender, encryptionKey);
    }

    /// @inheritdoc IDataMarket
    function topUpAggregatorStake() external payable {
        AggregatorRecord storage aggregator = _aggregators[msg.sender];
        if (!aggregator.registered) revert AggregatorNotRegistered(msg.sender);
        if (aggregator.exitRequestedAt != 0) revert AggregatorExiting(msg.sender, aggregator.exitRequestedAt);
        if (msg.value == 0) revert ZeroAmount();
        uint256 stake = uint256(aggregator.stake) + msg.value;
        if (stake > MAX_AGGREGATOR_STAKE) revert StakeTooLarge(stake, MAX_AGGREGATOR_STAKE);

        // The check above keeps the stake within 128 bits.
        // forge-lint: disable-next-line(unsafe-typecast)
        aggregator.stake = uint128(stake);
        emit AggregatorStakeIncreased(msg.sender, msg.value, stake);
    }

    /// @inheritdoc IDataMarket
    function beginAggregatorExit() external {
        AggregatorRecord storage aggregator = _aggregators[msg.sender];
        if (!aggregator.registered) revert AggregatorNotRegistered(msg.sender);
        if (aggregator.exitRequestedAt != 0) revert AggregatorExiting(msg.sender, aggregator.exitRequestedAt);

        aggregator.exitRequestedAt = uint40(block.timestamp);
        emit AggregatorExitBegun(msg.sender, block.timestamp + unbondingPeriod);
    }

    /// @inheritdoc IDataMarket
    function withdrawAggregatorStake() external nonReentrant {
        AggregatorRecord storage aggregator = _aggregators[msg.sender];
        if (!aggregator.registered) revert AggregatorNotRegistered(msg.sender);
        uint256 exitRequestedAt = aggregator.exitRequestedAt;
        if (exitRequestedAt == 0) revert AggregatorNotExiting(msg.sender);
        uint256 withdrawableAt = exitRequestedAt + unbondingPeriod;
        if (block.timestamp < withdrawableAt) revert UnbondingNotOver(withdrawableAt, block.timestamp);
        if (aggregator.openQueries != 0) revert AggregatorHasOpenQueries(msg.sender, aggregator.openQueries);
        uint256 amount = aggregator.stake;
        if (amount == 0) revert ZeroAmount();

        aggregator.stake = 0;
        emit AggregatorStakeWithdrawn(msg.sender, amount);
        _sendValue(msg.sender, amount);
    }

    /// @inheritdoc IDataMarket
    function aggregatorInfo(address aggregator) external view returns (AggregatorInfo memory info) {
        AggregatorRecord storage record = _aggregators[aggregator];
        info.stake = record.stake;
        info.encryptionKey = _encryptionKeys[aggregator];
        info.openQueries = record.openQueries;
        info.exitRequestedAt = record.exitRequestedAt;
        info.registered = record.registered;
    }
}
