// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IDataMarket} from "../interfaces/IDataMarket.sol";
import {MarketStorage} from "./MarketStorage.sol";
import {ReentrancyGuard} from "../utils/ReentrancyGuard.sol";

/// @title Pull payouts of a settled query
/// @notice Each payee withdraws its own share of a query's escrow. Every step touches a fixed number
/// of slots, whatever the number of owners in the query.
abstract contract Payouts is MarketStorage, ReentrancyGuard {
    /// @inheritdoc IDataMarket
    function claim(uint256 queryId) external nonReentrant {
        OwnerRecord storage owner = _owners[msg.sender];
        uint256 amount = _settleClaim(queryId, owner.index);
        owner.openSubmissions -= 1;
        _sendValue(msg.sender, amount);
    }

    /// @inheritdoc IDataMarket
    /// @dev Loops over the caller's own list, so its length limits only the caller's transaction.
    /// The whole batch reverts if any listed query cannot be claimed.
    function claimMany(uint256[] calldata queryIds) external nonReentrant {
        OwnerRecord storage owner = _owners[msg.sender];
        uint256 ownerIndex = owner.index;
        uint256 count = queryIds.length;
        uint256 total;
        for (uint256 i; i < count; ++i) {
            total += _settleClaim(queryIds[i], ownerIndex);
        }
        // Each settled claim was one of the owner's open submissions, so count <= openSubmissions.
        // forge-lint: disable-next-line(unsafe-typecast)
        owner.openSubmissions -= uint32(count);
        _sendValue(msg.sender, total);
    }

    /// @inheritdoc IDataMarket
    function releaseBudget(uint256 queryId) external {
        Query storage q = _queries[queryId];
        QueryStatus status = q.state.status;
        if (status != QueryStatus.Cancelled && status != QueryStatus.Failed) {
            _requireStatus(queryId, status, QueryStatus.Cancelled);
        }
        OwnerRecord storage owner = _owners[msg.sender];
        uint256 ownerIndex = owner.index;
        SubmissionState state = _submissionState(queryId, ownerIndex);
        if (state != SubmissionState.Submitted) revert NotSubmitted(queryId, msg.sender, state);

        uint64 epsilon = q.state.epsilon;
        _setSubmissionState(queryId, ownerIndex, SubmissionState.Settled);
        owner.epsilonUsed -= epsilon;
        owner.openSubmissions -= 1;
        emit BudgetReleased(queryId, msg.sender, epsilon);
    }

    /// @inheritdoc IDataMarket
    function claimFee(uint256 queryId) external nonReentrant {
        Query storage q = _queries[queryId];
        _requireStatus(queryId, q.state.status, QueryStatus.Published);
        Assignment storage assignment = _assignment(queryId);
        // A published query has all K shares revealed, so every assigned aggregator revealed.
        if (assignment.feeClaimed) revert FeeAlreadyClaimed(queryId, msg.sender);

        uint256 amount = q.feePerAggregator;
        assignment.feeClaimed = true;
        q.escrow -= amount;
        emit AggregatorFeePaid(queryId, msg.sender, amount);
        _sendValue(msg.sender, amount);
    }

    /// @inheritdoc IDataMarket
    function refund(uint256 queryId) external nonReentrant {
        Query storage q = _existingQuery(queryId);
        address analyst = q.terms.analyst;
        if (msg.sender != analyst) revert NotAnalyst(queryId, msg.sender, analyst);
        if (q.schedule.analystRefunded) revert AlreadyRefunded(queryId);
        QueryStatus status = q.state.status;

        uint256 amount;
        if (status == QueryStatus.Published) {
            uint256 unused = uint256(q.state.maxOwners) - _includedOwners(q);
            amount = unused * q.terms.pricePerOwner;
            q.escrow -= amount;
        } else if (status == QueryStatus.Cancelled || status == QueryStatus.Failed) {
            // No owner or aggregator is paid from a query that was not published.
            amount = q.escrow + q.slashed;
            q.escrow = 0;
            q.slashed = 0;
        } else {
            revert WrongQueryStatus(queryId, status, QueryStatus.Published);
        }
        q.schedule.analystRefunded = true;
        emit AnalystRefunded(queryId, analyst, amount);
        _sendValue(analyst, amount);
    }

    /// Marks the caller's submission to a published query paid, takes its price from the escrow and
    /// emits `OwnerPaid`. Returns the price.
    function _settleClaim(uint256 queryId, uint256 ownerIndex) private returns (uint256 amount) {
        Query storage q = _queries[queryId];
        _requireStatus(queryId, q.state.status, QueryStatus.Published);
        SubmissionState state = _submissionState(queryId, ownerIndex);
        if (state != SubmissionState.Submitted) revert NotSubmitted(queryId, msg.sender, state);

        amount = q.terms.pricePerOwner;
        _setSubmissionState(queryId, ownerIndex, SubmissionState.Settled);
        q.escrow -= amount;
        emit OwnerPaid(queryId, msg.sender, amount);
    }
}
