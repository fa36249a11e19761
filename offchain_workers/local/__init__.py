"""The local market runner: Anvil, deployment, throwaway accounts and service processes on one machine."""
