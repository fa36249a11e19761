"""Plain-text reports of the demos, rendered from their JSON-ready results.

Each report opens with a few lines that explain what ran and what stayed private, so that a reader
with no other context can follow it. Tables use `cli.output.format_table`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from ..cli.output import format_table
from .reference import WAGE_TERMS

__all__ = [
    "audit_report",
    "ensemble_report",
    "format_eth",
    "coefficient_table",
    "histogram_bars",
    "phase_table",
    "gas_table",
    "payments_text",
    "wage_report",
]

# Width in characters of the longest text bar, and of the explanatory paragraphs.
BAR_WIDTH = 40
TEXT_WIDTH = 100
# A 95% confidence interval spans this many standard errors on each side (normal approximation).
Z_95 = 1.959964


def format_eth(wei: int | str, digits: int = 6) -> str:
    """Format wei as ether rounded to `digits` decimals, e.g. `0.018714 ETH`; tiny amounts keep 2 significant digits."""
    amount = Decimal(int(wei)) / Decimal(10**18)
    if amount == 0:
        return "0 ETH"
    if abs(amount) < Decimal(10) ** -digits:
        return f"{amount:.2g} ETH"
    text = f"{amount:.{digits}f}".rstrip("0").rstrip(".")
    return f"{text} ETH"


def _number(value: float | None, spec: str = ".8g") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def _count(value: int) -> str:
    return f"{value:,}"


def coefficient_table(section: Mapping[str, Any]) -> str:
    """Format the secure and plaintext coefficients, their difference, both standard errors and the DP noise."""
    secure = section.get("coefficients") or {}
    plain = section.get("plaintext_coefficients") or {}
    difference = section.get("difference") or {}
    secure_errors = section.get("standard_errors") or {}
    plain_errors = section.get("plaintext_standard_errors") or {}
    noise = section.get("noise_sd")
    headers = ["TERM", "SECURE", "PLAINTEXT", "DIFFERENCE", "STD ERROR", "PLAINTEXT STD ERROR"]
    if noise is not None:
        headers.append("DP NOISE SD")
    rows = []
    for term in WAGE_TERMS:
        row = [term, _number(secure.get(term)), _number(plain.get(term)), _number(difference.get(term), ".2e"),
               _number(secure_errors.get(term), ".4g"), _number(plain_errors.get(term), ".4g")]
        if noise is not None:
            row.append(_number(noise.get(term), ".4g"))
        rows.append(row)
    return format_table(headers, rows)


def histogram_bars(bins: Sequence[str], counts: Sequence[float], plaintext: Sequence[int] | None = None) -> str:
    """Draw counts as text bars, one line per bin, with the plaintext counts beside them when given."""
    peak = max((max(count, 0.0) for count in counts), default=0.0)
    rows = []
    for index, (label, count) in enumerate(zip(bins, counts)):
        length = round(BAR_WIDTH * max(count, 0.0) / peak) if peak > 0 else 0
        row = [label, f"{count:,.0f}" if float(count).is_integer() else f"{count:,.1f}"]
        if plaintext is not None:
            row.append(_count(plaintext[index]))
        row.append("#" * length)
        rows.append(row)
    headers = ["BIN", "SECURE"] + (["PLAINTEXT"] if plaintext is not None else []) + [""]
    return format_table(headers, rows)


def phase_table(seconds: Mapping[str, Any]) -> str:
    """Format each phase's wall-clock time, the total, and the CPU time of the busiest process roles."""
    cpu = seconds.get("cpu") or {}
    rows = []
    for name, value in seconds["phases"].items():
        busiest = sorted((cpu.get(name) or {}).items(), key=lambda item: -item[1])
        usage = ", ".join(f"{role} {used:.1f}" for role, used in busiest[:3] if used >= 0.05)
        rows.append([name, f"{value:.1f} s", usage])
    rows.append(["total", f"{seconds['total']:.1f} s", ""])
    return format_table(["PHASE", "TIME", "CPU SECONDS (BUSIEST PROCESSES)"], rows)


