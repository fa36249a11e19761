"""Checks of `pmsr query propose` against the market's limits, run before anything is signed or sent.

Each error names the flag to change (or, for a spec file, the file) and, where the limit is a number,
the largest value that passes, so that the user does not have to find the limit by trial.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence

from pmsr_chain.types import UINT32_MAX, UINT40_MAX

from offchain_workers.budget import format_epsilon
from offchain_workers.errors import PrivacyError
from offchain_workers.spec import ENCODED_SUM_LIMIT, QuerySpec

from .errors import CliError
from .options import quoted
from .output import duration_option, floor_duration_option

__all__ = [
    "check_aggregator_list",
    "check_max_owners",
    "check_noise_room",
    "check_nonzero_encoding",
    "check_output_length",
    "check_window_limits",
    "largest_max_owners",
]

# Published coordinates are read as signed 64-bit integers, so a sum at or above this wraps.
SIGNED_LIMIT = 2**63


def _encoding_source(args: argparse.Namespace, spec: QuerySpec) -> str:
    """Name the flags (or the spec file) that set one owner's encoded bound."""
    if args.spec is not None:
        return f"the clip and fractionalBits {spec.fractional_bits} of spec file {args.spec}"
    if args.clip is not None:
        return f"--clip {quoted(args.clip)} at --fractional-bits {spec.fractional_bits}"
    return f"--contribution-bound {spec.contribution_bound} at --fractional-bits {spec.fractional_bits}"


def _encoding_fix(args: argparse.Namespace) -> str:
    if args.spec is not None:
        return "narrow the clip or lower fractionalBits in the spec"
    if args.clip is not None:
        return "narrow --clip or lower --fractional-bits"
    return "lower --fractional-bits"


def largest_max_owners(spec: QuerySpec) -> int:
    """Return the largest maxOwners the market accepts for `spec`: a uint32 with maxOwners * maxAbsEncoded < 2^62."""
    if spec.max_abs_encoded == 0:
        return UINT32_MAX
    return min(UINT32_MAX, (ENCODED_SUM_LIMIT - 1) // spec.max_abs_encoded)


def check_max_owners(args: argparse.Namespace, spec: QuerySpec) -> None:
    """Raise when --max-owners exceeds what the market stores or what the encoded sum bound allows."""
    largest = largest_max_owners(spec)
    if args.max_owners <= largest:
        return
    if largest == UINT32_MAX:
        raise CliError(
            f"invalid --max-owners {args.max_owners}: the largest accepted is {UINT32_MAX}, because the market "
            "stores owner counts as uint32"
        )
    raise CliError(
        f"invalid --max-owners {args.max_owners}: the largest accepted for this query is {largest}, because max "
        f"owners x one owner's largest encoded value ({spec.max_abs_encoded}, from {_encoding_source(args, spec)}) "
        f"must stay below 2^62; {_encoding_fix(args)} to allow more owners"
    )


def check_nonzero_encoding(args: argparse.Namespace, spec: QuerySpec) -> None:
    """Raise when every clip bound rounds to 0, so that every owner's value would encode as 0."""
    if spec.max_abs_encoded != 0:
        return
    raise CliError(
        f"every clip bound rounds to 0 with {_encoding_source(args, spec)}, so each owner's value would encode as "
        "0; widen the clip or raise the fractional bits"
    )


def check_output_length(args: argparse.Namespace, spec: QuerySpec, maximum: int) -> None:
    """Raise when the query has more output coordinates than the market's `maxOutputLength`."""
    length = spec.output_length
    if length <= maximum:
        return
    if args.spec is not None:
        source, fix = f"spec file {args.spec}", "compute fewer coordinates"
    elif spec.template == "histogram":
        source, fix = f"--bins {quoted(args.bins)} ({length - 1} bins)", f"use at most {maximum - 1} bins"
    else:
        source, fix = f"--columns {quoted(','.join(args.columns or []))}", "use fewer terms"
    raise CliError(
        f"the query has {length} output coordinates from {source}, above this market's maxOutputLength {maximum}; {fix}"
    )


def check_aggregator_list(aggregators: Sequence[str]) -> None:
    """Raise when --aggregators names one address twice."""
    seen: set[str] = set()
    for address in aggregators:
        if address in seen:
            raise CliError(f"--aggregators lists {address} twice; name each aggregator once")
        seen.add(address)


def check_window_limits(windows: Mapping[str, int], now: int, complaint_period: int) -> None:
    """Raise when the windows put the reveal deadline past 2^40 - 1, the latest time the market stores (uint40).

    The deadlines follow each other: accept, submit, then the complaint period and commit, then reveal.
    The error names the longest window and how long it may be with the others as given.
    """
    total = sum(windows.values())
    if now + total + complaint_period <= UINT40_MAX:
        return
    name = max(windows, key=lambda key: windows[key])
    room = UINT40_MAX - now - complaint_period - (total - windows[name])
    if room < 1:
        window_flags = ", ".join(f"--{key}-window {duration_option(value)}" for key, value in windows.items())
        raise CliError(
            f"the windows {window_flags} put the deadlines past 2^40 - 1 seconds after 1970, the latest time the market "
            "stores; pass shorter windows"
        )
    raise CliError(
        f"invalid --{name}-window {duration_option(windows[name])}: it puts the deadlines past 2^40 - 1 seconds "
        f"after 1970, the latest time the market stores; with the other windows as given, the largest "
        f"--{name}-window is {floor_duration_option(room)}"
    )


def check_noise_room(args: argparse.Namespace, spec: QuerySpec, aggregators: int) -> None:
    """Raise, naming --epsilon and --fractional-bits, when the owners' sum plus K noises could wrap 2^63."""
    from offchain_workers.dp import NOISE_TAIL_SCALES, check_noise_headroom, noise_scale

    try:
        check_noise_headroom(spec, args.max_owners, aggregators)
    except PrivacyError as error:
        # The bound of check_noise_headroom, recomputed for the message. Any other failure passes through.
        noise = math.ceil(noise_scale(spec) * NOISE_TAIL_SCALES) * aggregators
        if noise + args.max_owners * spec.max_abs_encoded < SIGNED_LIMIT:
            raise
        if args.spec is not None:
            raise CliError(f"spec file {args.spec}: {error}") from None
        bits = spec.fractional_bits
        fewer = ""
        if bits:
            fewer = f", or pass --fractional-bits below {bits} (each bit fewer halves the noise and the values)"
        raise CliError(
            f"--epsilon {format_epsilon(spec.epsilon)} is too small for --fractional-bits {bits}: {aggregators} "
            f"aggregators' noise (up to {noise} encoded units) plus {args.max_owners} owners' values could pass 2^63 "
            f"and wrap the signed 64-bit result; raise --epsilon{fewer}"
        ) from None
