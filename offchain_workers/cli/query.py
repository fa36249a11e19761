"""`pmsr query propose|status|result|refund|cancel|list`: an analyst's queries.

`propose` escrows exactly `price * maxOwners + fee * K` and prints the query id. Deadlines are
windows counted from the chain's latest block: owners submit within `--submit-window` after the
accept deadline, and aggregators commit within `--commit-window` after the market's complaint
period.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from pmsr_chain.errors import InvalidInputError
from pmsr_chain.types import UINT40_MAX, UINT96_MAX, QueryInfo, QueryStatus
from pmsr_chain.units import format_ether

from offchain_workers.budget import format_epsilon
from offchain_workers.encoding import MAX_FRACTIONAL_BITS
from offchain_workers.spec import MAX_CONTRIBUTION_BOUND

from .context import Context, parse_address
from .errors import CliError, Terminated, WaitInterruptedError
from .options import (
    add_command,
    add_group,
    amount_at_most,
    bounded_int,
    comma_list,
    duration,
    duration_at_most,
    epsilon,
    positive_int,
)
from .output import duration_option, format_table, format_time
from .propose_checks import (
    check_aggregator_list,
    check_max_owners,
    check_noise_room,
    check_nonzero_encoding,
    check_output_length,
    check_window_limits,
)

__all__ = ["register"]

DEFAULT_WINDOWS = {"accept": 120, "submit": 300, "commit": 300, "reveal": 300}
# No query deadline lies beyond 2^40 - 1 seconds after 1970, so no longer wait is needed.
_timeout = duration_at_most(UINT40_MAX, "no query deadline lies further ahead")
# A 95% confidence interval spans this many standard errors on each side (normal approximation).
Z_95 = 1.959964


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    actions = add_group(commands, "query", "propose queries and read their results")

    propose = add_command(
        actions, common, "propose", "propose a query and escrow its budget", run_propose,
        description="Propose a query from a spec file (--spec) or from flags (--template and its options), "
                    "escrowing price x max owners + fee x aggregators.",
    )
    source = propose.add_argument_group("what to compute")
    source.add_argument("--spec", metavar="FILE", help="a query spec in JSON")
    source.add_argument("--template", help="count, sum, mean, histogram or ols (other templates need --spec)")
    source.add_argument("--columns", type=comma_list, metavar="LIST",
                        help="column(s) the template reads; for ols the response first, e.g. log(wage),education,race=black")
    source.add_argument("--bins", help="histogram edges: 0,250,500 or START:STOP:COUNT")
    source.add_argument("--clip", help="range of one row's values: LOW:HIGH (for ols also NAME=LOW:HIGH,...); "
                                       "a DP ols query maps each term onto [-1, 1] with it")
    source.add_argument("--filter", dest="row_filter", metavar="EXPR", help="use only the rows matching EXPR")
    source.add_argument("--no-intercept", dest="intercept", action="store_false", help="ols without an intercept")
    source.add_argument("--contribution-bound", type=bounded_int(1, MAX_CONTRIBUTION_BOUND), default=1, metavar="ROWS",
                        help="most rows one owner contributes (default 1)")
    source.add_argument("--fractional-bits", type=bounded_int(0, MAX_FRACTIONAL_BITS), default=16, metavar="F",
                        help="fixed-point scale 2^F of the encoding (default 16)")
    source.add_argument("--epsilon", type=epsilon, help="differential privacy epsilon, e.g. 1.0")
    source.add_argument("--exact", action="store_true", help="no DP noise (owners must allow exact queries)")

    market = propose.add_argument_group("market terms")
    market_amount = amount_at_most(UINT96_MAX, "the market stores prices and fees as uint96")
    market.add_argument("--price", type=market_amount, default=0, help="payment per included owner (default 0)")
    market.add_argument("--fee", type=market_amount, default=0, help="fee per aggregator (default 0)")
    market.add_argument("--min-owners", type=positive_int, default=1, help="minimum number of owners for a result (default 1)")
    market.add_argument("--max-owners", type=positive_int, required=True, help="maximum number of owners paid for")
    market.add_argument("--aggregators", default="auto", metavar="auto|LIST",
                        help="aggregator addresses, or auto to pick registered ones (default auto)")
    market.add_argument("--aggregator-count", type=positive_int, metavar="K",
                        help="how many aggregators auto picks (default: every usable one, up to the market's maximum)")
    for name, seconds in DEFAULT_WINDOWS.items():
        market.add_argument(f"--{name}-window", type=duration, default=seconds, metavar="DURATION",
                            help=f"time for the {name} step (default {duration_option(seconds)})")
    propose.add_argument("--wait", action="store_true", help="wait for the result and print it")
    propose.add_argument("--plot", metavar="FILE.png", help="with --wait, also draw the result (see `pmsr query result`)")
    propose.add_argument("--timeout", type=_timeout, default=3600, metavar="DURATION",
                         help="maximum wait with --wait (default 1h)")

    status = add_command(actions, common, "status", "show a query's phase, counts and deadlines", run_status)
    status.add_argument("query_id", type=_query_id, metavar="ID")
    status.add_argument("--wait", action="store_true", help="follow the query until it settles")
    status.add_argument("--timeout", type=_timeout, default=3600, metavar="DURATION", help="maximum wait (default 1h)")

    result = add_command(actions, common, "result", "print a query's published result", run_result)
    result.add_argument("query_id", type=_query_id, metavar="ID")
    result.add_argument("--plot", metavar="FILE.png", help="draw the histogram, or the coefficients with 95%% intervals")
    result.add_argument("--wait", action="store_true", help="wait until the result is published")
    result.add_argument("--timeout", type=_timeout, default=3600, metavar="DURATION", help="maximum wait (default 1h)")

    refund = add_command(actions, common, "refund", "take back the unused escrow of a settled query", run_refund)
    refund.add_argument("query_id", type=_query_id, metavar="ID")

    cancel = add_command(
        actions, common, "cancel", "cancel (or fail) a query whose deadline passed", run_cancel,
        description="Cancel a query that was not accepted in time or got too few owners, or fail one whose "
                    "aggregators missed a commit or reveal deadline. Anyone may do this once it is due.",
    )
    cancel.add_argument("query_id", type=_query_id, metavar="ID")

    listing = add_command(actions, common, "list", "list the market's queries", run_list)
    listing.add_argument("--mine", action="store_true", help="only queries of the selected account")
    listing.add_argument("--last", type=positive_int, default=20, metavar="N", help="the N newest queries (default 20)")


def _query_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid query id {text!r}: expected a whole number such as 3") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid query id {text!r}: query ids are not negative")
    return value


def _analyst(context: Context, *, signed: bool = False) -> Any:
    from offchain_workers.analyst import Analyst

    if signed:
        market = context.market.with_sender(context.sender)
    else:
        # Reading needs no account; the Analyst API takes a sender only to send from it.
        market = context.market.with_sender(_ReadOnlySender())  # type: ignore[arg-type]
    return Analyst(market, start_block=context.deployment.block_number)


class _ReadOnlySender:
    """Stands in for a sender where a command only reads, so that no passphrase is asked."""

    address = "0x0000000000000000000000000000000000000000"

    def send(self, call: Any) -> Any:
        raise CliError(f"{call.function} needs an account; pass --keystore NAME or --dev-account N")


def _query_info(context: Context, query_id: int) -> QueryInfo:
    info = context.market.query_info(query_id)
    if info.status == QueryStatus.NONE:
        raise CliError(f"query {query_id} not found on market {context.market.address}; list queries with `pmsr query list`")
    return info


# --------------------------------------------------------------------------------------------------
# propose


def _spec(args: argparse.Namespace) -> Any:
    from .query_spec import load_spec_file, spec_from_flags

    flags = [args.template, args.columns, args.bins, args.clip, args.row_filter, args.epsilon]
    if args.spec is not None:
        if any(flag is not None for flag in flags) or args.exact:
            raise CliError("pass either --spec FILE or the template flags (--template, --columns, ...), not both")
        return load_spec_file(args.spec)
    if args.template is None:
        raise CliError("say what to compute: --spec FILE, or --template NAME with its options")
    return spec_from_flags(
        template=args.template, columns=args.columns, bins=args.bins, clip=args.clip, row_filter=args.row_filter,
        contribution_bound=args.contribution_bound, fractional_bits=args.fractional_bits, epsilon=args.epsilon,
        exact=args.exact, intercept=args.intercept,
    )


def _windows(args: argparse.Namespace, now: int) -> dict[str, int]:
    windows = {name: getattr(args, f"{name}_window") for name in DEFAULT_WINDOWS}
    for name, seconds in windows.items():
        if seconds <= 0:
            raise CliError(
                f"--{name}-window {seconds}s puts the {name} deadline at the chain time {format_time(now)}, which has "
                f"already passed when the proposal is mined; pass a window such as {duration_option(DEFAULT_WINDOWS[name])}"
            )
    return windows


def _check_plot_path(plot: str | None) -> None:
    if plot is not None and not plot.lower().endswith(".png"):
        raise CliError(f"--plot {plot!r} must name a .png file")


def run_propose(context: Context, args: argparse.Namespace) -> int:
    from offchain_workers.analyst import AnalystError

    _check_plot_path(args.plot)
    if args.plot is not None and not args.wait:
        raise CliError("--plot draws the result, so it needs --wait")
    spec = _spec(args)
    check_max_owners(args, spec)
    if args.min_owners > args.max_owners:
        raise CliError(f"--min-owners {args.min_owners} is above --max-owners {args.max_owners}")
    check_nonzero_encoding(args, spec)
    check_output_length(args, spec, context.market.max_output_length())
    now = context.chain_time()
    windows = _windows(args, now)
    check_window_limits(windows, now, context.market.complaint_period())
    analyst = _analyst(context, signed=True)
    if args.aggregators == "auto":
        try:
            aggregators = analyst.select_aggregators(args.aggregator_count)
        except (AnalystError, InvalidInputError) as error:
            raise CliError(f"{error} (--aggregator-count K sets how many)") from None
    else:
        aggregators = [parse_address(item, "aggregator address") for item in comma_list(args.aggregators)]
        check_aggregator_list(aggregators)
    check_noise_room(args, spec, len(aggregators))

    params = analyst.build_params(
        spec, price_per_owner=args.price, min_owners=args.min_owners, max_owners=args.max_owners,
        aggregators=aggregators, fee_per_aggregator=args.fee, accept_window=windows["accept"],
        submit_window=windows["submit"], commit_window=windows["commit"], reveal_window=windows["reveal"],
    )
    escrow = params.required_payment
    context.check(context.market.calls.propose_query(params, spec.to_json_bytes()), f"escrowing {format_ether(escrow)}")
    query_id = analyst.propose(
        spec, price_per_owner=args.price, min_owners=args.min_owners, max_owners=args.max_owners,
        fee_per_aggregator=args.fee, aggregators=aggregators, accept_window=windows["accept"],
        submit_window=windows["submit"], commit_window=windows["commit"], reveal_window=windows["reveal"],
    )
    info = context.market.query_info(query_id)
    data = {
        "queryId": query_id,
        "analyst": context.address,
        "template": spec.template,
        "specHash": "0x" + spec.hash.hex(),
        "escrowWei": str(escrow),
        "aggregators": list(info.params.aggregators),
        "acceptDeadline": info.params.accept_deadline,
        "submitDeadline": info.params.submit_deadline,
        "commitDeadline": info.params.commit_deadline,
        "revealDeadline": info.params.reveal_deadline,
    }
    if args.wait:
        context.output.notice(
            f"Proposed query {query_id} ({spec.template}, escrow {format_ether(escrow)}); waiting for the result."
        )
        return _print_result(context, _wait(context, analyst, query_id, args.timeout), args.plot)
    context.output.result(
        data,
        f"Proposed query {query_id}: {spec.template} over {args.min_owners}..{args.max_owners} owners, "
        f"escrow {format_ether(escrow)}.\n"
        f"owners submit until {format_time(info.params.submit_deadline, now)}; "
        f"follow it with `pmsr query status {query_id} --wait`",
    )
    return 0


# --------------------------------------------------------------------------------------------------
# status and waiting


def _wait(context: Context, analyst: Any, query_id: int, timeout: int) -> Any:
    from offchain_workers.analyst import QueryCancelledError, QueryFailedError

    info = _query_info(context, query_id)
    with context.output.progress(f"query {query_id}", info.params.max_owners) as progress:

        def report(state: Any) -> None:
            progress.update(
                state.submitted,
                f"{state.phase}; {state.accepted}/{state.aggregators} accepted, {state.included} included, "
                f"{state.committed} committed, {state.revealed} revealed",
            )

        try:
            return analyst.wait_for_result(query_id, timeout=timeout, progress=report)
        except KeyboardInterrupt as interrupt:
            # The query and its escrow stay on-chain; tell the user how to pick it up again.
            raise WaitInterruptedError(
                f"stopped waiting; query {query_id} is still on-chain: follow it with "
                f"`pmsr query status {query_id} --wait`, or after its deadlines `pmsr query cancel {query_id}`",
                terminated=isinstance(interrupt, Terminated),
            ) from None
        except QueryCancelledError:
            raise CliError(
                f"query {query_id} was cancelled ({analyst._cancel_reason(query_id)}); take back the escrow with "
                f"`pmsr query refund {query_id}`"
            ) from None
        except QueryFailedError:
            raise CliError(
                f"query {query_id} failed: an aggregator missed its commit or reveal deadline; take back the escrow "
                f"and the slashed stake with `pmsr query refund {query_id}`"
            ) from None


def _status_data(context: Context, analyst: Any, query_id: int, info: QueryInfo) -> dict[str, Any]:
    progress = analyst.progress(query_id)
    params = info.params
    return {
        "queryId": query_id,
        "status": info.status.name,
        "phase": progress.phase,
        "analyst": info.analyst,
        "templateId": params.template_id,
        "epsilon": params.epsilon,
        "pricePerOwnerWei": str(params.price_per_owner),
        "feePerAggregatorWei": str(params.fee_per_aggregator),
        "minOwners": params.min_owners,
        "maxOwners": params.max_owners,
        "aggregators": list(params.aggregators),
        "accepted": info.accepted_count,
        "submitted": info.submitted_count,
        "excluded": info.excluded_count,
        "included": info.included_count,
        "committed": info.committed_count,
        "revealed": info.revealed_count,
        "acceptDeadline": params.accept_deadline,
        "submitDeadline": params.submit_deadline,
        "commitDeadline": params.commit_deadline,
        "revealDeadline": params.reveal_deadline,
        "escrowWei": str(info.escrow),
        "analystRefunded": info.analyst_refunded,
        "chainTime": progress.block_timestamp,
    }


def _status_text(data: dict[str, Any]) -> str:
    from offchain_workers.templates import template_by_id

    now = data["chainTime"]
    template = template_by_id(data["templateId"]).name
    privacy = "exact (no noise)" if data["epsilon"] == 0 else f"epsilon {format_epsilon(data['epsilon'])}"
    status = data["status"].lower()
    phase = "" if data["phase"] == status else f" ({data['phase']})"
    lines = [
        f"query {data['queryId']}: {status}{phase}",
        f"template:      {template}, {privacy}",
        f"analyst:       {data['analyst']}",
        f"price:         {format_ether(int(data['pricePerOwnerWei']))} per owner, "
        f"fee {format_ether(int(data['feePerAggregatorWei']))} per aggregator",
        f"owners:        {data['submitted']} submitted, {data['included']} included "
        f"(min {data['minOwners']}, max {data['maxOwners']})",
        f"aggregators:   {data['accepted']}/{len(data['aggregators'])} accepted, {data['committed']} committed, "
        f"{data['revealed']} revealed",
    ]
    if data["status"] in _SETTLED_STATUSES:
        lines.append("deadlines:     none apply any more; the query is settled")
    else:
        lines += [
            f"accept until:  {format_time(data['acceptDeadline'], now)}",
            f"submit until:  {format_time(data['submitDeadline'], now)}",
            f"commit until:  {format_time(data['commitDeadline'], now)}",
            f"reveal until:  {format_time(data['revealDeadline'], now)}",
        ]
    lines.append(f"escrow held:   {format_ether(int(data['escrowWei']))}")
    return "\n".join(lines)


# Statuses after which the query's deadlines no longer matter.
_SETTLED_STATUSES = ("PUBLISHED", "CANCELLED", "FAILED")


def run_status(context: Context, args: argparse.Namespace) -> int:
    analyst = _analyst(context)
    info = _query_info(context, args.query_id)
    status = 0
    if args.wait and info.status in (QueryStatus.PROPOSED, QueryStatus.OPEN):
        try:
            _wait(context, analyst, args.query_id, args.timeout)
        except CliError as error:
            context.output.notice(str(error))
            # After Ctrl-C or SIGTERM the status is still printed, and the exit status reports that the wait stopped.
            if isinstance(error, WaitInterruptedError):
                status = error.exit_status
        info = _query_info(context, args.query_id)
    data = _status_data(context, analyst, args.query_id, info)
    context.output.result(data, lambda: _status_text(data))
    return status


# --------------------------------------------------------------------------------------------------
# result


def _result_text(result: Any) -> str:
    output = result.output
    template = result.spec.template
    header = (f"query {result.query_id}: {template} over {result.included_owners} owners"
              f"{' (exact)' if result.exact else ' (with DP noise)'}")
    if output is None:
        body = f"post-processing failed: {result.postprocess_error}\n" + format_table(
            ["COORDINATE", "VALUE"], [[name, f"{value:.6g}"] for name, value in zip(result.spec.schema, result.values)]
        )
    elif template == "histogram" and "counts" in output:
        peak = max((max(count, 0.0) for count in output["counts"]), default=0.0)
        rows = []
        for label, count in zip(output["bins"], output["counts"]):
            bar = "#" * (round(40 * max(count, 0.0) / peak) if peak > 0 else 0)
            rows.append([label, f"{count:.2f}", bar])
        body = format_table(["BIN", "COUNT", ""], rows)
    elif template == "ols" and "coefficients" in output:
        body = _regression_text(output)
    else:
        rows = [[key, f"{value:.6g}" if isinstance(value, float) else str(value)] for key, value in output.items()]
        body = format_table(["NAME", "VALUE"], rows)
    return f"{header}\n{body}"


def _coefficient_error(output: dict[str, Any], name: str) -> float | None:
    """Return a coefficient's standard error, combined with its DP noise SD when the result is noisy."""
    error = (output.get("standard_errors") or {}).get(name)
    spread = (output.get("noise_standard_errors") or {}).get(name)
    if error is None and spread is None:
        return None
    return math.hypot(error or 0.0, spread or 0.0)


