// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IDataMarket} from "../../interfaces/IDataMarket.sol";
import {CHEATCODE_ADDRESS, InvariantVm} from "./InvariantVm.sol";

/// @notice Drives `DataMarket` through random but mostly valid sequences of owner, aggregator and
/// analyst actions, and keeps ghost totals of every wei and every unit of epsilon that moves.
/// @dev Each entry point bounds its seeds to the actors and queries that can act, catches the
/// reverts the contract may legitimately raise, and records what a successful call changed. When a
/// call succeeds that the protocol rules forbid, or pays an amount other than the rules give, the
/// handler records a violation that an invariant then reports.
/// Block time lives in `currentTime` and every entry point warps to it first, so a run's clock only
/// moves forward and never depends on how the fuzzer carries block values between calls.
contract DataMarketHandler {
    InvariantVm private constant vm = InvariantVm(CHEATCODE_ADDRESS);

    uint256 public constant OWNER_COUNT = 5;
    uint256 public constant AGGREGATOR_COUNT = 4;
    uint256 public constant ANALYST_COUNT = 2;
    /// Proposals stop at this many queries so that the invariants' loops stay short.
    uint256 public constant MAX_QUERIES = 8;
    uint256 private constant TEMPLATE_COUNT = 7;

    // Status bits for `_pickQuery`.
    uint256 private constant PROPOSED = 2 ** uint256(IDataMarket.QueryStatus.Proposed);
    uint256 private constant OPEN = 2 ** uint256(IDataMarket.QueryStatus.Open);
    uint256 private constant PUBLISHED = 2 ** uint256(IDataMarket.QueryStatus.Published);
    uint256 private constant CANCELLED = 2 ** uint256(IDataMarket.QueryStatus.Cancelled);
    uint256 private constant FAILED = 2 ** uint256(IDataMarket.QueryStatus.Failed);

    struct QueryGhost {
        uint256 escrowDeposited; // wei the analyst paid in
        uint256 slashed; // wei moved from aggregator stakes into this query
        uint256 paidOut; // wei this query paid to owners, aggregators and the analyst
    }

    struct CommittedShare {
        uint64[] share;
        bytes32 salt;
    }

    IDataMarket public immutable market;
    uint256 public immutable minOwnerStake;
    uint256 public immutable minAggregatorStake;
    uint256 public immutable unbondingPeriod;
    uint256 public immutable complaintPeriod;
    uint256 public immutable slashAmount;
    uint256 public immutable maxAggregators;
    uint256 public immutable maxOutputLength;

    address[] public owners;
    address[] public aggregators;
    address[] public analysts;
    address public immutable keeper;

    uint256 public currentTime;

    // ---------------------------------------------------------------------------------------------
    // Ghost totals
    // ---------------------------------------------------------------------------------------------

    uint256 public ghostStakeDeposited;
    uint256 public ghostStakeWithdrawn;
    uint256 public ghostStakeSlashed;
    uint256 public ghostEscrowDeposited;
    uint256 public ghostPaidOut;
    mapping(address payee => uint256) public ghostPaidTo;
    mapping(address actor => uint256) public ghostWithdrawnBy;
    mapping(uint256 queryId => QueryGhost) private _queryGhost;

    /// Successful payouts per (query, payee): owner claims, aggregator fees and analyst refunds.
    mapping(uint256 queryId => mapping(address owner => uint256)) public ghostClaimCount;
    mapping(uint256 queryId => mapping(address aggregator => uint256)) public ghostFeeCount;
    mapping(uint256 queryId => uint256) public ghostRefundCount;

    /// Epsilon the handler saw reserved and not released, per owner, in millionths.
    mapping(address owner => uint256) public ghostEpsilonReserved;
    /// The largest budget each owner's policy ever had; lowering a budget keeps what is reserved,
    /// so `epsilonUsed` may exceed the current budget but never this.
    mapping(address owner => uint256) public ghostBudgetCeiling;

    mapping(uint256 queryId => mapping(address aggregator => CommittedShare)) private _committed;
    mapping(uint256 queryId => mapping(address aggregator => uint64[])) private _revealed;

    /// A query's status after the handler's last call that could change it. Only proposals,
    /// acceptances, reveals, cancels and fails change a status, so this matches `queryInfo` (an
    /// invariant checks it) and lets the handler pick queries without reading every one.
    mapping(uint256 queryId => IDataMarket.QueryStatus) public statusSeen;

    string public firstViolation;
    uint256 public violationCount;

    /// Successful calls per kind, to check that runs reach every stage of the lifecycle.
    mapping(bytes32 kind => uint256) public successCount;

    constructor(IDataMarket market_) {
        market = market_;
        minOwnerStake = market_.minOwnerStake();
        minAggregatorStake = market_.minAggregatorStake();
        unbondingPeriod = market_.unbondingPeriod();
        complaintPeriod = market_.complaintPeriod();
        slashAmount = market_.slashAmount();
        maxAggregators = market_.maxAggregators();
        maxOutputLength = market_.maxOutputLength();
        currentTime = block.timestamp;

        for (uint256 i = 0; i < OWNER_COUNT; i++) {
            owners.push(_actor("owner", i));
        }
        for (uint256 i = 0; i < AGGREGATOR_COUNT; i++) {
            aggregators.push(_actor("aggregator", i));
        }
        for (uint256 i = 0; i < ANALYST_COUNT; i++) {
            analysts.push(_actor("analyst", i));
        }
        keeper = _actor("keeper", 0);
    }

    modifier atCurrentTime() {
        vm.warp(currentTime);
        _;
    }

    // ---------------------------------------------------------------------------------------------
    // Owners
    // ---------------------------------------------------------------------------------------------

    function registerOwner(uint256 actorSeed, uint256 stakeSeed, uint256 policySeed) external atCurrentTime {
        address owner = owners[actorSeed % OWNER_COUNT];
        bool tooLow = stakeSeed % 16 == 1;
        uint256 stake = tooLow ? minOwnerStake - 1 : minOwnerStake + (stakeSeed >> 8) % 4 * 0.5 ether;
        IDataMarket.OwnerPolicy memory policy = _randomPolicy(policySeed);
        bytes32 datasetCommitment = keccak256(abi.encode("dataset", owner, policySeed));

        vm.deal(owner, owner.balance + stake);
        vm.prank(owner);
        try market.registerOwner{value: stake}(policy, datasetCommitment) {
            ghostStakeDeposited += stake;
            _raiseBudgetCeiling(owner, policy.epsilonBudget);
            successCount["registerOwner"]++;
            if (tooLow) _violation(string.concat("owner registered with stake ", _str(stake)));
        } catch {
            vm.deal(owner, owner.balance - stake); // takes back the unspent funding
        }
    }

    function updateOwnerPolicy(uint256 actorSeed, uint256 policySeed) external atCurrentTime {
        address owner = owners[actorSeed % OWNER_COUNT];
        IDataMarket.OwnerPolicy memory policy = _randomPolicy(policySeed);

        vm.prank(owner);
        try market.updateOwnerPolicy(policy) {
            _raiseBudgetCeiling(owner, policy.epsilonBudget);
            successCount["updateOwnerPolicy"]++;
        } catch {}
    }

    function topUpOwnerStake(uint256 actorSeed, uint256 amountSeed) external atCurrentTime {
        address owner = owners[actorSeed % OWNER_COUNT];
        uint256 amount = 1 + amountSeed % 2 ether;

        vm.deal(owner, owner.balance + amount);
        vm.prank(owner);
        try market.topUpOwnerStake{value: amount}() {
            ghostStakeDeposited += amount;
            successCount["topUpOwnerStake"]++;
        } catch {
            vm.deal(owner, owner.balance - amount); // takes back the unspent funding
        }
    }

    /// @param chanceSeed Only one call in two goes ahead, so that most runs keep enough owners to
    /// fill queries.
    function beginOwnerExit(uint256 actorSeed, uint256 chanceSeed) external atCurrentTime {
        if (chanceSeed % 2 != 1) return;
        address owner = owners[actorSeed % OWNER_COUNT];

        vm.prank(owner);
        try market.beginOwnerExit() {
            successCount["beginOwnerExit"]++;
        } catch {}
    }

    /// @param jump Whether to warp to the end of the unbonding period first.
    function withdrawOwnerStake(uint256 actorSeed, bool jump, uint256 offsetSeed) external atCurrentTime {
        address owner = _pickExiting(owners, actorSeed, true);
        IDataMarket.OwnerInfo memory info = market.ownerInfo(owner);
        if (jump && info.exitRequestedAt != 0) {
            _advanceTo(info.exitRequestedAt + unbondingPeriod + offsetSeed % 2);
        }
        uint256 unsettled = _unsettledSubmissions(owner);
        uint256 balanceBefore = owner.balance;

        vm.prank(owner);
        try market.withdrawOwnerStake() {
            uint256 paid = owner.balance - balanceBefore;
            ghostStakeWithdrawn += paid;
            ghostWithdrawnBy[owner] += paid;
            successCount["withdrawOwnerStake"]++;
            if (paid != info.stake) {
                _violation(string.concat("owner stake withdrawal paid ", _str(paid), ", stake was ", _str(info.stake)));
            }
            if (unsettled != 0) {
                _violation(string.concat("owner withdrew with ", _str(unsettled), " unsettled submissions"));
            }
            if (info.exitRequestedAt == 0 || currentTime < info.exitRequestedAt + unbondingPeriod) {
                _violation("owner withdrew before the unbonding period ended");
            }
        } catch {}
    }

    // ---------------------------------------------------------------------------------------------
    // Aggregators
    // ---------------------------------------------------------------------------------------------

    function registerAggregator(uint256 actorSeed, uint256 stakeSeed, uint256 keySeed) external atCurrentTime {
        address aggregator = aggregators[actorSeed % AGGREGATOR_COUNT];
        bool tooLow = stakeSeed % 16 == 1;
        uint256 stake = tooLow ? minAggregatorStake - 1 : minAggregatorStake + (stakeSeed >> 8) % 4 * 1 ether;
        bool zeroKey = keySeed % 16 == 1;
        bytes32 key = zeroKey ? bytes32(0) : keccak256(abi.encode("x25519", keySeed));

        vm.deal(aggregator, aggregator.balance + stake);
        vm.prank(aggregator);
        try market.registerAggregator{value: stake}(key) {
            ghostStakeDeposited += stake;
            successCount["registerAggregator"]++;
            if (tooLow) _violation(string.concat("aggregator registered with stake ", _str(stake)));
            if (zeroKey) _violation("aggregator registered with a zero encryption key");
        } catch {
            vm.deal(aggregator, aggregator.balance - stake); // takes back the unspent funding
        }
    }

    function topUpAggregatorStake(uint256 actorSeed, uint256 amountSeed) external atCurrentTime {
        address aggregator = aggregators[actorSeed % AGGREGATOR_COUNT];
        uint256 amount = 1 + amountSeed % 2 ether;

        vm.deal(aggregator, aggregator.balance + amount);
        vm.prank(aggregator);
        try market.topUpAggregatorStake{value: amount}() {
            ghostStakeDeposited += amount;
            successCount["topUpAggregatorStake"]++;
        } catch {
            vm.deal(aggregator, aggregator.balance - amount); // takes back the unspent funding
        }
    }

    function rotateAggregatorKey(uint256 actorSeed, uint256 keySeed) external atCurrentTime {
        address aggregator = aggregators[actorSeed % AGGREGATOR_COUNT];
        uint256 serving = _unsettledQueries(aggregator);

        vm.prank(aggregator);
        try market.rotateAggregatorKey(keccak256(abi.encode("x25519", keySeed))) {
            successCount["rotateAggregatorKey"]++;
            if (serving != 0) {
                _violation(string.concat("aggregator rotated its key while serving ", _str(serving), " queries"));
            }
        } catch {}
    }

    /// @param chanceSeed Only one call in two goes ahead, so that most runs keep enough
    /// aggregators to serve queries.
    function beginAggregatorExit(uint256 actorSeed, uint256 chanceSeed) external atCurrentTime {
        if (chanceSeed % 2 != 1) return;
        address aggregator = aggregators[actorSeed % AGGREGATOR_COUNT];

        vm.prank(aggregator);
        try market.beginAggregatorExit() {
            successCount["beginAggregatorExit"]++;
        } catch {}
    }

    /// @param jump Whether to warp to the end of the unbonding period first.
    function withdrawAggregatorStake(uint256 actorSeed, bool jump, uint256 offsetSeed) external atCurrentTime {
        address aggregator = _pickExiting(aggregators, actorSeed, false);
        IDataMarket.AggregatorInfo memory info = market.aggregatorInfo(aggregator);
        if (jump && info.exitRequestedAt != 0) {
            _advanceTo(info.exitRequestedAt + unbondingPeriod + offsetSeed % 2);
        }
        uint256 serving = _unsettledQueries(aggregator);
        uint256 balanceBefore = aggregator.balance;

        vm.prank(aggregator);
        try market.withdrawAggregatorStake() {
            uint256 paid = aggregator.balance - balanceBefore;
            ghostStakeWithdrawn += paid;
            ghostWithdrawnBy[aggregator] += paid;
            successCount["withdrawAggregatorStake"]++;
            if (paid != info.stake) {
                _violation(
                    string.concat("aggregator stake withdrawal paid ", _str(paid), ", stake was ", _str(info.stake))
                );
            }
            if (serving != 0) {
                _violation(string.concat("aggregator withdrew while serving ", _str(serving), " queries"));
            }
            if (info.exitRequestedAt == 0 || currentTime < info.exitRequestedAt + unbondingPeriod) {
                _violation("aggregator withdrew before the unbonding period ended");
            }
        } catch {}
    }

    // ---------------------------------------------------------------------------------------------
    // Query lifecycle
    // ---------------------------------------------------------------------------------------------

    /// @param shapeSeed Template, K, L, epsilon, owner bounds and encoded bound.
    /// @param priceSeed Price per owner, fee per aggregator, and a rare wrong payment.
    /// @param timingSeed The four deadlines.
    /// @param pickSeed Which registered aggregators serve.
    function proposeQuery(
        uint256 analystSeed,
        uint256 shapeSeed,
        uint256 priceSeed,
        uint256 timingSeed,
        uint256 pickSeed
    ) external atCurrentTime {
        if (market.queryCount() >= MAX_QUERIES) return;
        address[] memory chosen = _chooseAggregators(shapeSeed, pickSeed);
        if (chosen.length < 2) return;
        IDataMarket.QueryParams memory params = _randomParams(shapeSeed, priceSeed, timingSeed, chosen);
        _propose(analysts[analystSeed % ANALYST_COUNT], params, priceSeed % 32 == 1);
    }

    /// @notice Proposes a query with the given parameters; the test's `setUp` uses it to start
    /// every run with queries at several stages. The fuzzer does not call it.
    function proposeFixedQuery(uint256 analystIndex, IDataMarket.QueryParams calldata params)
        external
        atCurrentTime
    {
        _propose(analysts[analystIndex], params, false);
    }

    /// @param steps How many of the remaining assigned aggregators accept (see `_steps`).
    function acceptQuery(uint256 querySeed, uint256 aggregatorSeed, uint256 steps) external atCurrentTime {
        uint256 queryId = _pickQuery(querySeed, PROPOSED);
        if (queryId == 0) return;
        address[] memory assigned = market.queryInfo(queryId).params.aggregators;
        steps = _steps(steps, assigned.length);

        for (uint256 i = 0; i < assigned.length && steps != 0; i++) {
            address aggregator = assigned[_cycle(aggregatorSeed, i, assigned.length)];
            if (market.aggregatorQueryState(queryId, aggregator).accepted) continue;
            steps--;
            vm.prank(aggregator);
            try market.acceptQuery(queryId) {
                successCount["acceptQuery"]++;
            } catch {}
        }
        _syncStatus(queryId);
    }

    /// @param steps How many owners try to submit, up to three (see `_steps`).
    /// @param byteSeed Ciphertext bytes, and a rare wrong ciphertext length.
    function submitShares(uint256 querySeed, uint256 ownerSeed, uint256 steps, uint256 byteSeed)
        external
        atCurrentTime
    {
        uint256 queryId = _pickQuery(querySeed, OPEN);
        if (queryId == 0) return;
        steps = _steps(steps, 3);

        for (uint256 i = 0; i < OWNER_COUNT && steps != 0; i++) {
            address owner = owners[_cycle(ownerSeed, i, OWNER_COUNT)];
            if (market.submissionState(queryId, owner) != IDataMarket.SubmissionState.None) continue;
            steps--;
            _submitOne(queryId, owner, uint256(keccak256(abi.encode(byteSeed, i))));
        }
    }

    /// @param jump Whether to warp to the start of the complaint window first.
    function complain(uint256 querySeed, uint256 aggregatorSeed, uint256 ownerSeed, bool jump)
        external
        atCurrentTime
    {
        uint256 queryId = _pickQuery(querySeed, OPEN);
        if (queryId == 0) return;
        IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
        address aggregator = info.params.aggregators[aggregatorSeed % info.params.aggregators.length];
        address owner = _pickOwner(queryId, ownerSeed, IDataMarket.SubmissionState.Submitted);
        if (owner == address(0)) return;
        if (jump) _advanceTo(_closeTime(info));

        vm.prank(aggregator);
        try market.complain(queryId, owner) {
            ghostEpsilonReserved[owner] -= info.params.epsilon;
            successCount["complain"]++;
            uint256 closedAt = _closeTime(info);
            if (currentTime < closedAt || currentTime > closedAt + complaintPeriod) {
                _violation(string.concat("complaint accepted outside its window in query ", _str(queryId)));
            }
        } catch {}
    }

    /// @param steps How many of the assigned aggregators try to commit (see `_steps`).
    /// @param shareSeed The random aggregate shares and salts the handler remembers for the reveal.
    /// @param jump Whether to warp to the opening of the commit window first.
    function commitAggregate(uint256 querySeed, uint256 aggregatorSeed, uint256 steps, uint256 shareSeed, bool jump)
        external
        atCurrentTime
    {
        uint256 queryId = _pickCommittable(querySeed);
        if (queryId == 0) queryId = _pickQuery(querySeed, OPEN);
        if (queryId == 0) return;
        IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
        uint256 opensAfter = _closeTime(info) + complaintPeriod;
        if (jump && opensAfter + 1 <= info.params.commitDeadline) _advanceTo(opensAfter + 1);
        address[] memory assigned = info.params.aggregators;
        steps = _steps(steps, assigned.length);

        for (uint256 i = 0; i < assigned.length && steps != 0; i++) {
            address aggregator = assigned[_cycle(aggregatorSeed, i, assigned.length)];
            if (market.aggregatorQueryState(queryId, aggregator).committed) continue;
            steps--;
            uint64[] memory share = _randomShare(info.params.outputLength, uint256(keccak256(abi.encode(shareSeed, i))));
            bytes32 salt = keccak256(abi.encode("salt", shareSeed, i));
            bytes32 commitment = keccak256(abi.encode(queryId, aggregator, share, salt));

            vm.prank(aggregator);
            try market.commitAggregate(queryId, commitment) {
                _committed[queryId][aggregator] = CommittedShare(share, salt);
                successCount["commitAggregate"]++;
            } catch {}
        }
    }

    /// @param steps How many committed aggregators try to reveal (see `_steps`).
    /// @param tamperSeed One time in eight, the first reveal alters its value, salt or length,
    /// which the contract must reject.
    function revealAggregate(uint256 querySeed, uint256 aggregatorSeed, uint256 steps, uint256 tamperSeed)
        external
        atCurrentTime
    {
        uint256 queryId = _pickFullyCommitted(querySeed);
        if (queryId == 0) queryId = _pickQuery(querySeed, OPEN);
        if (queryId == 0) return;
        address[] memory assigned = market.queryInfo(queryId).params.aggregators;
        steps = _steps(steps, assigned.length);
        bool tamper = tamperSeed % 8 == 1;

        for (uint256 i = 0; i < assigned.length && steps != 0; i++) {
            address aggregator = assigned[_cycle(aggregatorSeed, i, assigned.length)];
            IDataMarket.AggregatorQueryState memory state = market.aggregatorQueryState(queryId, aggregator);
            if (!state.committed || state.revealed) continue;
            steps--;
            _revealOne(queryId, aggregator, tamper ? 1 + (tamperSeed >> 8) % 2 ** 64 : 0);
            tamper = false;
        }
        _syncStatus(queryId);
        if (statusSeen[queryId] == IDataMarket.QueryStatus.Published) successCount["published"]++;
    }

    /// @notice Advances the clock by 1 second to 12 hours.
    function warp(uint256 secondsSeed) external atCurrentTime {
        _advanceTo(currentTime + 1 + secondsSeed % 12 hours);
    }

    /// @param jumpSeed One call in four first warps past the accept deadline (proposed) or the close
    /// (open); rarer than other jumps because it ends a query that might still publish.
    function cancel(uint256 querySeed, uint256 jumpSeed) external atCurrentTime {
        uint256 queryId = _pickQuery(querySeed, PROPOSED | OPEN);
        if (queryId == 0) return;
        IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
        if (jumpSeed % 4 == 1) {
            bool proposed = info.status == IDataMarket.QueryStatus.Proposed;
            _advanceTo((proposed ? info.params.acceptDeadline : _closeTime(info)) + 1);
        }
        uint256 marketBalance = address(market).balance;

        vm.prank(keeper);
        try market.cancel(queryId) {
            statusSeen[queryId] = IDataMarket.QueryStatus.Cancelled;
            successCount["cancel"]++;
            _checkCancelAllowed(queryId, info);
            if (address(market).balance != marketBalance) _violation("cancel moved value");
        } catch {}
    }

    /// @param jumpSeed One call in four first warps past the commit deadline (not all committed) or
    /// the reveal deadline (all committed); rarer than other jumps because it ends the query.
    function fail(uint256 querySeed, uint256 jumpSeed) external atCurrentTime {
        uint256 queryId = _pickQuery(querySeed, OPEN);
        if (queryId == 0) return;
        IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
        if (jumpSeed % 4 == 1) {
            bool allCommitted = info.committedCount == info.params.aggregators.length;
            _advanceTo((allCommitted ? info.params.revealDeadline : info.params.commitDeadline) + 1);
        }
        uint256 k = info.params.aggregators.length;
        uint256[] memory stakesBefore = new uint256[](k);
        for (uint256 i = 0; i < k; i++) {
            stakesBefore[i] = market.aggregatorInfo(info.params.aggregators[i]).stake;
        }

        vm.prank(keeper);
        try market.fail(queryId) {
            statusSeen[queryId] = IDataMarket.QueryStatus.Failed;
            successCount["fail"]++;
            _recordSlashing(queryId, info, stakesBefore);
        } catch {}
    }

    // ---------------------------------------------------------------------------------------------
    // Payouts
    // ---------------------------------------------------------------------------------------------

    /// @param targeted Whether to pick a published query and an owner with a payable submission;
    /// otherwise any query and owner, which tries double claims and claims on unpaid queries.
    function claim(uint256 querySeed, uint256 ownerSeed, bool targeted) external atCurrentTime {
        (uint256 queryId, address owner) = targeted
            ? _pickPayableOwner(querySeed, ownerSeed)
            : (_anyQuery(querySeed), owners[ownerSeed % OWNER_COUNT]);
        if (queryId == 0 || owner == address(0)) return;
        IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
        IDataMarket.SubmissionState stateBefore = market.submissionState(queryId, owner);
        uint256 balanceBefore = owner.balance;

        vm.prank(owner);
        try market.claim(queryId) {
            uint256 paid = owner.balance - balanceBefore;
            _recordPayout(queryId, owner, paid);
            ghostClaimCount[queryId][owner]++;
            successCount["claim"]++;
            _checkClaim(queryId, info, stateBefore, paid);
        } catch {}
    }

    /// @param ownerSeed Picks an owner with a payable submission if there is one.
    /// @param listSeed Up to four query ids, drawn from a few published ones so that lists repeat ids.
    function claimMany(uint256 ownerSeed, uint256 listSeed, uint256 lengthSeed) external atCurrentTime {
        uint256 count = market.queryCount();
        if (count == 0) return;
        (, address owner) = _pickPayableOwner(listSeed, ownerSeed);
        if (owner == address(0)) owner = owners[ownerSeed % OWNER_COUNT];
        uint256[] memory queryIds = new uint256[](1 + lengthSeed % 4);
        for (uint256 i = 0; i < queryIds.length; i++) {
            uint256 seed = listSeed >> (16 * i);
            uint256 published = _pickQuery(seed, PUBLISHED);
            queryIds[i] = (seed >> 12) % 4 == 1 || published == 0 ? 1 + seed % count : published;
        }
        IDataMarket.SubmissionState[] memory statesBefore = new IDataMarket.SubmissionState[](queryIds.length);
        for (uint256 i = 0; i < queryIds.length; i++) {
            statesBefore[i] = market.submissionState(queryIds[i], owner);
        }
        uint256 balanceBefore = owner.balance;

        vm.prank(owner);
        try market.claimMany(queryIds) {
            successCount["claimMany"]++;
            _recordClaimMany(owner, queryIds, statesBefore, owner.balance - balanceBefore);
        } catch {}
    }

    function claimFee(uint256 querySeed, uint256 aggregatorSeed, bool targeted) external atCurrentTime {
        uint256 queryId = targeted ? _pickQuery(querySeed, PUBLISHED) : _anyQuery(querySeed);
        if (queryId == 0) return;
        IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
        address aggregator = targeted
            ? info.params.aggregators[aggregatorSeed % info.params.aggregators.length]
            : aggregators[aggregatorSeed % AGGREGATOR_COUNT];
        IDataMarket.AggregatorQueryState memory stateBefore = market.aggregatorQueryState(queryId, aggregator);
        uint256 balanceBefore = aggregator.balance;

        vm.prank(aggregator);
        try market.claimFee(queryId) {
            uint256 paid = aggregator.balance - balanceBefore;
            _recordPayout(queryId, aggregator, paid);
            ghostFeeCount[queryId][aggregator]++;
            successCount["claimFee"]++;
            if (paid != info.params.feePerAggregator) {
                _violation(string.concat("fee for query ", _str(queryId), " paid ", _str(paid)));
            }
            if (info.status != IDataMarket.QueryStatus.Published || !stateBefore.revealed || stateBefore.feeClaimed) {
                _violation(string.concat("fee paid without a reveal or twice in query ", _str(queryId)));
            }
        } catch {}
    }

    /// @param targeted Whether the analyst calls; otherwise a random owner tries to take the refund.
    function refund(uint256 querySeed, uint256 callerSeed, bool targeted) external atCurrentTime {
        uint256 queryId = targeted ? _pickQuery(querySeed, PUBLISHED | CANCELLED | FAILED) : _anyQuery(querySeed);
        if (queryId == 0) return;
        IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
        address caller = targeted ? info.analyst : owners[callerSeed % OWNER_COUNT];
        uint256 expected = _expectedRefund(queryId, info);
        uint256 balanceBefore = info.analyst.balance;
        uint256 marketBalanceBefore = address(market).balance;

        vm.prank(caller);
        try market.refund(queryId) {
            uint256 paid = info.analyst.balance - balanceBefore;
            _recordPayout(queryId, info.analyst, paid);
            ghostRefundCount[queryId]++;
            successCount["refund"]++;
            if (caller != info.analyst) _violation("a caller other than the analyst triggered a refund");
            if (paid != expected || marketBalanceBefore - address(market).balance != paid) {
                _violation(
                    string.concat("refund of query ", _str(queryId), " paid ", _str(paid), ", expected ", _str(expected))
                );
            }
            if (info.analystRefunded) _violation(string.concat("query ", _str(queryId), " refunded twice"));
        } catch {}
    }

    function releaseBudget(uint256 querySeed, uint256 ownerSeed, bool targeted) external atCurrentTime {
        uint256 queryId = targeted ? _pickQuery(querySeed, CANCELLED | FAILED) : _anyQuery(querySeed);
        if (queryId == 0) return;
        address owner = targeted
            ? _pickOwner(queryId, ownerSeed, IDataMarket.SubmissionState.Submitted)
            : owners[ownerSeed % OWNER_COUNT];
        if (owner == address(0)) return;
        IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
        IDataMarket.SubmissionState stateBefore = market.submissionState(queryId, owner);
        uint256 marketBalance = address(market).balance;

        vm.prank(owner);
        try market.releaseBudget(queryId) {
            successCount["releaseBudget"]++;
            bool unpaidQuery = info.status == IDataMarket.QueryStatus.Cancelled
                || info.status == IDataMarket.QueryStatus.Failed;
            if (!unpaidQuery || stateBefore != IDataMarket.SubmissionState.Submitted) {
                _violation(string.concat("budget released from query ", _str(queryId), " in a wrong state"));
            } else {
                ghostEpsilonReserved[owner] -= info.params.epsilon;
            }
            if (address(market).balance != marketBalance) _violation("releaseBudget moved value");
        } catch {}
    }

    // ---------------------------------------------------------------------------------------------
    // Views for the invariants
    // ---------------------------------------------------------------------------------------------

    function queryGhost(uint256 queryId) external view returns (QueryGhost memory) {
        return _queryGhost[queryId];
    }

    function revealedShare(uint256 queryId, address aggregator) external view returns (uint64[] memory) {
        return _revealed[queryId][aggregator];
    }

    /// @return claims Owner claims per owner, in `owners` order.
    /// @return fees Fee payments per aggregator, in `aggregators` order.
    /// @return refunds Analyst refunds.
    /// @return ghost The query's escrow, slashed stake and payouts.
    function payoutRecord(uint256 queryId)
        external
        view
        returns (uint256[] memory claims, uint256[] memory fees, uint256 refunds, QueryGhost memory ghost)
    {
        claims = new uint256[](OWNER_COUNT);
        for (uint256 i = 0; i < OWNER_COUNT; i++) {
            claims[i] = ghostClaimCount[queryId][owners[i]];
        }
        fees = new uint256[](AGGREGATOR_COUNT);
        for (uint256 i = 0; i < AGGREGATOR_COUNT; i++) {
            fees[i] = ghostFeeCount[queryId][aggregators[i]];
        }
        refunds = ghostRefundCount[queryId];
        ghost = _queryGhost[queryId];
    }

    /// @return actors Every actor the handler pranks.
    /// @return balances The balance each actor should have: the handler funds exactly what a
    /// payable call sends (and takes it back when the call reverts), so an actor holds only what
    /// the market paid it.
    function expectedBalances() external view returns (address[] memory actors, uint256[] memory balances) {
        actors = new address[](OWNER_COUNT + AGGREGATOR_COUNT + ANALYST_COUNT + 1);
        uint256 n = 0;
        for (uint256 i = 0; i < OWNER_COUNT; i++) {
            actors[n++] = owners[i];
        }
        for (uint256 i = 0; i < AGGREGATOR_COUNT; i++) {
            actors[n++] = aggregators[i];
        }
        for (uint256 i = 0; i < ANALYST_COUNT; i++) {
            actors[n++] = analysts[i];
        }
        actors[n] = keeper;

        balances = new uint256[](actors.length);
        for (uint256 i = 0; i < actors.length; i++) {
            balances[i] = ghostPaidTo[actors[i]] + ghostWithdrawnBy[actors[i]];
        }
    }

    function ownerList() external view returns (address[] memory) {
        return owners;
    }

    function aggregatorList() external view returns (address[] memory) {
        return aggregators;
    }

    /// @notice The entry points the fuzzer calls.
    function entryPoints() external pure returns (bytes4[] memory selectors) {
        selectors = new bytes4[](24);
        selectors[0] = this.registerOwner.selector;
        selectors[1] = this.updateOwnerPolicy.selector;
        selectors[2] = this.topUpOwnerStake.selector;
        selectors[3] = this.beginOwnerExit.selector;
        selectors[4] = this.withdrawOwnerStake.selector;
        selectors[5] = this.registerAggregator.selector;
        selectors[6] = this.topUpAggregatorStake.selector;
        selectors[7] = this.rotateAggregatorKey.selector;
        selectors[8] = this.beginAggregatorExit.selector;
        selectors[9] = this.withdrawAggregatorStake.selector;
        selectors[10] = this.proposeQuery.selector;
        selectors[11] = this.acceptQuery.selector;
        selectors[12] = this.submitShares.selector;
        selectors[13] = this.complain.selector;
        selectors[14] = this.commitAggregate.selector;
        selectors[15] = this.revealAggregate.selector;
        selectors[16] = this.warp.selector;
        selectors[17] = this.cancel.selector;
        selectors[18] = this.fail.selector;
        selectors[19] = this.claim.selector;
        selectors[20] = this.claimMany.selector;
        selectors[21] = this.claimFee.selector;
        selectors[22] = this.refund.selector;
        selectors[23] = this.releaseBudget.selector;
    }

    // ---------------------------------------------------------------------------------------------
    // Steps shared by the entry points
    // ---------------------------------------------------------------------------------------------

    /// @param wrongPayment Whether to send one wei more than the escrow, which must be rejected.
    function _propose(address analyst, IDataMarket.QueryParams memory params, bool wrongPayment) private {
        uint256 escrow = uint256(params.pricePerOwner) * params.maxOwners
            + uint256(params.feePerAggregator) * params.aggregators.length;
        uint256 payment = wrongPayment ? escrow + 1 : escrow;
        bytes memory specJson = abi.encodePacked('{"template":', _str(params.templateId), "}");

        vm.deal(analyst, analyst.balance + payment);
        vm.prank(analyst);
        try market.proposeQuery{value: payment}(params, specJson) returns (uint256 queryId) {
            ghostEscrowDeposited += payment;
            _queryGhost[queryId].escrowDeposited = payment;
            statusSeen[queryId] = IDataMarket.QueryStatus.Proposed;
            successCount["proposeQuery"]++;
            if (wrongPayment) {
                _violation(string.concat("proposal accepted ", _str(payment), " wei for escrow ", _str(escrow)));
            }
        } catch {
            vm.deal(analyst, analyst.balance - payment); // takes back the unspent funding
        }
    }

    function _submitOne(uint256 queryId, address owner, uint256 byteSeed) private {
        IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
        string memory refusal = _policyRefusal(market.ownerInfo(owner), info.params);
        uint256 length = market.ciphertextLength(queryId);
        if (length != 32 + 8 * uint256(info.params.outputLength) + 16) {
            _violation(string.concat("ciphertextLength returned ", _str(length)));
        }
        bool wrongLength = byteSeed % 32 == 0;
        bytes[] memory ciphertexts = _ciphertexts(info.params.aggregators.length, wrongLength ? length + 1 : length, byteSeed);

        vm.prank(owner);
        try market.submitShares(queryId, ciphertexts) {
            ghostEpsilonReserved[owner] += info.params.epsilon;
            successCount["submitShares"]++;
            if (bytes(refusal).length != 0) _violation(refusal);
            if (wrongLength) _violation("submission accepted a ciphertext of the wrong length");
            if (info.submittedCount >= info.params.maxOwners) _violation("submission beyond maxOwners accepted");
            if (currentTime > info.params.submitDeadline) _violation("submission accepted after the deadline");
        } catch {}
    }

    /// @return refusal Why the owner's policy forbids this submission, or "" if it allows it.
    /// Boundary times count as allowed, so that only a clear breach is reported.
    function _policyRefusal(IDataMarket.OwnerInfo memory owner, IDataMarket.QueryParams memory params)
        private
        view
        returns (string memory refusal)
    {
        if (!owner.registered) return "unregistered owner submitted";
        if (owner.exitRequestedAt != 0) return "exiting owner submitted";
        if (owner.stake < minOwnerStake) return "owner with too little stake submitted";
        if (currentTime > owner.policy.expiresAt) return "owner with an expired policy submitted";
        if ((owner.policy.templateMask >> params.templateId) & 1 == 0) return "owner submitted to a disallowed template";
        if (params.epsilon == 0 && !owner.policy.allowExact) return "owner submitted to an exact query without consent";
        if (params.pricePerOwner < owner.policy.minPricePerQuery) return "owner submitted below its minimum price";
        if (uint256(owner.epsilonUsed) + params.epsilon > owner.policy.epsilonBudget) {
            return string.concat(
                "owner submitted beyond its budget: used ",
                _str(owner.epsilonUsed),
                " + ",
                _str(params.epsilon),
                " > ",
                _str(owner.policy.epsilonBudget)
            );
        }
        return "";
    }

    function _revealOne(uint256 queryId, address aggregator, uint256 tamperKind) private {
        CommittedShare storage committed = _committed[queryId][aggregator];
        uint64[] memory share = committed.share;
        bytes32 salt = committed.salt;
        if (share.length == 0) return;
        // tamperKind 0 reveals honestly; otherwise it alters one value, the salt or the length.
        if (tamperKind != 0) {
            uint256 kind = tamperKind % 3;
            if (kind == 0) {
                uint256 index = (tamperKind >> 8) % share.length;
                unchecked {
                    share[index] += 1;
                }
            } else if (kind == 1) {
                salt = bytes32(uint256(salt) ^ 1);
            } else {
                uint64[] memory longer = new uint64[](share.length + 1);
                for (uint256 i = 0; i < share.length; i++) {
                    longer[i] = share[i];
                }
                share = longer;
            }
        }

        vm.prank(aggregator);
        try market.revealAggregate(queryId, share, salt) {
            successCount["revealAggregate"]++;
            if (tamperKind != 0) {
                _violation(string.concat("reveal not matching its commitment accepted in query ", _str(queryId)));
            }
            _revealed[queryId][aggregator] = share;
        } catch {}
    }

    function _checkCancelAllowed(uint256 queryId, IDataMarket.QueryInfo memory before) private {
        if (before.status == IDataMarket.QueryStatus.Proposed) {
            if (currentTime <= before.params.acceptDeadline) {
                _violation(string.concat("query ", _str(queryId), " cancelled before its accept deadline"));
            }
            return;
        }
        uint256 included = before.submittedCount - before.excludedCount;
        if (included >= before.params.minOwners) {
            _violation(
                string.concat("query ", _str(queryId), " cancelled with ", _str(included), " included owners")
            );
        }
        if (before.closedAt == 0 && currentTime <= before.params.submitDeadline) {
            _violation(string.concat("query ", _str(queryId), " cancelled while submissions were open"));
        }
    }

    /// @dev An aggregator missed a deadline if it has not committed after `commitDeadline`, or, once
    /// all K committed, has not revealed after `revealDeadline`. While a commit is missing nobody can
    /// reveal, so a committed aggregator is then innocent. Each aggregator that missed loses
    /// `min(slashAmount, stake)` and no other aggregator loses anything.
    function _recordSlashing(uint256 queryId, IDataMarket.QueryInfo memory before, uint256[] memory stakesBefore)
        private
    {
        uint256 total = 0;
        bool allCommitted = before.committedCount == stakesBefore.length;
        for (uint256 i = 0; i < stakesBefore.length; i++) {
            address aggregator = before.params.aggregators[i];
            IDataMarket.AggregatorQueryState memory state = market.aggregatorQueryState(queryId, aggregator);
            bool missedCommit = !state.committed && currentTime > before.params.commitDeadline;
            bool missedReveal = allCommitted && !state.revealed && currentTime > before.params.revealDeadline;
            uint256 expected = missedCommit || missedReveal ? _min(slashAmount, stakesBefore[i]) : 0;
            uint256 slashed = stakesBefore[i] - market.aggregatorInfo(aggregator).stake;
            if (slashed != expected) {
                _violation(
                    string.concat(
                        "fail of query ", _str(queryId), " slashed ", _str(slashed), ", expected ", _str(expected)
                    )
                );
            }
            total += slashed;
        }
        _queryGhost[queryId].slashed += total;
        ghostStakeSlashed += total;
        if (market.queryInfo(queryId).slashed != total) {
            _violation(string.concat("query ", _str(queryId), " records a slashed total other than the stakes lost"));
        }
    }

    function _checkClaim(
        uint256 queryId,
        IDataMarket.QueryInfo memory info,
        IDataMarket.SubmissionState stateBefore,
        uint256 paid
    ) private {
        if (paid != info.params.pricePerOwner) {
            _violation(string.concat("claim on query ", _str(queryId), " paid ", _str(paid)));
        }
        if (info.status != IDataMarket.QueryStatus.Published || stateBefore != IDataMarket.SubmissionState.Submitted) {
            _violation(string.concat("claim paid on query ", _str(queryId), " without a payable submission"));
        }
    }

    /// @dev Credits each listed query whose submission went from Submitted to Settled, once per
    /// query even when the list repeats it, and checks the transfer equals their prices.
    function _recordClaimMany(
        address owner,
        uint256[] memory queryIds,
        IDataMarket.SubmissionState[] memory statesBefore,
        uint256 paid
    ) private {
        uint256 expected = 0;
        for (uint256 i = 0; i < queryIds.length; i++) {
            uint256 queryId = queryIds[i];
            if (_listedBefore(queryIds, i)) continue;
            bool settled = market.submissionState(queryId, owner) == IDataMarket.SubmissionState.Settled;
            if (statesBefore[i] != IDataMarket.SubmissionState.Submitted || !settled) continue;
            IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
            if (info.status != IDataMarket.QueryStatus.Published) {
                _violation(string.concat("claimMany settled unpublished query ", _str(queryId)));
            }
            uint256 price = info.params.pricePerOwner;
            expected += price;
            _recordPayout(queryId, owner, price);
            ghostClaimCount[queryId][owner]++;
        }
        if (paid != expected) {
            _violation(string.concat("claimMany paid ", _str(paid), ", expected ", _str(expected)));
            // Counts whatever was paid beyond the credited claims, so the totals still balance.
            if (paid > expected) {
                ghostPaidOut += paid - expected;
                ghostPaidTo[owner] += paid - expected;
            }
        }
    }

    function _expectedRefund(uint256 queryId, IDataMarket.QueryInfo memory info) private view returns (uint256) {
        if (info.status == IDataMarket.QueryStatus.Published) {
            uint256 included = info.submittedCount - info.excludedCount;
            return uint256(info.params.pricePerOwner) * (info.params.maxOwners - included);
        }
        QueryGhost memory ghost = _queryGhost[queryId];
        return ghost.escrowDeposited + ghost.slashed;
    }

    function _recordPayout(uint256 queryId, address payee, uint256 amount) private {
        ghostPaidOut += amount;
        ghostPaidTo[payee] += amount;
        _queryGhost[queryId].paidOut += amount;
    }

    function _raiseBudgetCeiling(address owner, uint256 budget) private {
        if (budget > ghostBudgetCeiling[owner]) ghostBudgetCeiling[owner] = budget;
    }

    function _syncStatus(uint256 queryId) private {
        statusSeen[queryId] = market.queryInfo(queryId).status;
    }

    function _violation(string memory what) private {
        if (violationCount == 0) firstViolation = what;
        violationCount++;
    }

    function _advanceTo(uint256 time) private {
        if (time <= currentTime) return;
        currentTime = time;
        vm.warp(time);
    }

    // ---------------------------------------------------------------------------------------------
    // Random inputs
    // ---------------------------------------------------------------------------------------------

    /// @dev Prices 0 to 0.08 ether, budgets 0 to 5.0 epsilon, usually every template, expiry 1 to
    /// 61 days ahead.
    function _randomPolicy(uint256 seed) private view returns (IDataMarket.OwnerPolicy memory policy) {
        policy.minPricePerQuery = seed % 4 == 0 ? 0 : uint96((seed >> 8) % 5 * 0.02 ether);
        policy.epsilonBudget = uint64(((seed >> 16) + 3) % 6 * 1_000_000);
        policy.templateMask = (seed >> 24) % 4 == 1 ? uint32((seed >> 32) & 0x7f) : uint32(0x7f);
        policy.allowExact = (seed >> 40) % 2 == 0;
        // Block times stay far below 2^40 seconds.
        // forge-lint: disable-next-line(unsafe-typecast)
        policy.expiresAt = uint40(currentTime + 1 days + (seed >> 48) % 60 days);
    }

    /// @dev Registered aggregators that are not exiting, in a seed-dependent order, cut to a K
    /// between 2 and `maxAggregators`. Returns fewer than two when too few can serve.
    function _chooseAggregators(uint256 shapeSeed, uint256 pickSeed) private view returns (address[] memory chosen) {
        address[] memory candidates = new address[](AGGREGATOR_COUNT);
        uint256 n = 0;
        for (uint256 i = 0; i < AGGREGATOR_COUNT; i++) {
            address aggregator = aggregators[_cycle(pickSeed, i, AGGREGATOR_COUNT)];
            IDataMarket.AggregatorInfo memory info = market.aggregatorInfo(aggregator);
            // One time in eight an exiting aggregator stays in, and the proposal must be rejected.
            bool usable = info.registered && (info.exitRequestedAt == 0 || (pickSeed >> 8) % 8 == 1);
            if (usable) candidates[n++] = aggregator;
        }
        if (n < 2) return new address[](0);
        uint256 maxK = _min(n, maxAggregators);
        uint256 k = 2 + (shapeSeed >> 200) % (maxK - 1);
        chosen = new address[](k);
        for (uint256 i = 0; i < k; i++) {
            chosen[i] = candidates[i];
        }
    }

    function _randomParams(uint256 shapeSeed, uint256 priceSeed, uint256 timingSeed, address[] memory chosen)
        private
        view
        returns (IDataMarket.QueryParams memory params)
    {
        // Each value below is reduced modulo a bound that fits its type; block times stay far below
        // 2^40 seconds.
        // forge-lint: disable-start(unsafe-typecast)
        params.templateId = uint8(shapeSeed % TEMPLATE_COUNT);
        params.outputLength = uint32(1 + (shapeSeed >> 8) % maxOutputLength);
        params.epsilon = (shapeSeed >> 16) % 4 == 1 ? 0 : uint64(250_000 * (1 + (shapeSeed >> 24) % 8));
        params.minOwners = uint32(1 + (shapeSeed >> 32) % 3);
        params.maxOwners = params.minOwners + uint32((shapeSeed >> 40) % 3);
        params.maxAbsEncoded = uint64(1 + (shapeSeed >> 48) % (1 << 40));
        params.aggregators = chosen;
        params.pricePerOwner = uint96(0.01 ether * (1 + (priceSeed >> 8) % 10));
        params.feePerAggregator = uint96(0.005 ether * ((priceSeed >> 16) % 6));

        uint256 acceptDeadline = currentTime + 1 hours + timingSeed % 2 days;
        uint256 submitDeadline = acceptDeadline + 1 hours + (timingSeed >> 64) % 2 days;
        uint256 commitDeadline = submitDeadline + complaintPeriod + 1 hours + (timingSeed >> 128) % 1 days;
        uint256 revealDeadline = commitDeadline + 1 hours + (timingSeed >> 192) % 1 days;
        params.acceptDeadline = uint40(acceptDeadline);
        params.submitDeadline = uint40(submitDeadline);
        params.commitDeadline = uint40(commitDeadline);
        params.revealDeadline = uint40(revealDeadline);
        // forge-lint: disable-end(unsafe-typecast)
    }

    /// @dev Full-range values, so that the sum of K shares wraps modulo 2^64 in most coordinates.
    function _randomShare(uint256 length, uint256 seed) private pure returns (uint64[] memory share) {
        share = new uint64[](length);
        for (uint256 i = 0; i < length; i++) {
            share[i] = uint64(uint256(keccak256(abi.encode(seed, i))));
        }
    }

    function _ciphertexts(uint256 count, uint256 length, uint256 seed) private pure returns (bytes[] memory out) {
        out = new bytes[](count);
        for (uint256 i = 0; i < count; i++) {
            bytes memory ciphertext = new bytes(length);
            bytes32 word;
            for (uint256 j = 0; j < length; j++) {
                if (j % 32 == 0) word = keccak256(abi.encode(seed, i, j));
                ciphertext[j] = word[j % 32];
            }
            out[i] = ciphertext;
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Selection
    // ---------------------------------------------------------------------------------------------

    /// @return The first query, scanning from a seed-chosen id, whose status bit is in `statuses`;
    /// 0 if none.
    function _pickQuery(uint256 seed, uint256 statuses) private view returns (uint256) {
        uint256 count = market.queryCount();
        for (uint256 i = 0; i < count; i++) {
            uint256 queryId = 1 + _cycle(seed, i, count);
            if ((2 ** uint256(statusSeen[queryId]) & statuses) != 0) return queryId;
        }
        return 0;
    }

    /// @return The first open query, scanning from a seed-chosen id, with at least `minOwners`
    /// included owners and an aggregator yet to commit; 0 if none.
    function _pickCommittable(uint256 seed) private view returns (uint256) {
        uint256 count = market.queryCount();
        for (uint256 i = 0; i < count; i++) {
            uint256 queryId = 1 + _cycle(seed, i, count);
            if (statusSeen[queryId] != IDataMarket.QueryStatus.Open) continue;
            IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
            bool enoughOwners = info.submittedCount - info.excludedCount >= info.params.minOwners;
            if (enoughOwners && info.committedCount < info.params.aggregators.length) return queryId;
        }
        return 0;
    }

    /// @return The first open query, scanning from a seed-chosen id, that every assigned
    /// aggregator committed to; 0 if none.
    function _pickFullyCommitted(uint256 seed) private view returns (uint256) {
        uint256 count = market.queryCount();
        for (uint256 i = 0; i < count; i++) {
            uint256 queryId = 1 + _cycle(seed, i, count);
            if (statusSeen[queryId] != IDataMarket.QueryStatus.Open) continue;
            IDataMarket.QueryInfo memory info = market.queryInfo(queryId);
            if (info.committedCount == info.params.aggregators.length) return queryId;
        }
        return 0;
    }

    function _anyQuery(uint256 seed) private view returns (uint256) {
        uint256 count = market.queryCount();
        return count == 0 ? 0 : 1 + seed % count;
    }

    function _pickOwner(uint256 queryId, uint256 seed, IDataMarket.SubmissionState state)
        private
        view
        returns (address)
    {
        for (uint256 i = 0; i < OWNER_COUNT; i++) {
            address owner = owners[_cycle(seed, i, OWNER_COUNT)];
            if (market.submissionState(queryId, owner) == state) return owner;
        }
        return address(0);
    }

    function _pickPayableOwner(uint256 querySeed, uint256 ownerSeed) private view returns (uint256, address) {
        uint256 count = market.queryCount();
        for (uint256 i = 0; i < count; i++) {
            uint256 queryId = 1 + _cycle(querySeed, i, count);
            if (statusSeen[queryId] != IDataMarket.QueryStatus.Published) continue;
            address owner = _pickOwner(queryId, ownerSeed, IDataMarket.SubmissionState.Submitted);
            if (owner != address(0)) return (queryId, owner);
        }
        return (0, address(0));
    }

    /// @return The first actor, scanning from a seed-chosen one, that is exiting and still has
    /// stake; the seed-chosen actor if none is.
    function _pickExiting(address[] storage actors, uint256 seed, bool areOwners) private view returns (address) {
        for (uint256 i = 0; i < actors.length; i++) {
            address actor = actors[_cycle(seed, i, actors.length)];
            (uint256 exitRequestedAt, uint256 stake) = areOwners
                ? (uint256(market.ownerInfo(actor).exitRequestedAt), market.ownerInfo(actor).stake)
                : (uint256(market.aggregatorInfo(actor).exitRequestedAt), market.aggregatorInfo(actor).stake);
            if (exitRequestedAt != 0 && stake != 0) return actor;
        }
        return actors[seed % actors.length];
    }

    /// @return unsettled Submissions of `owner` still in state Submitted, over every query.
    function _unsettledSubmissions(address owner) private view returns (uint256 unsettled) {
        uint256 count = market.queryCount();
        for (uint256 queryId = 1; queryId <= count; queryId++) {
            if (market.submissionState(queryId, owner) == IDataMarket.SubmissionState.Submitted) unsettled++;
        }
    }

    /// @return serving Queries `aggregator` accepted that are still proposed or open.
    function _unsettledQueries(address aggregator) private view returns (uint256 serving) {
        uint256 count = market.queryCount();
        for (uint256 queryId = 1; queryId <= count; queryId++) {
            IDataMarket.QueryStatus status = statusSeen[queryId];
            bool live = status == IDataMarket.QueryStatus.Proposed || status == IDataMarket.QueryStatus.Open;
            if (live && market.aggregatorQueryState(queryId, aggregator).accepted) serving++;
        }
    }

    function _closeTime(IDataMarket.QueryInfo memory info) private pure returns (uint256) {
        return info.closedAt != 0 ? info.closedAt : info.params.submitDeadline;
    }

    function _listedBefore(uint256[] memory list, uint256 index) private pure returns (bool) {
        for (uint256 i = 0; i < index; i++) {
            if (list[i] == list[index]) return true;
        }
        return false;
    }

    function _actor(string memory role, uint256 index) private returns (address actor) {
        actor = address(uint160(uint256(keccak256(abi.encode("pmsr invariant actor", role, index)))));
        vm.label(actor, string.concat(role, "-", _str(index)));
    }

    /// @return Three times in four `max`, so that one call moves every remaining participant and
    /// runs reach publication; otherwise 1 to `max`.
    function _steps(uint256 seed, uint256 max) private pure returns (uint256) {
        return seed % 4 == 1 ? 1 + (seed >> 2) % max : max;
    }

    /// @return The `offset`-th index after a seed-chosen start, cycling through `length` slots.
    function _cycle(uint256 seed, uint256 offset, uint256 length) private pure returns (uint256) {
        return (seed % length + offset) % length;
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }

    function _str(uint256 value) private pure returns (string memory) {
        if (value == 0) return "0";
        uint256 digits = 0;
        for (uint256 rest = value; rest != 0; rest /= 10) {
            digits++;
        }
        bytes memory out = new bytes(digits);
        for (uint256 rest = value; rest != 0; rest /= 10) {
            // forge-lint: disable-next-line(unsafe-typecast)
            out[--digits] = bytes1(uint8(48 + rest % 10)); // an ASCII digit
        }
        return string(out);
    }
}
