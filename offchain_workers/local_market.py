"""The local market runner: one import for tests, benchmarks and the demo.

See `offchain_workers.local.runner` for the data directory layout and the process model.
"""

from .local.processes import ProcessError, ServiceProcess
from .local.runner import LOCAL_PARAMETERS, AggregatorHandle, LocalMarket, OwnerGroup

__all__ = ["LOCAL_PARAMETERS", "AggregatorHandle", "LocalMarket", "OwnerGroup", "ProcessError", "ServiceProcess"]