def _regression_text(output: dict[str, Any]) -> str:
    """Format coefficients with standard errors, the DP noise on each when there is any, and 95% intervals.

    With DP noise the interval combines the sampling error and the noise's standard deviation.
    """
    errors = output.get("standard_errors") or {}
    noise = output.get("noise_standard_errors")
    headers = ["TERM", "COEFFICIENT", "STD ERROR"] + (["DP NOISE SD"] if noise is not None else []) + ["95% INTERVAL"]
    rows = []
    for name, value in output["coefficients"].items():
        error = errors.get(name)
        spread = None if noise is None else noise.get(name)
        total = _coefficient_error(output, name)
        interval = (f"[{value - Z_95 * total:.6g}, {value + Z_95 * total:.6g}]"
                    if total is not None and math.isfinite(total) else "-")
        row = [name, f"{value:.6g}", f"{error:.6g}" if error is not None else "-"]
        if noise is not None:
            row.append(f"{spread:.6g}" if spread is not None else "-")
        rows.append([*row, interval])
    lines = [format_table(headers, rows)]
    if output.get("r_squared") is not None:
        lines.append(f"R^2 = {output['r_squared']:.4f}, n = {output.get('n', 0):.0f}")
    if output.get("standard_errors") is None:
        lines.append("no standard errors: the residual sum of squares is not positive (DP noise, or as many rows as terms)")
    if output.get("warning"):
        lines.append(f"warning: {output['warning']}")
    return "\n".join(lines)


