"""Registering an aggregator on the market with its stake and X25519 public key."""

from __future__ import annotations

import logging

from pmsr_chain.client import MarketClient
from pmsr_chain.errors import ConfigurationError
from pmsr_chain.transactions import Receipt

from ..keys import AggregatorKeyPair

__all__ = ["register_aggregator"]

logger = logging.getLogger(__name__)


def register_aggregator(client: MarketClient, key_pair: AggregatorKeyPair, stake: int) -> Receipt | None:
    """Register the client's account as an aggregator with `stake` wei and the key pair's public key.

    Returns the receipt, or None when the account is already registered with this key (so a
    restarted service may call it again).

    Raises:
        ConfigurationError: the client has no sender, or the account is registered with another
            key; rotate it with `MarketClient.rotate_aggregator_key` once no query is in flight.
        ContractRevertError: the contract rejected the registration (stake below the minimum...).
    """
    if client.sender is None:
        raise ConfigurationError("register_aggregator needs a MarketClient with a sender")
    address = client.sender.address
    info = client.aggregator_info(address)
    if info.registered:
        if info.encryption_key == key_pair.public_key:
            logger.info("aggregator %s is already registered with key %s", address, key_pair.public_key.hex())
            return None
        raise ConfigurationError(
            f"aggregator {address} is registered with key {info.encryption_key.hex()}, not {key_pair.public_key.hex()}; "
            "use the registered key file, or rotate the key once the aggregator serves no query"
        )
    receipt = client.register_aggregator(key_pair.public_key, stake=stake)
    logger.info(
        "registered aggregator %s with stake %d wei and key %s in transaction %s",
        address, stake, key_pair.public_key.hex(), receipt.transaction_hash,
    )
    return receipt
