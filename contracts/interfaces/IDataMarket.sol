// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title PMSR data market
/// @notice Analysts escrow a budget for an aggregate query; data owners who consented by staking
/// submit additive secret shares of their private map output, one ciphertext per aggregator; the
/// aggregators commit, then reveal, their aggregate shares and the contract adds them modulo 2^64
/// into the published result. Every payout is pulled by its payee.
/// @dev Time rules, with `t = block.timestamp`:
///  - an action "before deadline D" is allowed while `t <= D`; a transition "after D" is due once `t > D`;
///  - submissions close at `closedAt`: the moment `maxOwners` is reached, or else `submitDeadline`;
///  - complaints are allowed while `closedAt <= t <= closedAt + complaintPeriod` (once closed);
///  - commits are allowed while `closedAt + complaintPeriod < t <= commitDeadline`;
///  - reveals are allowed once all K aggregators committed, while `t <= revealDeadline`.
/// Template ids, shared with the off-chain workers: count = 0, sum = 1, mean = 2, histogram = 3,
/// crosstab = 4, ols = 5, vote = 6. Bit `i` of an owner's `templateMask` allows template id `i`.
/// Epsilon is in millionths (1_000_000 = 1.0); a query with epsilon 0 is exact (noise-free).
interface IDataMarket {
    // ---------------------------------------------------------------------------------------------
    // Types
    // ---------------------------------------------------------------------------------------------

    /// @notice An owner's consent policy.
    /// @param minPricePerQuery Lowest `pricePerOwner`, in wei, the owner accepts.
    /// @param epsilonBudget Total privacy budget over the owner's lifetime, in millionths.
    /// @param templateMask Bit i set allows template id i.
    /// @param allowExact Whether the owner joins exact (epsilon 0) queries.
    /// @param expiresAt Unix time after which the owner joins no new query.
    struct OwnerPolicy {
        uint96 minPricePerQuery;
        uint64 epsilonBudget;
        uint32 templateMask;
        bool allowExact;
        uint40 expiresAt;
    }

    /// @notice The part of a query the contract enforces. The full spec is the JSON whose
    /// keccak256 is the query's `specHash`.
    struct QueryParams {
        uint8 templateId;
        uint32 outputLength;
        uint64 epsilon;
        uint96 pricePerOwner;
        uint32 minOwners;
        uint32 maxOwners;
        address[] aggregators;
        uint96 feePerAggregator;
        uint40 acceptDeadline;
        uint40 submitDeadline;
        uint40 commitDeadline;
        uint40 revealDeadline;
        uint64 maxAbsEncoded;
    }

    enum QueryStatus {
        None,
        Proposed, // waiting for every aggregator to accept
        Open, // accepting submissions, then complaints, commits and reveals
        Published,
        Cancelled,
        Failed
    }

    enum CancelReason {
        NotAccepted,
        TooFewOwners
    }

    /// @notice Per-owner state in one query.
    enum SubmissionState {
        None,
        Submitted,
        Excluded, // an aggregator complained; epsilon released, never paid
        Settled // paid (published query) or budget released (cancelled or failed query)
    }

    struct OwnerInfo {
        uint256 stake;
        OwnerPolicy policy;
        uint64 epsilonUsed; // reserved plus spent, in millionths
        uint32 openSubmissions; // submissions not yet claimed, released or excluded
        uint40 exitRequestedAt; // 0 unless exiting
        bool registered;
        bytes32 datasetCommitment;
    }

    struct AggregatorInfo {
        uint256 stake;
        bytes32 encryptionKey;
        uint32 openQueries; // accepted queries not yet published, cancelled or failed
        uint40 exitRequestedAt;
        bool registered;
    }

    struct QueryInfo {
        address analyst;
        QueryStatus status;
        bytes32 specHash;
        QueryParams params;
        uint32 acceptedCount;
        uint32 submittedCount;
        uint32 excludedCount;
        uint32 committedCount;
        uint32 revealedCount;
        uint40 closedAt; // 0 until submissions close by reaching maxOwners
        uint256 escrow; // wei still held for this query
        uint256 slashed; // wei slashed from aggregators, owed to the analyst
        bool analystRefunded;
    }

    struct AggregatorQueryState {
        bool accepted;
        bool committed;
        bool revealed;
        bool feeClaimed;
        bytes32 commitment;
    }

    // ---------------------------------------------------------------------------------------------
    // Errors
    // ---------------------------------------------------------------------------------------------

    /// @notice A constructor argument is outside `[minimum, maximum]`; `position` is its 0-based
    /// place in the constructor's argument list.
    error InvalidConstructorArgument(uint256 position, uint256 value, uint256 minimum, uint256 maximum);

