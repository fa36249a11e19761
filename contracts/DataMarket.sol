// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {MarketStorage} from "./market/MarketStorage.sol";
import {OwnerRegistry} from "./market/OwnerRegistry.sol";
import {AggregatorRegistry} from "./market/AggregatorRegistry.sol";
import {QueryLifecycle} from "./market/QueryLifecycle.sol";
import {Aggregation} from "./market/Aggregation.sol";
import {Payouts} from "./market/Payouts.sol";
import {QueryViews} from "./market/QueryViews.sol";

/// @title PMSR data market
/// @notice The deployed market. The behaviour is specified in `IDataMarket` and implemented by the
/// parts this contract inherits. Every parameter is fixed at deployment: the contract has no admin
/// key and no upgrade path.
contract DataMarket is OwnerRegistry, AggregatorRegistry, QueryLifecycle, Aggregation, Payouts, QueryViews {
    /// @param minOwnerStake_ Lowest owner stake, in wei.
    /// @param minAggregatorStake_ Lowest aggregator stake, in wei, to be assigned to or accept a query.
    /// @param unbondingPeriod_ Seconds between beginning an exit and withdrawing the stake.
    /// @param complaintPeriod_ Seconds after submissions close during which aggregators may complain.
    /// @param slashAmount_ Wei taken from an aggregator's stake for each missed commit or reveal.
    /// @param maxAggregators_ Largest K, from 2 to 255.
    /// @param maxOutputLength_ Largest output length L, from 1 to 2^32 - 1.
    constructor(
        uint256 minOwnerStake_,
        uint256 minAggregatorStake_,
        uint256 unbondingPeriod_,
        uint256 complaintPeriod_,
        uint256 slashAmount_,
        uint256 maxAggregators_,
        uint256 maxOutputLength_
    )
        MarketStorage(
            minOwnerStake_,
            minAggregatorStake_,
            unbondingPeriod_,
            complaintPeriod_,
            slashAmount_,
            maxAggregators_,
            maxOutputLength_
        )
    {}
}
