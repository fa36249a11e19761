"""Chain side of PMSR market: contracts, Anvil, deployment, transactions and events."""
