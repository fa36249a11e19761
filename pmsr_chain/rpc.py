"""JSON-RPC access: a Web3 factory and a raw request helper with a retry policy.

`rpc_request` talks to the provider directly, so callers see the node's error object (code,
message, revert data) instead of web3's reformatted exceptions.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any

import requests
from web3 import HTTPProvider, Web3

from .errors import InvalidInputError, RpcError

__all__ = ["RetryPolicy", "DEFAULT_RETRY", "make_web3", "rpc_request"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how far apart, a request that failed to reach the node is sent again.

    Only transport failures (connection refused or reset, HTTP timeout) are retried; an error
    object returned by the node is final.
    """

    retries: int = 3
    backoff_seconds: float = 0.2
    backoff_factor: float = 2.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise InvalidInputError(f"retries must be non-negative, got {self.retries}")
        if self.backoff_seconds < 0 or self.backoff_factor < 1:
            raise InvalidInputError(
                f"backoff must be non-negative with factor >= 1, got {self.backoff_seconds} s x {self.backoff_factor}"
            )

    def delay(self, attempt: int) -> float:
        return self.backoff_seconds * self.backoff_factor**attempt


DEFAULT_RETRY = RetryPolicy()
_TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout, ConnectionError)


def make_web3(url: str, *, timeout: float = 60.0) -> Web3:
    """Return a Web3 for an HTTP JSON-RPC endpoint, with web3's own retries off (see `RetryPolicy`).

    web3's HTTP provider keeps one `requests` session per thread, so one instance serves many
    threads.
    """
    provider = HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
    return Web3(provider)


def rpc_request(w3: Web3, method: str, params: list[Any], *, retries: int | None = None,
                policy: RetryPolicy = DEFAULT_RETRY) -> Any:
    """Send one JSON-RPC request and return its `result`.

    Raises `RpcError` with the node's `code` and `data` when the node returns an error object, and
    after the last retry when the node cannot be reached.
    """
    attempts = (policy.retries if retries is None else retries) + 1
    for attempt in itertools.count():
        try:
            response = w3.provider.make_request(method, params)  # type: ignore[arg-type]
            break
        except _TRANSPORT_ERRORS as error:
            if attempt + 1 >= attempts:
                raise RpcError(
                    f"{method} failed after {attempts} attempts: {error}; check that the node is running",
                    method=method,
                ) from error
            delay = policy.delay(attempt)
            logger.warning("%s failed (%s); retrying in %.2f s", method, error, delay)
            time.sleep(delay)
    error_object = response.get("error")
    if error_object is not None:
        if isinstance(error_object, str):
            raise RpcError(f"{method} failed: {error_object}", method=method)
        raise RpcError(
            f"{method} failed: {error_object.get('message', 'no message')} (code {error_object.get('code')})",
            method=method,
            code=error_object.get("code"),
            data=error_object.get("data"),
        )
    return response.get("result")
