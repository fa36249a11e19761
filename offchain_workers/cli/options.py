"""Argument parsing shared by every command: one-line usage errors, global options, value types."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from pmsr_chain.errors import InvalidInputError
from pmsr_chain.units import parse_amount, parse_duration

from offchain_workers.budget import parse_epsilon

from .errors import UsageError

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
    "amount",
    "duration",
    "epsilon",
    "positive_int",
    "non_negative_int",
    "comma_list",
]


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


def _convert(parser: Any, text: str) -> Any:
    try:
        return parser(text)
    except InvalidInputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def amount(text: str) -> int:
    """Parse an amount into wei: `0.01ether`, `10gwei` or plain wei."""
    return int(_convert(parse_amount, text))


def duration(text: str) -> int:
    """Parse a duration into seconds: `90s`, `10m`, `2h`, `1d`."""
    return int(_convert(parse_duration, text))


def epsilon(text: str) -> int:
    """Parse a DP epsilon such as `0.5` into millionths."""
    return int(_convert(parse_epsilon, text))


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: expected a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: expected 1 or more")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: expected a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: expected 0 or more")
    return value


def comma_list(text: str) -> list[str]:
    """Split comma-separated names and strip blanks: `a, b,c` gives `["a", "b", "c"]`."""
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"invalid list {text!r}: write names separated by commas, e.g. a,b,c")
    return items
