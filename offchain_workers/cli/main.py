"""Entry point of `pmsr`, the command line of PMSR market.

`main(argv)` parses the command, resolves the settings, runs the command's handler and turns any
failure into one line on stderr with a non-zero exit status: 1 for a failed command, 2 for an
invalid command line, 130 after Ctrl-C and 143 after SIGTERM. `--debug` adds the traceback and
debug logging.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import IO

from pmsr_chain._process import defer_stop_signal
from pmsr_chain.errors import PmsrError

from . import aggregator, chain, demo, deploy, owner, query, wallet
from .config import resolve_settings
from .context import Context
from .errors import CliError, Terminated, UsageError, describe_error
from .options import ArgumentParser, add_global_options
from .output import Output

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="pmsr",
        description="PMSR market: a data market in which the computation moves to the data.",
        epilog="Run `pmsr COMMAND --help` for the options of a command.",
    )
    add_global_options(parser, suppress=False)
    common = ArgumentParser(add_help=False)
    add_global_options(common, suppress=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=ArgumentParser)
    for module in (chain, wallet, deploy, aggregator, owner, query, demo):
        module.register(commands, common)
    return parser


def _configure_logging(stream: IO[str], debug: bool) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    if debug:
        # The HTTP libraries log every request at debug level.
        for noisy in ("urllib3", "web3", "asyncio", "matplotlib", "PIL"):
            logging.getLogger(noisy).setLevel(logging.INFO)
    return handler


def _print_error(stream: IO[str], message: str) -> None:
    print(f"error: {message}", file=stream)
    stream.flush()


def _raise_terminated(signum: int, frame: object) -> None:
    if defer_stop_signal(signum):
        return
    raise Terminated()


def _raise_interrupt(signum: int, frame: object) -> None:
    if defer_stop_signal(signum):
        return
    raise KeyboardInterrupt()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `pmsr` command and return its exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    stdout, stderr = sys.stdout, sys.stderr
    debug = "--debug" in arguments
    try:
        options = build_parser().parse_args(arguments)
    except UsageError as error:
        _print_error(stderr, describe_error(error))
        return error.exit_status
    except SystemExit as exit_request:  # --help and --version
        return int(exit_request.code or 0)

    handler = _configure_logging(stderr, debug)
    previous_handlers = {}
    if threading.current_thread() is threading.main_thread():
        previous_handlers = {
            signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_terminated),
            signal.SIGINT: signal.signal(signal.SIGINT, _raise_interrupt),
        }
    try:
        settings = resolve_settings(vars(options))
        context = Context(settings, Output(json_mode=settings.json, stdout=stdout, stderr=stderr))
        status = options.handler(context, options)
        return int(status or 0)
    except Terminated:
        _print_error(stderr, "terminated")
        return 143
    except KeyboardInterrupt:
        _print_error(stderr, "interrupted")
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`pmsr ... | head`): stop quietly, as other tools do.
        if stdout is sys.__stdout__:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        return 1
    except (PmsrError, OSError) as error:
        if debug:
            traceback.print_exc(file=stderr)
        _print_error(stderr, describe_error(error))
        return error.exit_status if isinstance(error, CliError) else 1
    except Exception as error:  # noqa: BLE001 - the last resort keeps the one-line promise
        if debug:
            traceback.print_exc(file=stderr)
        _print_error(stderr, f"unexpected {describe_error(error)}; rerun with --debug for the traceback")
        return 1
    finally:
        logging.getLogger().removeHandler(handler)
        for number, previous in previous_handlers.items():
            signal.signal(number, previous)


if __name__ == "__main__":
    sys.exit(main())
