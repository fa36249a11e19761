"""`pmsr deploy`: deploy `DataMarket` and write the manifest that every other command reads.

The manifest is `<data-dir>/deployments/<chainId>.json`. Commands connect to a node, ask its
chain id, and use the market that manifest names, after checking it against the chain.
"""

from __future__ import annotations

import argparse
from typing import Any

from pmsr_chain.deployment import deploy_market, manifest_path
from pmsr_chain.errors import ContractRevertError, TransactionError
from pmsr_chain.parameters import MarketParameters
from pmsr_chain.units import format_ether

from .context import Context
from .errors import CliError
from .options import add_command, amount, duration, positive_int
from .output import duration_option

__all__ = ["register"]

_DEFAULTS = MarketParameters()


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = add_command(
        commands, common, "deploy", "deploy the market contract on the connected chain", run_deploy,
        description="Deploy DataMarket from the selected account and write its manifest to "
                    "<data-dir>/deployments/<chainId>.json. The parameters are fixed for the contract's lifetime.",
    )
    parser.add_argument("--min-owner-stake", type=amount, default=_DEFAULTS.min_owner_stake,
                        help=f"minimum stake of a data owner (default {format_ether(_DEFAULTS.min_owner_stake)})")
    parser.add_argument("--min-aggregator-stake", type=amount, default=_DEFAULTS.min_aggregator_stake,
                        help=f"minimum stake of an aggregator (default {format_ether(_DEFAULTS.min_aggregator_stake)})")
    parser.add_argument("--slash-amount", type=amount, default=_DEFAULTS.slash_amount,
                        help="stake an aggregator loses for a missed commit or reveal "
                             f"(default {format_ether(_DEFAULTS.slash_amount)})")
    parser.add_argument("--unbonding-period", type=duration, default=_DEFAULTS.unbonding_period, metavar="DURATION",
                        help=f"wait between an exit and the stake withdrawal (default {duration_option(_DEFAULTS.unbonding_period)})")
    parser.add_argument("--complaint-period", type=duration, default=_DEFAULTS.complaint_period, metavar="DURATION",
                        help="time aggregators get to complain about undecryptable shares; it delays every "
                             f"commit (default {duration_option(_DEFAULTS.complaint_period)})")
    parser.add_argument("--max-aggregators", type=positive_int, default=_DEFAULTS.max_aggregators,
                        help=f"largest number K of aggregators per query (default {_DEFAULTS.max_aggregators})")
    parser.add_argument("--max-output-length", type=positive_int, default=_DEFAULTS.max_output_length,
                        help=f"largest output length L of a query (default {_DEFAULTS.max_output_length})")
    parser.add_argument("--force", action="store_true",
                        help="deploy a new market even if the manifest names a working one")


def _parameters(args: argparse.Namespace) -> MarketParameters:
    return MarketParameters(
        min_owner_stake=args.min_owner_stake,
        min_aggregator_stake=args.min_aggregator_stake,
        unbonding_period=args.unbonding_period,
        complaint_period=args.complaint_period,
        slash_amount=args.slash_amount,
        max_aggregators=args.max_aggregators,
        max_output_length=args.max_output_length,
    )


def _existing_market(context: Context) -> str | None:
    """Return the address of a working market in the manifest of this chain, or None."""
    if not manifest_path(context.settings.data_dir, context.chain_id).is_file():
        return None
    try:
        return context.deployment.address
    except CliError:
        return None  # a stale manifest (the chain was reset) is replaced


def parameters_data(parameters: MarketParameters) -> dict[str, Any]:
    data = parameters.to_json()
    for key in ("minOwnerStake", "minAggregatorStake", "slashAmount"):
        data[key] = str(data[key])
    return data


def run_deploy(context: Context, args: argparse.Namespace) -> int:
    parameters = _parameters(args)
    existing = _existing_market(context)
    if existing is not None and not args.force:
        raise CliError(
            f"a market is already deployed on chain {context.chain_id} at {existing} "
            f"(manifest {manifest_path(context.settings.data_dir, context.chain_id)}); pass --force to deploy another"
        )
    sender = context.sender
    try:
        deployment = deploy_market(sender, parameters, data_dir=context.settings.data_dir)
    except TransactionError as error:
        if "insufficient funds" in str(error).lower():
            raise CliError(
                f"insufficient funds: account {sender.address} has {format_ether(sender.balance())}, not enough "
                f"to pay the gas of deploying the market; fund it with `pmsr wallet fund {sender.address} 1ether`"
            ) from None
        raise
    except ContractRevertError as error:
        if error.error_name == "InvalidConstructorArgument":
            names = list(parameters.to_json())
            position = int(error.arguments["position"])
            name = names[position] if position < len(names) else f"argument {position}"
            raise CliError(
                f"invalid market parameter {name} = {error.arguments['value']}: it must be between "
                f"{error.arguments['minimum']} and {error.arguments['maximum']}"
            ) from None
        raise
    path = manifest_path(context.settings.data_dir, deployment.chain_id)
    data = {
        "chainId": deployment.chain_id,
        "address": deployment.address,
        "block": deployment.block_number,
        "deployer": deployment.deployer,
        "transactionHash": deployment.transaction_hash,
        "manifest": str(path),
        "parameters": parameters_data(parameters),
    }
    context.output.result(
        data,
        f"Deployed DataMarket at {deployment.address} on chain {deployment.chain_id} (block {deployment.block_number}).\n"
        f"manifest: {path}",
    )
    return 0
