// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {DataMarket} from "../../DataMarket.sol";
import {IDataMarket} from "../../interfaces/IDataMarket.sol";
import {vm} from "./Vm.sol";

/// @notice Shared set-up for the market's unit tests: a deployed market, three registered
/// aggregators, a funded analyst, and helpers that drive a query through its life.
abstract contract MarketTestBase {
    uint256 internal constant MIN_OWNER_STAKE = 1 ether;
    uint256 internal constant MIN_AGGREGATOR_STAKE = 10 ether;
    uint256 internal constant UNBONDING_PERIOD = 7 days;
    uint40 internal constant COMPLAINT_PERIOD = 1 hours;
    uint256 internal constant SLASH_AMOUNT = 4 ether;
    uint256 internal constant MAX_AGGREGATORS = 5;
    uint32 internal constant MAX_OUTPUT_LENGTH = 64;

    uint40 internal constant START = 1_700_000_000;
    uint64 internal constant EPSILON = 500_000;
    uint96 internal constant PRICE = 0.01 ether;
    uint96 internal constant FEE = 0.1 ether;
    uint256 internal constant AGGREGATOR_STAKE = 20 ether;
    uint64 internal constant ENCODED_SUM_LIMIT = 2 ** 62;

    bytes internal constant SPEC_JSON = bytes('{"template":"sum","version":1}');

    DataMarket internal market;
    address internal analyst = address(0xA11CE);
    address internal stranger = address(0x5742A);
    address[] internal aggregators;

    function setUp() public virtual {
        vm.warp(START);
        market = new DataMarket(
            MIN_OWNER_STAKE,
            MIN_AGGREGATOR_STAKE,
            UNBONDING_PERIOD,
            COMPLAINT_PERIOD,
            SLASH_AMOUNT,
            MAX_AGGREGATORS,
            MAX_OUTPUT_LENGTH
        );
        for (uint256 i; i < 3; ++i) {
            aggregators.push(_registerAggregator(i));
        }
        vm.deal(analyst, 1_000_000 ether);
    }

    // ---------------------------------------------------------------------------------------------
    // Participants
    // ---------------------------------------------------------------------------------------------

    function _aggregatorAddress(uint256 i) internal pure returns (address) {
        // Test indices stay far below 2^160, so the address cannot wrap.
        // forge-lint: disable-next-line(unsafe-typecast)
        return address(uint160(0xA66000 + i));
    }

    function _encryptionKey(address aggregator) internal pure returns (bytes32) {
        return keccak256(abi.encode("x25519 public key", aggregator));
    }

    function _registerAggregator(uint256 i) internal returns (address aggregator) {
        aggregator = _aggregatorAddress(i);
        vm.deal(aggregator, AGGREGATOR_STAKE);
        vm.prank(aggregator);
        market.registerAggregator{value: AGGREGATOR_STAKE}(_encryptionKey(aggregator));
    }

    function _ownerAddress(uint256 i) internal pure returns (address) {
        // Test indices stay far below 2^160, so the address cannot wrap.
        // forge-lint: disable-next-line(unsafe-typecast)
        return address(uint160(0x0E0000 + i));
    }

    function _datasetCommitment(address owner) internal pure returns (bytes32) {
        return keccak256(abi.encode("dataset", owner));
    }

    /// A policy that accepts the default query: every template, the default price, room for ten
    /// default queries, valid for a year.
    function _policy() internal pure returns (IDataMarket.OwnerPolicy memory) {
        return IDataMarket.OwnerPolicy({
            minPricePerQuery: PRICE,
            epsilonBudget: 10 * EPSILON,
            templateMask: type(uint32).max,
            allowExact: false,
            expiresAt: START + 365 days
        });
    }

    function _registerOwner(address owner, IDataMarket.OwnerPolicy memory policy) internal {
        vm.deal(owner, MIN_OWNER_STAKE);
        vm.prank(owner);
        market.registerOwner{value: MIN_OWNER_STAKE}(policy, _datasetCommitment(owner));
    }

    function _registerOwner(address owner) internal {
        _registerOwner(owner, _policy());
    }

    /// Registers owners `first` to `first + count - 1` with the default policy.
    function _registerOwners(uint256 first, uint256 count) internal {
        for (uint256 i = first; i < first + count; ++i) {
            _registerOwner(_ownerAddress(i));
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Queries
    // ---------------------------------------------------------------------------------------------

    /// The default query: a sum (template 1) of one coordinate over 2 to 10 owners, three
    /// aggregators, submissions for a day.
    function _params() internal view returns (IDataMarket.QueryParams memory params) {
        params.templateId = 1;
        params.outputLength = 1;
        params.epsilon = EPSILON;
        params.pricePerOwner = PRICE;
        params.minOwners = 2;
        params.maxOwners = 10;
        params.aggregators = aggregators;
        params.feePerAggregator = FEE;
        params.acceptDeadline = START + 1 hours;
        params.submitDeadline = START + 1 days;
        params.commitDeadline = START + 1 days + COMPLAINT_PERIOD + 1 hours;
        params.revealDeadline = START + 1 days + COMPLAINT_PERIOD + 2 hours;
        params.maxAbsEncoded = 2 ** 40;
    }

    function _escrow(IDataMarket.QueryParams memory params) internal pure returns (uint256) {
        return uint256(params.pricePerOwner) * params.maxOwners
            + uint256(params.feePerAggregator) * params.aggregators.length;
    }

    function _propose(IDataMarket.QueryParams memory params) internal returns (uint256 queryId) {
        uint256 escrow = _escrow(params);
        vm.deal(analyst, analyst.balance + escrow);
        vm.prank(analyst);
        queryId = market.proposeQuery{value: escrow}(params, SPEC_JSON);
    }

    function _acceptAll(uint256 queryId) internal {
        address[] memory assigned = market.queryInfo(queryId).params.aggregators;
        for (uint256 i; i < assigned.length; ++i) {
            vm.prank(assigned[i]);
            market.acceptQuery(queryId);
        }
    }

    function _openQuery(IDataMarket.QueryParams memory params) internal returns (uint256 queryId) {
        queryId = _propose(params);
        _acceptAll(queryId);
    }

    function _openQuery() internal returns (uint256 queryId) {
        return _openQuery(_params());
    }

    /// Ciphertexts of the right shape, filled with bytes that vary per owner like real ones.
    function _ciphertexts(uint256 count, uint256 outputLength, address owner)
        internal
        pure
        returns (bytes[] memory ciphertexts)
    {
        ciphertexts = new bytes[](count);
        uint256 length = 32 + 8 * outputLength + 16;
        for (uint256 k; k < count; ++k) {
            bytes memory ciphertext = new bytes(length);
            for (uint256 j; j < length; j += 32) {
                bytes32 chunk = keccak256(abi.encode(owner, k, j));
                for (uint256 b; b < 32 && j + b < length; ++b) {
                    ciphertext[j + b] = chunk[b];
                }
            }
            ciphertexts[k] = ciphertext;
        }
    }

    function _ciphertextsFor(uint256 queryId, address owner) internal view returns (bytes[] memory) {
        IDataMarket.QueryParams memory params = market.queryInfo(queryId).params;
        return _ciphertexts(params.aggregators.length, params.outputLength, owner);
    }

    function _submit(uint256 queryId, address owner) internal {
        bytes[] memory ciphertexts = _ciphertextsFor(queryId, owner);
        vm.prank(owner);
        market.submitShares(queryId, ciphertexts);
    }

    /// Submits for owners `first` to `first + count - 1`, who must be registered.
    function _submitOwners(uint256 queryId, uint256 first, uint256 count) internal {
        for (uint256 i = first; i < first + count; ++i) {
            _submit(queryId, _ownerAddress(i));
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Commit and reveal
    // ---------------------------------------------------------------------------------------------

    function _commitment(uint256 queryId, address aggregator, uint64[] memory share, bytes32 salt)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(queryId, aggregator, share, salt));
    }

    function _salt(uint256 queryId, address aggregator) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", queryId, aggregator));
    }

    /// A deterministic share of length `outputLength` for aggregator number `k`.
    function _share(uint256 queryId, uint256 k, uint256 outputLength) internal pure returns (uint64[] memory share) {
        share = new uint64[](outputLength);
        for (uint256 i; i < outputLength; ++i) {
            share[i] = uint64(uint256(keccak256(abi.encode("share", queryId, k, i))));
        }
    }

    /// Moves time to the first second of the commit window of the default schedule.
    function _warpToCommitWindow(uint256 queryId) internal {
        vm.warp(market.queryInfo(queryId).params.submitDeadline + COMPLAINT_PERIOD + 1);
    }

    function _commit(uint256 queryId, uint256 k, uint64[] memory share) internal {
        address aggregator = aggregators[k];
        bytes32 commitment = _commitment(queryId, aggregator, share, _salt(queryId, aggregator));
        vm.prank(aggregator);
        market.commitAggregate(queryId, commitment);
    }

    function _reveal(uint256 queryId, uint256 k, uint64[] memory share) internal {
        address aggregator = aggregators[k];
        vm.prank(aggregator);
        market.revealAggregate(queryId, share, _salt(queryId, aggregator));
    }

    function _commitAll(uint256 queryId) internal {
        uint256 outputLength = market.queryInfo(queryId).params.outputLength;
        for (uint256 k; k < aggregators.length; ++k) {
            _commit(queryId, k, _share(queryId, k, outputLength));
        }
    }

    function _revealAll(uint256 queryId) internal {
        uint256 outputLength = market.queryInfo(queryId).params.outputLength;
        for (uint256 k; k < aggregators.length; ++k) {
            _reveal(queryId, k, _share(queryId, k, outputLength));
        }
    }

    /// Opens the default query, submits for owners `first` to `first + count - 1` (registered
    /// here), and commits every aggregate share in the commit window.
    function _committedQuery(uint256 first, uint256 count) internal returns (uint256 queryId) {
        queryId = _openQuery();
        _registerOwners(first, count);
        _submitOwners(queryId, first, count);
        _warpToCommitWindow(queryId);
        _commitAll(queryId);
    }

    /// A published default query with owners `first` to `first + count - 1`.
    function _publishedQuery(uint256 first, uint256 count) internal returns (uint256 queryId) {
        queryId = _committedQuery(first, count);
        _revealAll(queryId);
    }

    // ---------------------------------------------------------------------------------------------
    // Fuzzing
    // ---------------------------------------------------------------------------------------------

    /// Maps `x` into `[min, max]`, keeping small values small so edge cases stay likely.
    function _bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "_bound: min > max");
        uint256 span = max - min;
        if (span == type(uint256).max) return x;
        return min + (x % (span + 1));
    }
}

/// @notice A payee that rejects every transfer of ether.
contract EtherRejecter {
    receive() external payable {
        revert("EtherRejecter: no ether");
    }
}