def _plot(result: Any, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output = result.output
    figure, axes = plt.subplots(figsize=(8, 4.5))
    try:
        if result.spec.template == "histogram" and output is not None:
            axes.bar(range(len(output["counts"])), output["counts"], tick_label=output["bins"])
            axes.set_ylabel("owners' rows")
            axes.tick_params(axis="x", labelrotation=45)
        elif result.spec.template == "ols" and output is not None:
            names = list(output["coefficients"])
            values = [output["coefficients"][name] for name in names]
            spans = [Z_95 * (_coefficient_error(output, name) or 0.0) for name in names]
            axes.errorbar(values, range(len(names)), xerr=spans, fmt="o", capsize=4)
            axes.set_yticks(range(len(names)), names)
            axes.axvline(0.0, color="grey", linewidth=0.8)
            noise = " and DP noise" if output.get("noise_standard_errors") is not None else ""
            axes.set_xlabel(f"coefficient (95% interval: sampling error{noise})")
            if output.get("warning"):
                axes.text(0.5, -0.3, "not reliable: DP noise forced a ridge; see the warning of `pmsr query result`",
                          transform=axes.transAxes, ha="center", color="firebrick", fontsize=9)
        else:
            axes.bar(range(len(result.values)), result.values, tick_label=list(result.spec.schema))
            axes.tick_params(axis="x", labelrotation=45)
        axes.set_title(f"query {result.query_id}: {result.spec.template}, {result.included_owners} owners")
        figure.tight_layout()
        figure.savefig(path, dpi=120)
    except OSError as error:
        raise CliError(f"cannot write plot {path}: {error.strerror}") from None
    finally:
        plt.close(figure)


def _print_result(context: Context, result: Any, plot: str | None) -> int:
    if plot is not None:
        _plot(result, plot)
    data = result.as_dict()
    if plot is not None:
        data["plot"] = plot
    context.output.result(data, lambda: _result_text(result) + (f"\nplot: {plot}" if plot else ""))
    return 0


def run_result(context: Context, args: argparse.Namespace) -> int:
    from offchain_workers.analyst import ResultNotPublishedError

    _check_plot_path(args.plot)
    analyst = _analyst(context)
    info = _query_info(context, args.query_id)
    if args.wait:
        result = _wait(context, analyst, args.query_id, args.timeout)
    else:
        try:
            result = analyst.result(args.query_id)
        except ResultNotPublishedError:
            raise CliError(
                f"query {args.query_id} has no result yet: it is {info.status.name.lower()} with "
                f"{info.submitted_count} of {info.params.max_owners} owners submitted; wait with "
                f"`pmsr query result {args.query_id} --wait`"
            ) from None
    return _print_result(context, result, args.plot)


# --------------------------------------------------------------------------------------------------
# refund, cancel, list


def run_refund(context: Context, args: argparse.Namespace) -> int:
    from pmsr_chain.events import AnalystRefunded

    info = _query_info(context, args.query_id)
    receipt = context.send(context.market.calls.refund(args.query_id), "taking the refund")
    refunded = sum(record.amount for record in context.market.receipt_events(receipt)
                   if isinstance(record, AnalystRefunded))
    context.output.result(
        {"queryId": args.query_id, "analyst": info.analyst, "amountWei": str(refunded),
         "transactionHash": receipt.transaction_hash},
        f"Refunded {format_ether(refunded)} of query {args.query_id} to {info.analyst}.",
    )
    return 0


def run_cancel(context: Context, args: argparse.Namespace) -> int:
    info = _query_info(context, args.query_id)
    if info.status not in (QueryStatus.PROPOSED, QueryStatus.OPEN):
        raise CliError(f"query {args.query_id} is already {info.status.name.lower()}; nothing to cancel")
    now = context.chain_time()
    missed_commit = info.committed_count < len(info.params.aggregators) and now > info.params.commit_deadline
    missed_reveal = now > info.params.reveal_deadline
    market = context.market
    if info.status == QueryStatus.OPEN and (missed_commit or missed_reveal):
        call, verb = market.calls.fail(args.query_id), "failed"
    else:
        call, verb = market.calls.cancel(args.query_id), "cancelled"
    receipt = context.send(call, f"marking query {args.query_id} {verb}")
    context.output.result(
        {"queryId": args.query_id, "status": verb.upper(), "transactionHash": receipt.transaction_hash},
        f"Query {args.query_id} is {verb}; its analyst takes the escrow back with `pmsr query refund {args.query_id}`.",
    )
    return 0


def run_list(context: Context, args: argparse.Namespace) -> int:
    from offchain_workers.templates import template_by_id

    from .wallet import selected_address

    market = context.market
    count = market.query_count()
    mine = selected_address(context) if args.mine else None
    rows = []
    # The contract numbers queries from 1 to queryCount.
    for query_id in range(count, 0, -1):
        if len(rows) >= args.last:
            break
        info = market.query_info(query_id)
        if mine is not None and info.analyst != mine:
            continue
        rows.append({
            "queryId": query_id,
            "status": info.status.name,
            "template": template_by_id(info.params.template_id).name,
            "submitted": info.submitted_count,
            "maxOwners": info.params.max_owners,
            "analyst": info.analyst,
            "submitDeadline": info.params.submit_deadline,
        })

    def text() -> str:
        if not rows:
            return "No queries yet; propose one with `pmsr query propose`."
        return format_table(
            ["ID", "STATUS", "TEMPLATE", "OWNERS", "ANALYST"],
            [[r["queryId"], r["status"].lower(), r["template"], f"{r['submitted']}/{r['maxOwners']}", r["analyst"]]
             for r in rows],
        )

    context.output.result(rows, text)
    return 0
