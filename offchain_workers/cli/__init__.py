"""The `pmsr` command line of PMSR market; the entry point is `offchain_workers.cli.main:main`."""
