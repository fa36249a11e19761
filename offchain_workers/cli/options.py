"""Argument parsing shared by every command: one-line usage errors, global options, value types."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn

from pmsr_chain.errors import InvalidInputError
from pmsr_chain.units import parse_amount, parse_duration

from offchain_workers.budget import MAX_UINT64, format_epsilon, parse_epsilon

from .errors import UsageError, amount_option
from .output import floor_duration_option

if TYPE_CHECKING:
    from .context import Context

# A command's handler returns its exit status (None means 0).
Handler = Callable[["Context", argparse.Namespace], "int | None"]

__all__ = [
    "ArgumentParser",
    "Handler",
    "add_global_options",
    "add_group",
    "add_command",
    "MAX_STORED_EPSILON",
    "QUOTE_LIMIT",
    "amount",
    "amount_at_most",
    "bounded_int",
    "duration",
    "duration_at_most",
    "epsilon",
    "positive_int",
    "non_negative_int",
    "comma_list",
    "quoted",
]

# The contract stores epsilons and budgets in millionths as uint64.
MAX_STORED_EPSILON = format_epsilon(MAX_UINT64)

# Quoted user input is cut to this many characters, so that a pasted blob does not flood the error line.
QUOTE_LIMIT = 40

_EXPONENT_NOTATION = re.compile(r"[0-9.]+[eE][+-]?[0-9]+")
_PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")


class ArgumentParser(argparse.ArgumentParser):
    """An `argparse` parser whose errors are one-line `UsageError`s instead of usage dumps.

    Arguments such as `-1ether` count as values, not as unknown options, so that a negative amount
    reaches the amount parser and gets its message.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\d+(?:\.\d+)?[a-zA-Z]*$")

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}; see `{self.prog} --help`")


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Add the options every command accepts, before or after the command name.

    The copy on each command uses `argparse.SUPPRESS` defaults, so that an option given before the
    command name is not reset by the command's parser.
    """

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("global options")
    group.add_argument("--rpc", metavar="URL", default=default(None),
                       help="JSON-RPC URL of the node (env PMSR_RPC_URL; default: the chain of `pmsr chain up`)")
    group.add_argument("--keystore", metavar="NAME", default=default(None),
                       help="account to sign with: a keystore name, path or address (env PMSR_KEYSTORE)")
    group.add_argument("--dev-account", metavar="N", type=non_negative_int, default=default(None),
                       help="sign with Anvil's development account N (local chains only)")
    group.add_argument("--password-file", metavar="FILE", default=default(None),
                       help="file holding the keystore passphrase (else env PMSR_PASSWORD, else a prompt)")
    group.add_argument("--data-dir", metavar="DIR", default=default(None),
                       help="directory of keystores, manifests and service state (env PMSR_DATA_DIR; default ~/.pmsr)")
    group.add_argument("--json", action="store_true", default=default(False), help="print the result as JSON")
    group.add_argument("--debug", action="store_true", default=default(False),
                       help="log debug messages and show tracebacks")


def add_group(commands: Any, name: str, help_text: str) -> Any:
    """Add a command group such as `pmsr chain` and return the action that contains its commands."""
    group = commands.add_parser(name, help=help_text, description=help_text)
    return group.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=ArgumentParser)


def add_command(
    commands: Any, common: ArgumentParser, name: str, help_text: str, handler: Handler, *, description: str | None = None
) -> ArgumentParser:
    """Add a command that runs `handler` and accepts the global options after its name too."""
    parser: ArgumentParser = commands.add_parser(
        name, help=help_text, description=description or help_text, parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


def quoted(text: str) -> str:
    """Quote user input for an error message, cut to `QUOTE_LIMIT` characters with its length noted."""
    if len(text) <= QUOTE_LIMIT:
        return repr(text)
    return f"{text[:QUOTE_LIMIT]!r}... ({len(text)} characters)"


def _convert(parser: Any, text: str, value_name: str) -> Any:
    try:
        return parser(text)
    except InvalidInputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    except ValueError:
        # int() rejects strings of more than 4300 digits (sys.set_int_max_str_digits).
        raise argparse.ArgumentTypeError(f"invalid {value_name} {quoted(text)}: the number has too many digits") from None


def amount(text: str) -> int:
    """Parse an amount into wei: `0.01ether`, `10gwei` or plain wei."""
    return int(_convert(parse_amount, text, "amount"))


def amount_at_most(maximum: int, reason: str) -> Callable[[str], int]:
    """Return an amount parser that rejects more than `maximum` wei, stating `reason` for the limit."""

    def parse(text: str) -> int:
        value = amount(text)
        if value > maximum:
            raise argparse.ArgumentTypeError(
                f"invalid amount {quoted(text)}: the largest accepted is {amount_option(maximum)} ({reason})"
            )
        return value

    return parse


def duration(text: str) -> int:
    """Parse a duration into seconds: `90s`, `10m`, `2h`, `1d`."""
    return int(_convert(parse_duration, text, "duration"))


def duration_at_most(maximum: int, reason: str) -> Callable[[str], int]:
    """Return a duration parser that rejects more than `maximum` seconds, stating `reason` for the limit."""

    def parse(text: str) -> int:
        value = duration(text)
        if value > maximum:
            raise argparse.ArgumentTypeError(
                f"invalid duration {quoted(text)}: the largest accepted is {floor_duration_option(maximum)} ({reason})"
            )
        return value

    return parse


def epsilon(text: str) -> int:
    """Parse a DP epsilon such as `0.5` into millionths, from 0 to `MAX_STORED_EPSILON`."""
    stripped = text.strip()
    if _EXPONENT_NOTATION.fullmatch(stripped):
        raise argparse.ArgumentTypeError(
            f"invalid epsilon {quoted(text)}: exponent notation is not accepted; write plain digits from 0 to "
            f"{MAX_STORED_EPSILON}, such as 0.5 or 10"
        )
    # Decimal compares exactly, whatever the length of the input.
    if _PLAIN_DECIMAL.fullmatch(stripped) and Decimal(stripped) > Decimal(MAX_STORED_EPSILON):
        raise argparse.ArgumentTypeError(
            f"invalid epsilon {quoted(text)}: the largest accepted is {MAX_STORED_EPSILON}, because the market "
            "stores epsilon in millionths as a uint64"
        )
    return int(_convert(parse_epsilon, text, "epsilon"))


def bounded_int(minimum: int, maximum: int, reason: str = "") -> Callable[[str], int]:
    """Return a parser of whole numbers from `minimum` to `maximum`; `reason` explains the limits in errors."""
    because = f" ({reason})" if reason else ""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid number {quoted(text)}: expected a whole number") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"invalid number {quoted(text)}: expected {minimum} to {maximum}{because}")
        return value

    return parse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {quoted(text)}: expected a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid number {quoted(text)}: expected 1 or more")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {quoted(text)}: expected a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid number {quoted(text)}: expected 0 or more")
    return value


def comma_list(text: str) -> list[str]:
    """Split comma-separated names and strip blanks: `a, b,c` gives `["a", "b", "c"]`."""
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"invalid list {quoted(text)}: write names separated by commas, e.g. a,b,c")
    return items
