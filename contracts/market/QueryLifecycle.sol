// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IDataMarket} from "../interfaces/IDataMarket.sol";
import {MarketStorage} from "./MarketStorage.sol";

/// @title Queries from proposal to the close of submissions
/// @notice Proposal with exact escrow, acceptance by the K assigned aggregators, owner submissions,
/// complaints, and cancellation. Commit, reveal and failure live in `Aggregation`.
abstract contract QueryLifecycle is MarketStorage {
    // ---------------------------------------------------------------------------------------------
    // Proposal and acceptance
    // ---------------------------------------------------------------------------------------------

    /// @inheritdoc IDataMarket
    function proposeQuery(QueryParams calldata params, bytes calldata specJson)
        external
        payable
        returns (uint256 queryId)
    {
        _checkQueryParams(params);
        uint256 required =
            uint256(params.pricePerOwner) * params.maxOwners + uint256(params.feePerAggregator) * params.aggregators.length;
        if (msg.value != required) revert WrongPayment(msg.value, required);

        queryId = ++queryCount;
        Query storage q = _queries[queryId];
        _assignAggregators(queryId, q, params.aggregators);
        q.state = QueryState({
            status: QueryStatus.Proposed,
            templateId: params.templateId,
            aggregatorCount: uint8(params.aggregators.length),
            acceptedCount: 0,
            committedCount: 0,
            revealedCount: 0,
            outputLength: params.outputLength,
            epsilon: params.epsilon,
            maxOwners: params.maxOwners,
            submittedCount: 0,
            submitDeadline: params.submitDeadline
        });
        q.terms = QueryTerms({pricePerOwner: params.pricePerOwner, analyst: msg.sender});
        q.schedule = QuerySchedule({
            minOwners: params.minOwners,
            excludedCount: 0,
            closedAt: 0,
            acceptDeadline: params.acceptDeadline,
            commitDeadline: params.commitDeadline,
            revealDeadline: params.revealDeadline,
            analystRefunded: false
        });
        q.feePerAggregator = params.feePerAggregator;
        q.maxAbsEncoded = params.maxAbsEncoded;
        bytes32 specHash = keccak256(specJson);
        q.specHash = specHash;
        q.escrow = msg.value;

        emit QueryProposed(queryId, msg.sender, specHash, params, specJson);
    }

    /// @inheritdoc IDataMarket
    function acceptQuery(uint256 queryId) external {
        Query storage q = _queries[queryId];
        _requireStatus(queryId, q.state.status, QueryStatus.Proposed);
        uint256 deadline = q.schedule.acceptDeadline;
        if (block.timestamp > deadline) revert DeadlinePassed(queryId, deadline, block.timestamp);
        Assignment storage assignment = _assignment(queryId);
        if (assignment.accepted) revert AlreadyAccepted(queryId, msg.sender);
        AggregatorRecord storage aggregator = _aggregators[msg.sender];
        if (aggregator.exitRequestedAt != 0) revert AggregatorExiting(msg.sender, aggregator.exitRequestedAt);
        if (aggregator.stake < minAggregatorStake) revert StakeTooLow(aggregator.stake, minAggregatorStake);

        assignment.accepted = true;
        aggregator.openQueries += 1;
        uint8 accepted = q.state.acceptedCount + 1;
        q.state.acceptedCount = accepted;
        bool opened = accepted == q.state.aggregatorCount;
        if (opened) q.state.status = QueryStatus.Open;

        emit QueryAccepted(queryId, msg.sender);
        if (opened) emit QueryOpened(queryId);
    }

    // ---------------------------------------------------------------------------------------------
    // Submissions and complaints
    // ---------------------------------------------------------------------------------------------

    /// @inheritdoc IDataMarket
    /// @dev Reads four slots besides the submission word (the query state and terms, the owner's
    /// record and policy) and writes three (query state, owner record, submission word).
    function submitShares(uint256 queryId, bytes[] calldata ciphertexts) external {
        Query storage q = _queries[queryId];
        QueryState memory state = q.state;
        _requireStatus(queryId, state.status, QueryStatus.Open);
        if (block.timestamp > state.submitDeadline) {
            revert DeadlinePassed(queryId, state.submitDeadline, block.timestamp);
        }
        OwnerRecord memory owner = _owners[msg.sender];
        _checkConsent(owner, state, q.terms.pricePerOwner);

        mapping(uint256 => uint256) storage words = _submissions[queryId];
        uint256 wordIndex = owner.index >> STATES_PER_WORD_LOG2;
        uint256 shift = (uint256(owner.index) & STATE_SLOT_MASK) << 1;
        uint256 word = words[wordIndex];
        if ((word >> shift) & STATE_MASK != uint256(SubmissionState.None)) {
            revert AlreadySubmitted(queryId, msg.sender);
        }
        if (state.submittedCount >= state.maxOwners) revert QueryFull(queryId, state.maxOwners);
        _checkCiphertexts(ciphertexts, state.aggregatorCount, state.outputLength);

        // The consent check kept epsilonUsed + epsilon within the uint64 budget.
        OwnerRecord storage ownerRecord = _owners[msg.sender];
        ownerRecord.epsilonUsed = owner.epsilonUsed + state.epsilon;
        ownerRecord.openSubmissions = owner.openSubmissions + 1;
        words[wordIndex] = word | (uint256(SubmissionState.Submitted) << shift);
        // submittedCount < maxOwners was checked above, so the increment fits in uint32.
        uint32 submitted;
        unchecked {
            submitted = state.submittedCount + 1;
        }
        q.state.submittedCount = submitted;

        emit SharesSubmitted(queryId, msg.sender, ciphertexts);
        if (submitted == state.maxOwners) {
            q.schedule.closedAt = uint40(block.timestamp);
            emit SubmissionsFilled(queryId, block.timestamp);
        }
    }

    /// @inheritdoc IDataMarket
    function complain(uint256 queryId, address owner) external {
        Query storage q = _queries[queryId];
        _requireStatus(queryId, q.state.status, QueryStatus.Open);
        _assignment(queryId);
        uint256 closeTime = _closeTime(q);
        if (block.timestamp < closeTime) revert SubmissionsStillOpen(queryId);
        uint256 windowEnd = closeTime + complaintPeriod;
        if (block.timestamp > windowEnd) revert ComplaintWindowClosed(queryId, windowEnd, block.timestamp);
        OwnerRecord storage ownerRecord = _owners[owner];
        uint256 ownerIndex = ownerRecord.index;
        SubmissionState state = _submissionState(queryId, ownerIndex);
        if (state != SubmissionState.Submitted) revert NotSubmitted(queryId, owner, state);

        uint64 epsilon = q.state.epsilon;
        _setSubmissionState(queryId, ownerIndex, SubmissionState.Excluded);
        ownerRecord.epsilonUsed -= epsilon;
        ownerRecord.openSubmissions -= 1;
        q.schedule.excludedCount += 1;

        emit ComplaintFiled(queryId, msg.sender, owner);
        emit BudgetReleased(queryId, owner, epsilon);
    }

    // ---------------------------------------------------------------------------------------------
    // Cancellation
    // ---------------------------------------------------------------------------------------------

    /// @inheritdoc IDataMarket
    function cancel(uint256 queryId) external {
        Query storage q = _queries[queryId];
        QueryStatus status = q.state.status;
        CancelReason reason;
        if (status == QueryStatus.Proposed) {
            uint256 deadline = q.schedule.acceptDeadline;
            if (block.timestamp <= deadline) revert NotYetDue(queryId, deadline, block.timestamp);
            reason = CancelReason.NotAccepted;
        } else if (status == QueryStatus.Open) {
            // At submitDeadline itself an owner may still submit, so the count is final only after it.
            if (q.schedule.closedAt == 0 && block.timestamp <= q.state.submitDeadline) {
                revert SubmissionsStillOpen(queryId);
            }
            uint256 included = _includedOwners(q);
            uint256 minOwners = q.schedule.minOwners;
            if (included >= minOwners) revert EnoughOwners(queryId, included, minOwners);
            reason = CancelReason.TooFewOwners;
        } else if (status == QueryStatus.None) {
            revert QueryNotFound(queryId);
        } else {
            revert NothingToCancel(queryId);
        }

        q.state.status = QueryStatus.Cancelled;
        _releaseAggregators(queryId, q);
        emit QueryCancelled(queryId, reason);
    }

    // ---------------------------------------------------------------------------------------------
    // Checks
    // ---------------------------------------------------------------------------------------------

    function _checkQueryParams(QueryParams calldata params) private view {
        uint256 aggregatorCount = params.aggregators.length;
        if (aggregatorCount < MIN_AGGREGATORS || aggregatorCount > maxAggregators) {
            revert InvalidAggregatorCount(aggregatorCount, MIN_AGGREGATORS, maxAggregators);
        }
        if (params.outputLength == 0 || params.outputLength > maxOutputLength) {
            revert InvalidOutputLength(params.outputLength, maxOutputLength);
        }
        if (params.minOwners == 0 || params.minOwners > params.maxOwners) {
            revert InvalidOwnerBounds(params.minOwners, params.maxOwners);
        }
        if (params.maxAbsEncoded == 0) revert ZeroEncodedBound();
        if (uint256(params.maxOwners) * params.maxAbsEncoded >= ENCODED_SUM_LIMIT) {
            revert EncodedBoundTooLarge(params.maxOwners, params.maxAbsEncoded);
        }
        if (params.templateId >= TEMPLATE_COUNT) revert InvalidTemplate(params.templateId);
        _checkDeadlines(params);
    }

    function _checkDeadlines(QueryParams calldata params) private view {
        uint256 acceptDeadline = params.acceptDeadline;
        uint256 submitDeadline = params.submitDeadline;
        uint256 commitDeadline = params.commitDeadline;
        uint256 revealDeadline = params.revealDeadline;
        bool ordered = block.timestamp < acceptDeadline && acceptDeadline <= submitDeadline
            && submitDeadline + complaintPeriod < commitDeadline && commitDeadline < revealDeadline;
        if (!ordered) {
            revert InvalidDeadlines(acceptDeadline, submitDeadline, commitDeadline, revealDeadline, block.timestamp);
        }
    }

    /// Records each aggregator's place in the query after checking that it is registered, not
    /// exiting, staked at least `minAggregatorStake`, and listed once. The loop runs over K.
    function _assignAggregators(uint256 queryId, Query storage q, address[] calldata aggregators) private {
        mapping(address => Assignment) storage assignments = _assignments[queryId];
        uint256 count = aggregators.length;
        for (uint256 i; i < count; ++i) {
            address aggregatorAddress = aggregators[i];
            AggregatorRecord storage aggregator = _aggregators[aggregatorAddress];
            if (!aggregator.registered) revert AggregatorNotRegistered(aggregatorAddress);
            if (aggregator.exitRequestedAt != 0) {
                revert AggregatorExiting(aggregatorAddress, aggregator.exitRequestedAt);
            }
            if (aggregator.stake < minAggregatorStake) revert StakeTooLow(aggregator.stake, minAggregatorStake);
            Assignment storage assignment = assignments[aggregatorAddress];
            if (assignment.position != 0) revert DuplicateAggregator(aggregatorAddress);

            // i < count <= maxAggregators <= 255, so i + 1 fits in uint8.
            // forge-lint: disable-next-line(unsafe-typecast)
            assignment.position = uint8(i + 1);
            q.aggregators.push(aggregatorAddress);
        }
    }

    /// Checks the owner's registration and policy against the query, in the order the protocol
    /// lists them.
    function _checkConsent(OwnerRecord memory owner, QueryState memory state, uint256 price) private view {
        if (owner.index == 0) revert OwnerNotRegistered(msg.sender);
        if (owner.exitRequestedAt != 0) revert OwnerExiting(msg.sender, owner.exitRequestedAt);
        // Owners are never slashed, so this holds for every registered owner that is not exiting;
        // it stays as the check that consent is backed by the minimum stake.
        if (owner.stake < minOwnerStake) revert StakeTooLow(owner.stake, minOwnerStake);
        OwnerPolicy memory policy = _policies[msg.sender];
        if (block.timestamp > policy.expiresAt) revert PolicyExpired(msg.sender, policy.expiresAt, block.timestamp);
        if ((policy.templateMask >> state.templateId) & 1 == 0) {
            revert TemplateNotAllowed(msg.sender, state.templateId, policy.templateMask);
        }
        if (state.epsilon == 0 && !policy.allowExact) revert ExactQueryNotAllowed(msg.sender);
        if (price < policy.minPricePerQuery) revert PriceBelowMinimum(msg.sender, price, policy.minPricePerQuery);
        if (uint256(owner.epsilonUsed) + state.epsilon > policy.epsilonBudget) {
            revert BudgetExceeded(msg.sender, owner.epsilonUsed, state.epsilon, policy.epsilonBudget);
        }
    }

    /// Checks that there is one ciphertext per aggregator, each `32 + 8 * L + 16` bytes long.
    function _checkCiphertexts(bytes[] calldata ciphertexts, uint256 count, uint256 outputLength) private pure {
        if (ciphertexts.length != count) revert WrongCiphertextCount(ciphertexts.length, count);
        uint256 expected = CIPHERTEXT_OVERHEAD + BYTES_PER_COORDINATE * outputLength;
        for (uint256 i; i < count; ++i) {
            uint256 length = ciphertexts[i].length;
            if (length != expected) revert WrongCiphertextLength(i, length, expected);
        }
    }
}