    error StakeTooLow(uint256 provided, uint256 minimum);
    /// @notice The stake after a deposit would exceed what the stake's storage field holds
    /// (2^88 - 1 wei for owners, 2^128 - 1 wei for aggregators); `provided` is that total.
    error StakeTooLarge(uint256 provided, uint256 maximum);
    error OwnerAlreadyRegistered(address owner);
    error OwnerNotRegistered(address owner);
    error OwnerExiting(address owner, uint256 exitRequestedAt);
    error OwnerNotExiting(address owner);
    error PolicyExpired(address owner, uint256 expiresAt, uint256 now_);
    error InvalidPolicyExpiry(uint256 expiresAt, uint256 now_);
    error UnbondingNotOver(uint256 withdrawableAt, uint256 now_);
    error OwnerHasOpenSubmissions(address owner, uint256 openSubmissions);
    error AggregatorAlreadyRegistered(address aggregator);
    error AggregatorNotRegistered(address aggregator);
    error AggregatorExiting(address aggregator, uint256 exitRequestedAt);
    error AggregatorNotExiting(address aggregator);
    error AggregatorHasOpenQueries(address aggregator, uint256 openQueries);
    error InvalidEncryptionKey(bytes32 key);
    error ZeroAmount();

    error QueryNotFound(uint256 queryId);
    /// @notice `expected` is the status the call needs; `releaseBudget` names `Cancelled` and also
    /// accepts `Failed`, and `refund` names `Published` and also accepts `Cancelled` and `Failed`.
    error WrongQueryStatus(uint256 queryId, QueryStatus actual, QueryStatus expected);
    error InvalidAggregatorCount(uint256 count, uint256 minimum, uint256 maximum);
    error DuplicateAggregator(address aggregator);
    error InvalidOutputLength(uint256 length, uint256 maximum);
    error InvalidOwnerBounds(uint256 minOwners, uint256 maxOwners);
    error EncodedBoundTooLarge(uint256 maxOwners, uint256 maxAbsEncoded);
    error ZeroEncodedBound();
    error InvalidTemplate(uint256 templateId);
    error InvalidDeadlines(
        uint256 acceptDeadline, uint256 submitDeadline, uint256 commitDeadline, uint256 revealDeadline, uint256 now_
    );
    error WrongPayment(uint256 sent, uint256 required);

    error NotAssignedAggregator(uint256 queryId, address caller);
    error AlreadyAccepted(uint256 queryId, address aggregator);
    error DeadlinePassed(uint256 queryId, uint256 deadline, uint256 now_);
    error NotYetDue(uint256 queryId, uint256 dueAfter, uint256 now_);
    error SubmissionsClosed(uint256 queryId);
    error SubmissionsStillOpen(uint256 queryId);
    error WrongCiphertextCount(uint256 count, uint256 expected);
    error WrongCiphertextLength(uint256 index, uint256 length, uint256 expected);
    error TemplateNotAllowed(address owner, uint256 templateId, uint256 templateMask);
    error ExactQueryNotAllowed(address owner);
    error PriceBelowMinimum(address owner, uint256 price, uint256 minimum);
    error BudgetExceeded(address owner, uint256 epsilonUsed, uint256 epsilon, uint256 budget);
    error AlreadySubmitted(uint256 queryId, address owner);
    error QueryFull(uint256 queryId, uint256 maxOwners);

    error ComplaintWindowClosed(uint256 queryId, uint256 windowEnd, uint256 now_);
    error NotSubmitted(uint256 queryId, address owner, SubmissionState state);
    error CommitWindowNotOpen(uint256 queryId, uint256 opensAfter, uint256 now_);
    error AlreadyCommitted(uint256 queryId, address aggregator);
    error TooFewOwners(uint256 queryId, uint256 included, uint256 minOwners);
    error EnoughOwners(uint256 queryId, uint256 included, uint256 minOwners);
    error NotAllCommitted(uint256 queryId, uint256 committed, uint256 required);
    error NotCommitted(uint256 queryId, address aggregator);
    error AlreadyRevealed(uint256 queryId, address aggregator);
    error WrongShareLength(uint256 length, uint256 expected);
    error CommitmentMismatch(uint256 queryId, address aggregator, bytes32 expected, bytes32 actual);
    error NothingToCancel(uint256 queryId);
    error NothingToFail(uint256 queryId);

