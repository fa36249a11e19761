"""Aggregator service: decrypts its own shares, sums them, complains, commits, reveals and claims its fee.

Run it with `python -m offchain_workers.aggregator --config FILE.json`; see `config` for the file.
"""

from .config import AccountSource, AggregatorConfig, MarketSource, SecretSource, load_config
from .policy import AcceptancePolicy, Decision, evaluate_proposal
from .registration import register_aggregator
from .service import AggregatorService
from .state import AggregatorState, ComplaintState, Phase, SubmissionStatus

__all__ = [
    "AcceptancePolicy",
    "AccountSource",
    "AggregatorConfig",
    "AggregatorService",
    "AggregatorState",
    "ComplaintState",
    "Decision",
    "MarketSource",
    "Phase",
    "SecretSource",
    "SubmissionStatus",
    "evaluate_proposal",
    "load_config",
    "register_aggregator",
]
