"""Exception hierarchy shared by every PMSR market package.

Every exception the project raises derives from `PmsrError`. Subclasses also inherit the matching
built-in exception, so a caller that catches `ValueError` still catches an invalid input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "PmsrError",
    "ConfigurationError",
    "InvalidInputError",
    "CompilationError",
    "AnvilError",
    "RpcError",
    "DeploymentError",
    "ManifestMismatchError",
    "ContractRevertError",
    "TransactionError",
    "TransactionFailedError",
    "TransactionTimeoutError",
]


class PmsrError(Exception):
    """Root of every error raised by PMSR market code."""


class ConfigurationError(PmsrError, ValueError):
    """A setting, file or environment value is missing or invalid."""


class InvalidInputError(PmsrError, ValueError):
    """A value supplied by a user or another party failed validation."""


class CompilationError(PmsrError, RuntimeError):
    """The Solidity compiler failed or returned errors."""


class AnvilError(PmsrError, RuntimeError):
    """The embedded Anvil node failed to start, answer or stop."""


class RpcError(PmsrError, ConnectionError):
    """A JSON-RPC request failed after its retries, or the node returned an unexpected error."""

    def __init__(self, message: str, *, method: str, code: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.method = method
        self.code = code
        self.data = data


class DeploymentError(PmsrError, RuntimeError):
    """Deploying the market, or loading its deployment manifest, failed."""


class ManifestMismatchError(DeploymentError):
    """A deployment manifest does not match the chain or the compiled artifact."""


class ContractRevertError(PmsrError, RuntimeError):
    """A contract call reverted; carries the decoded error name and its arguments.

    `error_name` is the custom error's name (for example `BudgetExceeded`), `Error` for a
    `require`/`revert` with a string reason, `Panic` for a compiler-inserted check, or `None` when
    the revert data matches no error in the ABI. `arguments` maps each argument name to its decoded
    value. `data` is the raw revert data, kept for logs and debugging.
    """

    def __init__(
        self,
        message: str,
        *,
        function: str,
        error_name: str | None,
        arguments: Mapping[str, Any],
        data: bytes,
        transaction_hash: str | None = None,
    ) -> None:
        super().__init__(message)
        self.function = function
        self.error_name = error_name
        self.arguments = dict(arguments)
        self.data = data
        self.transaction_hash = transaction_hash


class TransactionError(PmsrError, RuntimeError):
    """A transaction could not be signed, sent or confirmed."""


class TransactionFailedError(TransactionError):
    """A transaction was mined with status 0 (it reverted on-chain, after estimation passed)."""

    def __init__(self, message: str, *, transaction_hash: str, revert: ContractRevertError | None = None) -> None:
        super().__init__(message)
        self.transaction_hash = transaction_hash
        self.revert = revert


class TransactionTimeoutError(TransactionError, TimeoutError):
    """A sent transaction had no receipt, or not enough confirmations, before the timeout."""

    def __init__(self, message: str, *, transaction_hash: str) -> None:
        super().__init__(message)
        self.transaction_hash = transaction_hash
