// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IDataMarket} from "../interfaces/IDataMarket.sol";
import {MarketStorage} from "./MarketStorage.sol";

/// @title Commit, reveal, publication and failure of a query
/// @notice Each aggregator commits to its aggregate share before any share is revealed, so the last
/// to reveal cannot pick its share after seeing the others. Each reveal adds its share into a
/// running sum modulo 2^64, and the K-th reveal publishes that sum as the result.
abstract contract Aggregation is MarketStorage {
    /// @inheritdoc IDataMarket
    function commitAggregate(uint256 queryId, bytes32 commitment) external {
        Query storage q = _queries[queryId];
        _requireStatus(queryId, q.state.status, QueryStatus.Open);
        Assignment storage assignment = _assignment(queryId);
        uint256 opensAfter = _closeTime(q) + complaintPeriod;
        if (block.timestamp <= opensAfter) revert CommitWindowNotOpen(queryId, opensAfter, block.timestamp);
        uint256 deadline = q.schedule.commitDeadline;
        if (block.timestamp > deadline) revert DeadlinePassed(queryId, deadline, block.timestamp);
        if (assignment.committed) revert AlreadyCommitted(queryId, msg.sender);
        uint256 included = _includedOwners(q);
        if (included < q.schedule.minOwners) revert TooFewOwners(queryId, included, q.schedule.minOwners);

        assignment.committed = true;
        assignment.commitment = commitment;
        q.state.committedCount += 1;
        emit AggregateCommitted(queryId, msg.sender, commitment);
    }

    /// @inheritdoc IDataMarket
    function revealAggregate(uint256 queryId, uint64[] calldata share, bytes32 salt) external {
        Query storage q = _queries[queryId];
        _requireStatus(queryId, q.state.status, QueryStatus.Open);
        Assignment storage assignment = _assignment(queryId);
        if (!assignment.committed) revert NotCommitted(queryId, msg.sender);
        if (assignment.revealed) revert AlreadyRevealed(queryId, msg.sender);
        uint256 aggregatorCount = q.state.aggregatorCount;
        if (q.state.committedCount < aggregatorCount) {
            revert NotAllCommitted(queryId, q.state.committedCount, aggregatorCount);
        }
        uint256 deadline = q.schedule.revealDeadline;
        if (block.timestamp > deadline) revert DeadlinePassed(queryId, deadline, block.timestamp);
        if (share.length != q.state.outputLength) revert WrongShareLength(share.length, q.state.outputLength);
        bytes32 actual = keccak256(abi.encode(queryId, msg.sender, share, salt));
        if (actual != assignment.commitment) {
            revert CommitmentMismatch(queryId, msg.sender, assignment.commitment, actual);
        }

        assignment.revealed = true;
        uint8 revealed = q.state.revealedCount + 1;
        q.state.revealedCount = revealed;
        if (revealed == 1) {
            q.aggregateSum = share;
        } else {
            _addShare(q.aggregateSum, share);
        }
        emit AggregateRevealed(queryId, msg.sender, share);

        if (revealed == aggregatorCount) {
            q.state.status = QueryStatus.Published;
            _releaseAggregators(queryId, q);
            emit ResultPublished(queryId, q.aggregateSum, _includedOwners(q));
        }
    }

    /// @inheritdoc IDataMarket
    function fail(uint256 queryId) external {
        Query storage q = _queries[queryId];
        QueryStatus status = q.state.status;
        if (status == QueryStatus.None) revert QueryNotFound(queryId);
        if (status != QueryStatus.Open) revert NothingToFail(queryId);
        // With too few owners no aggregator could commit, so the query is cancelled, not failed.
        uint256 included = _includedOwners(q);
        if (included < q.schedule.minOwners) revert TooFewOwners(queryId, included, q.schedule.minOwners);
        bool commitMissed = q.state.committedCount < q.state.aggregatorCount;
        uint256 deadline = commitMissed ? q.schedule.commitDeadline : q.schedule.revealDeadline;
        if (block.timestamp <= deadline) revert NotYetDue(queryId, deadline, block.timestamp);

        q.state.status = QueryStatus.Failed;
        uint256 slashedTotal = _slashAndRelease(queryId, q, commitMissed);
        q.slashed = slashedTotal;
        emit QueryFailed(queryId, slashedTotal);
    }

    /// Settles every aggregator of a failed query and slashes `min(stake, slashAmount)` from each one
    /// that did not commit (`commitMissed`) or did not reveal. All K accepted, because the query was
    /// open. The loop runs over K.
    function _slashAndRelease(uint256 queryId, Query storage q, bool commitMissed)
        private
        returns (uint256 slashedTotal)
    {
        mapping(address => Assignment) storage assignments = _assignments[queryId];
        address[] storage aggregators = q.aggregators;
        uint256 count = aggregators.length;
        for (uint256 i; i < count; ++i) {
            address aggregatorAddress = aggregators[i];
            AggregatorRecord storage aggregator = _aggregators[aggregatorAddress];
            aggregator.openQueries -= 1;
            Assignment storage assignment = assignments[aggregatorAddress];
            bool missed = commitMissed ? !assignment.committed : !assignment.revealed;
            if (!missed) continue;

            uint256 stake = aggregator.stake;
            uint256 amount = stake < slashAmount ? stake : slashAmount;
            // amount <= stake, and the total is bounded by the contract's balance.
            unchecked {
                // forge-lint: disable-next-line(unsafe-typecast)
                aggregator.stake = uint128(stake - amount);
                slashedTotal += amount;
            }
            emit AggregatorSlashed(queryId, aggregatorAddress, amount);
        }
    }

    /// Adds `share` into the running sum coordinate-wise. The loop runs over L.
    function _addShare(uint64[] storage sum, uint64[] calldata share) private {
        uint256 length = share.length;
        for (uint256 i; i < length; ++i) {
            // Shares live in the ring Z_2^64, so wrapping on overflow is the intended addition.
            unchecked {
                sum[i] += share[i];
            }
        }
    }
}