    error NotAnalyst(uint256 queryId, address caller, address analyst);
    error AlreadyRefunded(uint256 queryId);
    error NotRevealed(uint256 queryId, address aggregator);
    error FeeAlreadyClaimed(uint256 queryId, address aggregator);
    error TransferFailed(address to, uint256 amount);
    error Reentrancy();

    // ---------------------------------------------------------------------------------------------
    // Events
    // ---------------------------------------------------------------------------------------------

    event OwnerRegistered(address indexed owner, uint256 stake, OwnerPolicy policy, bytes32 datasetCommitment);
    event OwnerPolicyUpdated(address indexed owner, OwnerPolicy policy);
    event OwnerStakeIncreased(address indexed owner, uint256 amount, uint256 stake);
    event OwnerExitBegun(address indexed owner, uint256 withdrawableAt);
    event OwnerStakeWithdrawn(address indexed owner, uint256 amount);

    event AggregatorRegistered(address indexed aggregator, uint256 stake, bytes32 encryptionKey);
    event AggregatorKeyRotated(address indexed aggregator, bytes32 encryptionKey);
    event AggregatorStakeIncreased(address indexed aggregator, uint256 amount, uint256 stake);
    event AggregatorExitBegun(address indexed aggregator, uint256 withdrawableAt);
    event AggregatorStakeWithdrawn(address indexed aggregator, uint256 amount);

    event QueryProposed(
        uint256 indexed queryId, address indexed analyst, bytes32 specHash, QueryParams params, bytes specJson
    );
    event QueryAccepted(uint256 indexed queryId, address indexed aggregator);
    event QueryOpened(uint256 indexed queryId);
    event SharesSubmitted(uint256 indexed queryId, address indexed owner, bytes[] ciphertexts);
    event SubmissionsFilled(uint256 indexed queryId, uint256 closedAt);
    event ComplaintFiled(uint256 indexed queryId, address indexed aggregator, address indexed owner);
    event AggregateCommitted(uint256 indexed queryId, address indexed aggregator, bytes32 commitment);
    event AggregateRevealed(uint256 indexed queryId, address indexed aggregator, uint64[] share);
    event ResultPublished(uint256 indexed queryId, uint64[] result, uint256 includedOwners);
    event QueryCancelled(uint256 indexed queryId, CancelReason reason);
    event QueryFailed(uint256 indexed queryId, uint256 slashedTotal);
    event AggregatorSlashed(uint256 indexed queryId, address indexed aggregator, uint256 amount);

    event OwnerPaid(uint256 indexed queryId, address indexed owner, uint256 amount);
    event BudgetReleased(uint256 indexed queryId, address indexed owner, uint64 epsilon);
    event AggregatorFeePaid(uint256 indexed queryId, address indexed aggregator, uint256 amount);
    event AnalystRefunded(uint256 indexed queryId, address indexed analyst, uint256 amount);

    // ---------------------------------------------------------------------------------------------
    // Owners
    // ---------------------------------------------------------------------------------------------

    /// @notice Registers the caller as a data owner with `msg.value` as stake (at least
    /// `minOwnerStake`) and publishes its consent policy. An address registers once.
    function registerOwner(OwnerPolicy calldata policy, bytes32 datasetCommitment) external payable;

    /// @notice Replaces the caller's policy. Lowering the budget below what is used blocks new
    /// submissions; it never cancels reserved epsilon.
    function updateOwnerPolicy(OwnerPolicy calldata policy) external;

    /// @notice Adds `msg.value` to the caller's owner stake.
    function topUpOwnerStake() external payable;

    /// @notice Starts the caller's unbonding period. An exiting owner submits to no new query.
    function beginOwnerExit() external;

    /// @notice Sends the caller its whole owner stake, once `unbondingPeriod` has passed since
    /// `beginOwnerExit` and no submission of the caller is unsettled.
    function withdrawOwnerStake() external;

    // ---------------------------------------------------------------------------------------------
    // Aggregators
    // ---------------------------------------------------------------------------------------------

    /// @notice Registers the caller as an aggregator with `msg.value` as stake (at least
    /// `minAggregatorStake`) and a 32-byte X25519 public key (nonzero).
    function registerAggregator(bytes32 encryptionKey) external payable;

    /// @notice Replaces the caller's encryption key; blocked while it serves an unsettled query.
    function rotateAggregatorKey(bytes32 encryptionKey) external;

    /// @notice Adds `msg.value` to the caller's aggregator stake.
    function topUpAggregatorStake() external payable;

    /// @notice Starts the caller's unbonding period; an exiting aggregator accepts no new query.
    function beginAggregatorExit() external;

    /// @notice Sends the caller its whole aggregator stake after `unbondingPeriod`, once it serves
    /// no unsettled query.
    function withdrawAggregatorStake() external;

