"""`python -m offchain_workers.owner --config FILE.json`: run an owner fleet until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from pmsr_chain.errors import PmsrError

from .agent import OwnerFleet
from .config import load_fleet_config

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m offchain_workers.owner",
        description="Run the owner agent for the owners listed in a configuration file.",
    )
    parser.add_argument("--config", required=True, type=Path, help="fleet configuration JSON file")
    parser.add_argument("--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING); default INFO")
    parser.add_argument("--once", action="store_true", help="run one pass and exit, for scripts and checks")
    arguments = parser.parse_args(argv)
    logging.basicConfig(
        level=arguments.log_level.upper(), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    stop = threading.Event()

    def request_stop(signal_number: int, _frame: object) -> None:
        logger.info("received %s; stopping after the current pass", signal.Signals(signal_number).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        fleet = OwnerFleet(load_fleet_config(arguments.config))
    except PmsrError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with fleet:
        if arguments.once:
            fleet.run_once()
        else:
            fleet.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