def gas_table(gas: Mapping[str, Any]) -> str:
    """Format gas and ether spent by each role, with the mean gas of its main calls."""
    rows = []
    for role, spending in gas["by_role"].items():
        calls = ", ".join(
            f"{name} {_count(item['transactions'])} x {_count(item['mean_gas'])}"
            for name, item in list(spending["by_call"].items())[:3]
        )
        rows.append([role, _count(spending["accounts"]), _count(spending["transactions"]), _count(spending["gas"]),
                     format_eth(spending["wei"]), calls])
    rows.append(["total", "", _count(sum(s["transactions"] for s in gas["by_role"].values())), _count(gas["total"]),
                 format_eth(gas["wei"]), ""])
    table = format_table(["ROLE", "ACCOUNTS", "TXS", "GAS", "ETH (GAS FEES)", "MAIN CALLS (COUNT x MEAN GAS)"], rows)
    if gas.get("reverted_transactions"):
        table += f"\n{gas['reverted_transactions']} transactions reverted (their gas is counted above)."
    return table


def payments_text(payments: Mapping[str, Any], queries: Sequence[Mapping[str, Any]]) -> str:
    """Summarise what owners, aggregators and the analyst received."""
    owners = payments["owners"]
    aggregators = payments["aggregators"]
    lines = []
    spread = owners.get("per_owner_wei")
    if spread is None:
        lines.append("owners:       none paid")
    else:
        same = spread["min"] == spread["max"]
        per_owner = (f"{format_eth(spread['min'])} each" if same else
                     f"{format_eth(spread['min'])} to {format_eth(spread['max'])} each (median {format_eth(spread['median'])})")
        lines.append(f"owners:       {_count(owners['paid'])} owners paid {per_owner}, {format_eth(owners['total_wei'])} in total")
        for query_id, item in owners["by_query"].items():
            lines.append(f"              query {query_id}: {_count(item['paid'])} of {_count(item['included'])} included owners "
                         f"claimed {format_eth(item['total_wei'])}")
    if aggregators["paid"]:
        amounts = sorted(set(aggregators["per_aggregator_wei"].values()), key=int)
        per_aggregator = (format_eth(amounts[0]) + " each" if len(amounts) == 1
                          else ", ".join(format_eth(amount) for amount in amounts))
        lines.append(f"aggregators:  {aggregators['paid']} aggregators paid {per_aggregator} in fees, "
                     f"{format_eth(aggregators['total_wei'])} in total")
    else:
        lines.append("aggregators:  none paid")
    escrow = sum(int(query["escrow_wei"]) for query in queries)
    lines.append(f"analyst:      escrowed {format_eth(escrow)} for {len(queries)} queries and took back "
                 f"{format_eth(payments['analyst']['refund_wei'])} for owner slots nobody filled")
    return "\n".join(lines)


def _wrap(text: str) -> str:
    return textwrap.fill(" ".join(text.split()), width=TEXT_WIDTH)


def _paragraphs(*paragraphs: str) -> str:
    return "\n\n".join(textwrap.fill(" ".join(paragraph.split()), width=TEXT_WIDTH) for paragraph in paragraphs)


def _secure_reduce_paragraph(k: int, contribution: str) -> str:
    return (
        f"Every owner computed its own contribution on its own machine ({contribution}), split it into {k} random "
        f"additive shares and sent each share, encrypted, to one of {k} aggregators through the contract. "
        "Each aggregator decrypted only its own shares, which alone look uniformly random, and committed and "
        f"then revealed their sum; the contract added the {k} sums into the published result. No aggregator saw "
        "any owner's data: only the sum over all owners became public. Then owners and aggregators claimed "
        "their pay from the contract."
    )


def _privacy_sentence(report: Mapping[str, Any], noun: str, *, queries: int = 1) -> str:
    if report["exact"]:
        subject = "The query" if queries == 1 else f"The {queries} queries"
        return (f"{subject} ran exact (epsilon 0, the spec's explicit no-noise flag), so the published {noun} "
                "equal the plaintext ones up to fixed-point rounding.")
    privacy = report.get("privacy") or f"epsilon {report['epsilon']:g} per query"
    return (f"Each aggregator also added differential-privacy noise (discrete Laplace, {privacy}) to its sum, "
            f"so the published {noun} are private but noisy.")


def _market_sections(report: Mapping[str, Any]) -> list[str]:
    return [
        "Time of each phase (wall clock)\n" + phase_table(report["seconds"]),
        "Gas and ether spent by each role (gas fees at Anvil's EIP-1559 base fee; stakes are deposits, not spent)\n"
        + gas_table(report["gas"]),
        "Payments\n" + payments_text(report["payments"], report["queries"]),
    ]