    // ---------------------------------------------------------------------------------------------
    // Queries
    // ---------------------------------------------------------------------------------------------

    /// @notice Proposes a query and escrows exactly
    /// `pricePerOwner * maxOwners + feePerAggregator * aggregators.length` wei.
    /// @return queryId Sequential id, starting at 1.
    function proposeQuery(QueryParams calldata params, bytes calldata specJson)
        external
        payable
        returns (uint256 queryId);

    /// @notice Accepts an assigned query before `acceptDeadline`; the K-th acceptance opens it.
    function acceptQuery(uint256 queryId) external;

    /// @notice Submits one ciphertext per aggregator, in the order of `params.aggregators`, each
    /// exactly `32 + 8 * outputLength + 16` bytes, and reserves the query's epsilon.
    function submitShares(uint256 queryId, bytes[] calldata ciphertexts) external;

    /// @notice Excludes `owner`, whose ciphertext for the calling aggregator failed to decrypt,
    /// from the result and the payout, and releases its epsilon.
    function complain(uint256 queryId, address owner) external;

    /// @notice Commits `keccak256(abi.encode(queryId, msg.sender, share, salt))` with `share` a
    /// `uint64[]` of length `outputLength`.
    function commitAggregate(uint256 queryId, bytes32 commitment) external;

    /// @notice Reveals the committed share. The K-th reveal adds all shares coordinate-wise modulo
    /// 2^64 and publishes the result.
    function revealAggregate(uint256 queryId, uint64[] calldata share, bytes32 salt) external;

    /// @notice Cancels a query whose aggregators did not all accept by `acceptDeadline`, or whose
    /// included owners are fewer than `minOwners` once submissions closed. Anyone may call.
    function cancel(uint256 queryId) external;

    /// @notice Fails a query after a missed `commitDeadline` or `revealDeadline` and slashes every
    /// aggregator that missed it by `slashAmount` (at most its stake), for the analyst. Anyone may call.
    /// @dev If fewer than K aggregators committed, the failure is due after `commitDeadline` and only
    /// those that did not commit are slashed: the others could not reveal, because reveals need all K
    /// commitments. Once all K committed, it is due after `revealDeadline` and those that did not
    /// reveal are slashed. A query with fewer than `minOwners` included owners is cancelled instead.
    function fail(uint256 queryId) external;

    // ---------------------------------------------------------------------------------------------
    // Payouts
    // ---------------------------------------------------------------------------------------------

    /// @notice Pays the caller `pricePerOwner` for a published query it was included in.
    function claim(uint256 queryId) external;

    /// @notice Pays the caller for each listed published query in one transfer.
    function claimMany(uint256[] calldata queryIds) external;

    /// @notice Releases the caller's reserved epsilon for a cancelled or failed query.
    function releaseBudget(uint256 queryId) external;

    /// @notice Pays an aggregator that revealed its fee for a published query.
    function claimFee(uint256 queryId) external;

    /// @notice Pays the analyst what the query no longer owes: after publication the unused
    /// escrow `pricePerOwner * (maxOwners - included)`; after cancel or fail the whole escrow plus
    /// any slashed stake.
    function refund(uint256 queryId) external;

    // ---------------------------------------------------------------------------------------------
    // Views
    // ---------------------------------------------------------------------------------------------

    function minOwnerStake() external view returns (uint256);
    function minAggregatorStake() external view returns (uint256);
    function unbondingPeriod() external view returns (uint256);
    function complaintPeriod() external view returns (uint256);
    function slashAmount() external view returns (uint256);
    function maxAggregators() external view returns (uint256);
    function maxOutputLength() external view returns (uint256);

    function queryCount() external view returns (uint256);
    function ownerInfo(address owner) external view returns (OwnerInfo memory);
    function aggregatorInfo(address aggregator) external view returns (AggregatorInfo memory);
    function queryInfo(uint256 queryId) external view returns (QueryInfo memory);
    function submissionState(uint256 queryId, address owner) external view returns (SubmissionState);
    function aggregatorQueryState(uint256 queryId, address aggregator)
        external
        view
        returns (AggregatorQueryState memory);
    /// @notice End of the complaint window, or 0 while submissions are open.
    function complaintWindowEnd(uint256 queryId) external view returns (uint256);
    /// @notice The published result (empty before publication).
    function queryResult(uint256 queryId) external view returns (uint64[] memory);
    /// @notice The ciphertext length a submission to `queryId` needs.
    function ciphertextLength(uint256 queryId) external view returns (uint256);
}
