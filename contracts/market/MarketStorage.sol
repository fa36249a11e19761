// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IDataMarket} from "../interfaces/IDataMarket.sol";

/// @title Storage layout, parameters and shared helpers of the data market
/// @notice Every part of `DataMarket` inherits this contract, so the layout is declared once.
/// The fields that `submitShares` reads are packed into few slots: an owner's record and policy take
/// one slot each, the query fields a submission needs take two, and each query records its
/// submissions as 2-bit `SubmissionState`s indexed by the owner's registration number, 128 per slot.
abstract contract MarketStorage is IDataMarket {
    // ---------------------------------------------------------------------------------------------
    // Constants
    // ---------------------------------------------------------------------------------------------

    /// Largest owner stake, in wei, set by the 88-bit stake field (about 3.1e8 ether).
    uint256 internal constant MAX_OWNER_STAKE = type(uint88).max;
    /// Largest aggregator stake, in wei, set by the 128-bit stake field.
    uint256 internal constant MAX_AGGREGATOR_STAKE = type(uint128).max;
    uint256 internal constant MIN_AGGREGATORS = 2;
    /// K is stored in 8 bits.
    uint256 internal constant MAX_AGGREGATORS_LIMIT = type(uint8).max;
    /// Template ids index the bits of a 32-bit `templateMask`.
    uint256 internal constant TEMPLATE_COUNT = 32;
    /// `maxOwners * maxAbsEncoded` must stay below this, so that the sum of every owner's encoded
    /// coordinate plus the aggregators' noise cannot wrap around the signed 64-bit range.
    uint256 internal constant ENCODED_SUM_LIMIT = 2 ** 62;
    /// A ciphertext is a 32-byte ephemeral X25519 key, the 8-byte coordinates, and a 16-byte
    /// Poly1305 tag.
    uint256 internal constant CIPHERTEXT_OVERHEAD = 32 + 16;
    uint256 internal constant BYTES_PER_COORDINATE = 8;
    /// Submission states are 2 bits wide, so one 256-bit word holds 128 owners.
    uint256 internal constant STATES_PER_WORD_LOG2 = 7;
    uint256 internal constant STATE_SLOT_MASK = 127;
    uint256 internal constant STATE_MASK = 3;

    // ---------------------------------------------------------------------------------------------
    // Storage types
    // ---------------------------------------------------------------------------------------------

    /// One slot per owner. `index` is the owner's registration number, starting at 1, and 0 marks an
    /// address that never registered.
    struct OwnerRecord {
        uint88 stake;
        uint64 epsilonUsed;
        uint32 openSubmissions;
        uint40 exitRequestedAt;
        uint32 index;
    }

    struct AggregatorRecord {
        uint128 stake;
        uint32 openQueries;
        uint40 exitRequestedAt;
        bool registered;
    }

    /// One aggregator's part in one query. `position` is its 1-based place in `params.aggregators`,
    /// and 0 marks an address the query did not assign.
    struct Assignment {
        uint8 position;
        bool accepted;
        bool committed;
        bool revealed;
        bool feeClaimed;
        bytes32 commitment;
    }

    /// The query slot that every submission reads and writes.
    struct QueryState {
        QueryStatus status;
        uint8 templateId;
        uint8 aggregatorCount;
        uint8 acceptedCount;
        uint8 committedCount;
        uint8 revealedCount;
        uint32 outputLength;
        uint64 epsilon;
        uint32 maxOwners;
        uint32 submittedCount;
        uint40 submitDeadline;
    }

    /// The query slot that every submission reads and nothing writes after the proposal.
    struct QueryTerms {
        uint96 pricePerOwner;
        address analyst;
    }

    struct QuerySchedule {
        uint32 minOwners;
        uint32 excludedCount;
        uint40 closedAt; // set by the submission that reaches maxOwners
        uint40 acceptDeadline;
        uint40 commitDeadline;
        uint40 revealDeadline;
        bool analystRefunded;
    }

    struct Query {
        QueryState state;
        QueryTerms terms;
        QuerySchedule schedule;
        uint96 feePerAggregator;
        uint64 maxAbsEncoded;
        bytes32 specHash;
        uint256 escrow;
        uint256 slashed;
        address[] aggregators;
        // Running sum of the revealed shares modulo 2^64; the result once the query is published.
        uint64[] aggregateSum;
    }

    // ---------------------------------------------------------------------------------------------
    // Parameters
    // ---------------------------------------------------------------------------------------------

    /// @inheritdoc IDataMarket
    uint256 public immutable minOwnerStake;
    /// @inheritdoc IDataMarket
    uint256 public immutable minAggregatorStake;
    /// @inheritdoc IDataMarket
    uint256 public immutable unbondingPeriod;
    /// @inheritdoc IDataMarket
    uint256 public immutable complaintPeriod;
    /// @inheritdoc IDataMarket
    uint256 public immutable slashAmount;
    /// @inheritdoc IDataMarket
    uint256 public immutable maxAggregators;
    /// @inheritdoc IDataMarket
    uint256 public immutable maxOutputLength;

    // ---------------------------------------------------------------------------------------------
    // State
    // ---------------------------------------------------------------------------------------------

    /// @inheritdoc IDataMarket
    uint256 public queryCount;
    uint32 internal _ownerCount;

    mapping(address owner => OwnerRecord) internal _owners;
    mapping(address owner => OwnerPolicy) internal _policies;
    mapping(address owner => bytes32) internal _datasetCommitments;

    mapping(address aggregator => AggregatorRecord) internal _aggregators;
    mapping(address aggregator => bytes32) internal _encryptionKeys;

    mapping(uint256 queryId => Query) internal _queries;
    mapping(uint256 queryId => mapping(address aggregator => Assignment)) internal _assignments;
    /// 2-bit `SubmissionState` of owner `index` at bit `2 * (index % 128)` of word `index / 128`.
    mapping(uint256 queryId => mapping(uint256 word => uint256 states)) internal _submissions;

    /// @dev Periods are capped at 2^40 - 1 seconds so that deadline sums cannot overflow, and K and
    /// L at the widths of their storage fields.
    constructor(
        uint256 minOwnerStake_,
        uint256 minAggregatorStake_,
        uint256 unbondingPeriod_,
        uint256 complaintPeriod_,
        uint256 slashAmount_,
        uint256 maxAggregators_,
        uint256 maxOutputLength_
    ) {
        if (unbondingPeriod_ > type(uint40).max) {
            revert InvalidConstructorArgument(2, unbondingPeriod_, 0, type(uint40).max);
        }
        if (complaintPeriod_ > type(uint40).max) {
            revert InvalidConstructorArgument(3, complaintPeriod_, 0, type(uint40).max);
        }
        if (maxAggregators_ < MIN_AGGREGATORS || maxAggregators_ > MAX_AGGREGATORS_LIMIT) {
            revert InvalidConstructorArgument(5, maxAggregators_, MIN_AGGREGATORS, MAX_AGGREGATORS_LIMIT);
        }
        if (maxOutputLength_ == 0 || maxOutputLength_ > type(uint32).max) {
            revert InvalidConstructorArgument(6, maxOutputLength_, 1, type(uint32).max);
        }

        minOwnerStake = minOwnerStake_;
        minAggregatorStake = minAggregatorStake_;
        unbondingPeriod = unbondingPeriod_;
        complaintPeriod = complaintPeriod_;
        slashAmount = slashAmount_;
        maxAggregators = maxAggregators_;
        maxOutputLength = maxOutputLength_;
    }

    // ---------------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------------

    /// Reverts unless the query has status `expected`; an unknown id reverts with `QueryNotFound`.
    function _requireStatus(uint256 queryId, QueryStatus actual, QueryStatus expected) internal pure {
        if (actual == expected) return;
        if (actual == QueryStatus.None) revert QueryNotFound(queryId);
        revert WrongQueryStatus(queryId, actual, expected);
    }

    /// Returns the query after checking that it exists.
    function _existingQuery(uint256 queryId) internal view returns (Query storage q) {
        q = _queries[queryId];
        if (q.state.status == QueryStatus.None) revert QueryNotFound(queryId);
    }

    /// Returns the caller's assignment in the query, reverting if the query did not assign it.
    function _assignment(uint256 queryId) internal view returns (Assignment storage a) {
        a = _assignments[queryId][msg.sender];
        if (a.position == 0) revert NotAssignedAggregator(queryId, msg.sender);
    }

    /// The moment submissions close: when `maxOwners` was reached, or else `submitDeadline`.
    function _closeTime(Query storage q) internal view returns (uint256) {
        uint256 closedAt = q.schedule.closedAt;
        return closedAt != 0 ? closedAt : q.state.submitDeadline;
    }

    /// Owners whose submission counts: submitted and not excluded by a complaint.
    function _includedOwners(Query storage q) internal view returns (uint256) {
        return uint256(q.state.submittedCount) - q.schedule.excludedCount;
    }

    function _submissionState(uint256 queryId, uint256 ownerIndex) internal view returns (SubmissionState) {
        uint256 word = _submissions[queryId][ownerIndex >> STATES_PER_WORD_LOG2];
        return SubmissionState((word >> ((ownerIndex & STATE_SLOT_MASK) << 1)) & STATE_MASK);
    }

    function _setSubmissionState(uint256 queryId, uint256 ownerIndex, SubmissionState state) internal {
        mapping(uint256 => uint256) storage words = _submissions[queryId];
        uint256 wordIndex = ownerIndex >> STATES_PER_WORD_LOG2;
        uint256 shift = (ownerIndex & STATE_SLOT_MASK) << 1;
        words[wordIndex] = (words[wordIndex] & ~(STATE_MASK << shift)) | (uint256(state) << shift);
    }

    /// Decrements `openQueries` of every aggregator that accepted the query, which is settling. The
    /// loop runs over the query's K aggregators.
    function _releaseAggregators(uint256 queryId, Query storage q) internal {
        address[] storage aggregators = q.aggregators;
        uint256 count = aggregators.length;
        for (uint256 i; i < count; ++i) {
            address aggregator = aggregators[i];
            if (_assignments[queryId][aggregator].accepted) {
                _aggregators[aggregator].openQueries -= 1;
            }
        }
    }

    /// Sends `amount` wei to `to`; callers update their accounting and emit their events first.
    function _sendValue(address to, uint256 amount) internal {
        if (amount == 0) return;
        (bool success,) = to.call{value: amount}("");
        if (!success) revert TransferFailed(to, amount);
    }
}