def _wage_introduction(report: Mapping[str, Any]) -> str:
    return "PMSR market demo: the CPS1988 wage study\n\n" + _paragraphs(
        f"{_count(report['owners'])} US workers from the March 1988 Current Population Survey (AER/CPS1988) took "
        "part as data owners. Each held only its own row (weekly wage, education, experience, ethnicity) in its "
        "own file, staked a deposit in the market contract on a local Ethereum chain (Anvil), and ran an owner "
        "agent. An analyst paid the contract for two queries: the wage equation log(wage) ~ experience + "
        "experience^2 + education + ethnicity, and a histogram of weekly wages.",
        _secure_reduce_paragraph(report["aggregators"], "for the regression: its terms of X'X, X'y, y'y and n")
        + " " + _privacy_sentence(report, "results", queries=2),
    )
def _regression_text(section: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    lines = [f"Wage equation ({section['formula']}), query {section['query_id']}, "
             f"{_count(section['included_owners'])} owners"]
    lines.append(coefficient_table(section))
    if section.get("max_abs_difference") is not None:
        lines.append(f"largest |secure - plaintext| = {section['max_abs_difference']:.2e}")
        if section["exact"]:
            lines.append(f"(the only difference is fixed-point rounding: each owner's values were encoded at "
                         f"2^-{section['fractional_bits']})")
    if section.get("error"):
        lines.append(_wrap(f"The secure regression could not be solved: {section['error']}"))
    if section.get("plaintext_error"):
        lines.append(_wrap(f"The plaintext regression on the same owners could not be solved either: "
                           f"{section['plaintext_error']}"))
    if not section["exact"]:
        lines.append(_wrap(_regression_noise_text(section, report)))
        if section.get("warning"):
            lines.append(_wrap(f"WARNING: this DP regression is not reliable: {section['warning']}."))
    return "\n".join(lines)


def _regression_noise_text(section: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    k = section["aggregators_adding_noise"]
    text = (
        f"DP noise: each of the {k} aggregators added discrete Laplace noise of scale "
        f"{section['noise_scale_per_aggregator']:,.4g} to every coordinate of X'X, X'y, y'y and n. That scale is "
        f"the L1 sensitivity {section['l1_sensitivity']:,.4g} divided by epsilon {report['epsilon']:g}. The "
        f"sensitivity is the most one worker can add to the {section['coordinates']} statistics together: every "
        "term was standardized to [-1, 1], so each statistic gets at most 1 from a worker (y'y and X'y slightly "
        f"less, as log(wage) stays inside its range). Each published statistic thus carries noise of standard "
        f"deviation {section['noise_sd_per_coordinate']:,.4g}. The published n, for example, reads "
        f"{section['published_n']:,.1f} for {_count(section['included_owners'])} owners; the noise is a whole "
        f"number of 2^-{section['fractional_bits']} steps, so n need not be whole."
    )
    if section.get("noise_sd") is not None:
        text += (
            " DP NOISE SD is how far that noise moves each coefficient, estimated by solving the published "
            "statistics again with fresh noise of the same size; expect DIFFERENCE within about two DP NOISE SDs. "
            "STD ERROR is the sampling error estimated from the noisy statistics, so it is noisy too; the "
            "plaintext one has no noise. More owners or a larger epsilon shrink the noise; --epsilon 0 runs both "
            "queries exact."
        )
    return text


def _histogram_text(section: Mapping[str, Any]) -> str:
    lines = [f"Weekly wages in {section['unit']}, query {section['query_id']}, {_count(section['included_owners'])} owners"]
    if section.get("counts") is None:
        lines.append(f"no result: {section.get('error')}")
    else:
        lines.append(histogram_bars(section["bins"], section["counts"], section["plaintext_counts"]))
    if not section["exact"] and section.get("noise_sd_per_count") is not None:
        lines.append(_wrap(
            f"DP noise: a worker adds 1 to one bin, so the L1 sensitivity is 1 and each count carries noise of "
            f"standard deviation {section['noise_sd_per_count']:.3g} at epsilon {section['epsilon']:g}."
        ))
    return "\n".join(lines)


def wage_report(report: Mapping[str, Any]) -> str:
    """Render the result of `run_wage_study` for a person at a terminal."""
    sections = [
        _wage_introduction(report),
        _regression_text(report["ols"], report),
        _histogram_text(report["histogram"]),
        *_market_sections(report),
    ]
    return "\n\n".join(sections)


def _cell(secure: float, plaintext: int) -> str:
    return f"{secure:,.0f} ({plaintext:,})"


def audit_report(report: Mapping[str, Any]) -> str:
    """Render the result of `run_audit` for a person at a terminal."""
    crosstab = report["crosstab"]
    bound = crosstab["contribution_bound"]
    introduction = "PMSR market demo: a recommender audit on MovieLens\n\n" + _paragraphs(
        f"{_count(report['owners'])} MovieLens users (dslabs/movielens, {_count(report['ratings'])} ratings) took "
        "part as data owners, each holding their own rating history in their own file. An auditor of the "
        "recommender paid the market contract for one query: how many ratings fall in each rating band, per "
        f"genre (the first genre listed for the movie). Each user counted at most their first {bound} ratings "
        "in these bands and genres, which bounds what one user can change in the table.",
        _secure_reduce_paragraph(report["aggregators"], "its own counts per cell") + " "
        + _privacy_sentence(report, "counts"),
    )
    lines = [f"Ratings by genre and rating band, query {crosstab['query_id']}, "
             f"{_count(crosstab['included_owners'])} users: secure (plaintext)"]
    if crosstab.get("counts") is None:
        lines.append(f"no result: {crosstab.get('error')}")
    else:
        rows = []
        for column_index, genre in enumerate(crosstab["columns"]):
            rows.append([genre] + [
                _cell(crosstab["counts"][row_index][column_index], crosstab["plaintext_counts"][row_index][column_index])
                for row_index in range(len(crosstab["rows"]))
            ])
        lines.append(format_table(["GENRE", *(f"RATING {band}" for band in crosstab["rows"])], rows))
        lines.append(f"largest |secure - plaintext| in a cell = {crosstab['max_abs_difference']:,.0f}")
    if not crosstab["exact"]:
        k = report["aggregators"]
        spread = crosstab["noise_scale_per_aggregator"] * math.sqrt(2 * k)
        lines.append(_wrap(
            f"DP noise: each of the {k} aggregators added discrete Laplace noise of scale "
            f"{crosstab['noise_scale_per_aggregator']:,.4g} (sensitivity {crosstab['l1_sensitivity']:,.0f} ratings "
            f"/ epsilon {report['epsilon']:g}) to every cell; a published cell's noise has standard deviation "
            f"{spread:,.4g}."
        ))
    return "\n\n".join([introduction, "\n".join(lines), *_market_sections(report)])


def ensemble_report(report: Mapping[str, Any]) -> str:
    """Render the result of `run_ensemble` for a person at a terminal."""
    vote = report["vote"]
    introduction = "PMSR market demo: a secure ensemble of six private models\n\n" + _paragraphs(
        f"Six model owners each trained a different scikit-learn classifier on their own private shard of "
        f"{report['rows_per_model']} images from {report['dataset']}, and kept the model on their own machine. "
        f"The analyst paid the market contract for a vote on {vote['questions']} held-out images: each owner "
        "answered every question with its model and submitted one vote per question, so the published result is, "
        f"for every question, how many models chose each of the {vote['classes']} digits "
        f"({vote['output_length']} counts).",
        _secure_reduce_paragraph(report["aggregators"], "its one-hot votes") + " "
        + _privacy_sentence(report, "vote counts"),
    )
    rows = [[model["name"], f"{model['accuracy']:.3f}"] for model in report["models"]]
    rows.append(["secure ensemble (majority vote)", _number(vote["accuracy"], ".3f")])
    lines = [f"Accuracy on the {vote['questions']} held-out questions (query {vote['query_id']})",
             format_table(["MODEL", "ACCURACY"], rows)]
    if vote.get("agreement_with_plaintext") is not None:
        lines.append(_wrap(f"The secure majority agrees with a plaintext majority vote on "
                           f"{vote['agreement_with_plaintext']:.1%} of the questions (ties go to the lower digit)."))
    if vote.get("error"):
        lines.append(f"no secure result: {vote['error']}")
    return "\n\n".join([introduction, "\n".join(lines), *_market_sections(report)])
