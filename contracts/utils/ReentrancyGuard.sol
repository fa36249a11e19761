// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IDataMarket} from "../interfaces/IDataMarket.sol";

/// @title Reentrancy guard on a transient-storage flag
/// @notice One lock shared by every guarded function, so a payee cannot re-enter any of them while
/// a payout is in flight. The flag lives in transient storage (EIP-1153, Cancun and later), which
/// costs 100 gas per access and is cleared at the end of the transaction.
abstract contract ReentrancyGuard {
    bool private transient _entered;

    modifier nonReentrant() {
        if (_entered) revert IDataMarket.Reentrancy();
        _entered = true;
        _;
        // Cleared explicitly because a later call in the same transaction must find the lock open.
        _entered = false;
    }
}
