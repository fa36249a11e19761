"""Owner agent: decides on proposed queries, submits encrypted shares, claims payment.

Run it with `python -m offchain_workers.owner --config FILE.json`; see `config` for the file format.
"""

from .agent import OwnerAction, OwnerAgent, OwnerFleet, TableCache, batch_views
from .config import AccountSource, DatasetSource, FleetConfig, LocalPolicy, MarketSource, OwnerConfig, load_fleet_config
from .policy import CONTRACT_ERRORS, Decision, Reason, SpecCheck, check_spec, evaluate, reason_for_contract_error
from .state import DecisionRow, OwnerState, QueryPhase, Status, StoredQuery

__all__ = [
    "OwnerAction", "OwnerAgent", "OwnerFleet", "TableCache", "batch_views",
    "AccountSource", "DatasetSource", "FleetConfig", "LocalPolicy", "MarketSource", "OwnerConfig", "load_fleet_config",
    "CONTRACT_ERRORS", "Decision", "Reason", "SpecCheck", "check_spec", "evaluate", "reason_for_contract_error",
    "DecisionRow", "OwnerState", "QueryPhase", "Status", "StoredQuery",
]
