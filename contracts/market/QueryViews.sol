// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IDataMarket} from "../interfaces/IDataMarket.sol";
import {MarketStorage} from "./MarketStorage.sol";

/// @title Read access to queries
/// @notice Every view reverts with `QueryNotFound` for an id that was never proposed.
abstract contract QueryViews is MarketStorage {
    /// @inheritdoc IDataMarket
    function queryInfo(uint256 queryId) external view returns (QueryInfo memory info) {
        Query storage q = _existingQuery(queryId);
        QueryState storage state = q.state;
        QuerySchedule storage schedule = q.schedule;

        info.analyst = q.terms.analyst;
        info.status = state.status;
        info.specHash = q.specHash;
        info.params = _params(q, state, schedule);
        info.acceptedCount = state.acceptedCount;
        info.submittedCount = state.submittedCount;
        info.excludedCount = schedule.excludedCount;
        info.committedCount = state.committedCount;
        info.revealedCount = state.revealedCount;
        info.closedAt = schedule.closedAt;
        info.escrow = q.escrow;
        info.slashed = q.slashed;
        info.analystRefunded = schedule.analystRefunded;
    }

    /// @inheritdoc IDataMarket
    function submissionState(uint256 queryId, address owner) external view returns (SubmissionState) {
        _existingQuery(queryId);
        return _submissionState(queryId, _owners[owner].index);
    }

    /// @inheritdoc IDataMarket
    function aggregatorQueryState(uint256 queryId, address aggregator)
        external
        view
        returns (AggregatorQueryState memory state)
    {
        _existingQuery(queryId);
        Assignment storage assignment = _assignments[queryId][aggregator];
        state.accepted = assignment.accepted;
        state.committed = assignment.committed;
        state.revealed = assignment.revealed;
        state.feeClaimed = assignment.feeClaimed;
        state.commitment = assignment.commitment;
    }

    /// @inheritdoc IDataMarket
    /// @dev Before `maxOwners` is reached the window ends at `submitDeadline + complaintPeriod`,
    /// which this returns from `submitDeadline` on.
    function complaintWindowEnd(uint256 queryId) external view returns (uint256) {
        Query storage q = _existingQuery(queryId);
        uint256 closeTime = _closeTime(q);
        if (block.timestamp < closeTime) return 0;
        return closeTime + complaintPeriod;
    }

    /// @inheritdoc IDataMarket
    function queryResult(uint256 queryId) external view returns (uint64[] memory) {
        Query storage q = _existingQuery(queryId);
        if (q.state.status != QueryStatus.Published) return new uint64[](0);
        return q.aggregateSum;
    }

    /// @inheritdoc IDataMarket
    function ciphertextLength(uint256 queryId) external view returns (uint256) {
        Query storage q = _existingQuery(queryId);
        return CIPHERTEXT_OVERHEAD + BYTES_PER_COORDINATE * q.state.outputLength;
    }

    function _params(Query storage q, QueryState storage state, QuerySchedule storage schedule)
        private
        view
        returns (QueryParams memory params)
    {
        params.templateId = state.templateId;
        params.outputLength = state.outputLength;
        params.epsilon = state.epsilon;
        params.pricePerOwner = q.terms.pricePerOwner;
        params.minOwners = schedule.minOwners;
        params.maxOwners = state.maxOwners;
        params.aggregators = q.aggregators;
        params.feePerAggregator = q.feePerAggregator;
        params.acceptDeadline = schedule.acceptDeadline;
        params.submitDeadline = state.submitDeadline;
        params.commitDeadline = schedule.commitDeadline;
        params.revealDeadline = schedule.revealDeadline;
        params.maxAbsEncoded = q.maxAbsEncoded;
    }
}
