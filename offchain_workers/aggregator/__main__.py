"""Run an aggregator service: `python -m offchain_workers.aggregator --config FILE.json`.

Logs go to stderr. SIGTERM or SIGINT stops the service after the step in progress. The database
keeps everything needed to resume, so a later start continues where this one stopped.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType

from pmsr_chain.errors import PmsrError, RpcError

from .config import load_config
from .registration import register_aggregator
from .service import AggregatorService

logger = logging.getLogger("offchain_workers.aggregator")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offchain_workers.aggregator", description="Run a PMSR market aggregator service.")
    parser.add_argument("--config", required=True, help="path of the aggregator's JSON configuration file")
    parser.add_argument(
        "--register-stake",
        type=int,
        metavar="WEI",
        help="register the account with this stake (in wei) before running, unless it is already registered",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level (default INFO)")
    parser.add_argument("--debug", action="store_true", help="print a traceback when start-up fails")
    arguments = parser.parse_args(argv)

    logging.basicConfig(
        level=arguments.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(arguments.config)
        service = AggregatorService.from_config(config)
    except (PmsrError, OSError) as error:
        return _startup_failed(error, arguments.debug)
    try:
        if arguments.register_stake is not None:
            register_aggregator(service.client, config.load_key_pair(), arguments.register_stake)
        service.check_registration()
    except RpcError as error:
        # The node may come up later, and the poll loop retries until it does.
        logger.warning("cannot check the registration yet: %s", error)
    except (PmsrError, OSError) as error:
        service.state.close()
        return _startup_failed(error, arguments.debug)

    def request_stop(signal_number: int, frame: FrameType | None) -> None:
        logger.info("received %s; stopping after the current step", signal.Signals(signal_number).name)
        service.stop(timeout=0)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        service.run()
    finally:
        service.state.close()
    return 0


def _startup_failed(error: BaseException, debug: bool) -> int:
    if debug:
        logger.error("start-up failed", exc_info=error)
    else:
        logger.error("start-up failed: %s", error)
    return 2


if __name__ == "__main__":
    sys.exit(main())
