"""`pmsr demo wages|audit|ensemble`: whole market runs on real data, on an embedded Anvil chain.

Each command starts its own Anvil, deploys the market, registers throwaway aggregators and owners,
runs the service processes and plays the analyst, then prints what happened. Progress goes to
stderr; the report goes to stdout (one JSON object with `--json`). The chain, keys and owner files
live in a temporary directory that is removed after a successful run and kept, with the service
logs, after a failed one (or always, in the directory given with `--workdir`).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .context import Context
from .errors import CliError
from .options import add_command, add_group, epsilon, positive_int

__all__ = ["register"]

logger = logging.getLogger(__name__)

# Largest --seed: pandas and numpy take seeds below 2^32.
MAX_SEED = 2**32 - 1


def _owner_count(text: str) -> int | None:
    from offchain_workers.datasets import CPS1988_WORKERS

    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid owner count {text!r}: expected a whole number or all") from None
    if not 2 <= value <= CPS1988_WORKERS:
        raise argparse.ArgumentTypeError(f"invalid owner count {value}: CPS1988 has 2..{CPS1988_WORKERS} workers, or pass all")
    return value


def _aggregator_count(text: str) -> int:
    value = positive_int(text)
    if not 2 <= value <= 5:
        raise argparse.ArgumentTypeError(f"invalid aggregator count {value}: the demo market takes 2..5 aggregators")
    return value


def _add_common_options(parser: argparse.ArgumentParser, *, default_epsilon: str | None, default_text: str = "") -> None:
    """Add --epsilon, --aggregators and the output options.

    A `default_epsilon` of None leaves --epsilon unset unless given, for a demo whose queries have
    different defaults; `default_text` then describes them in the help.
    """
    default = None if default_epsilon is None else epsilon(default_epsilon)
    parser.add_argument("--epsilon", type=epsilon, default=default, metavar="E",
                        help="differential privacy epsilon per query; 0 runs exact, noise-free queries "
                             f"(default {default_text or default_epsilon})")
    parser.add_argument("--aggregators", type=_aggregator_count, default=3, metavar="K",
                        help="number of aggregators, 2..5 (default 3)")
    parser.add_argument("--plot", metavar="FILE.png", help="also draw the results to this PNG file")
    parser.add_argument("--workdir", metavar="DIR",
                        help="keep the chain's keys, owner files and service logs in DIR (default: a temporary directory)")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    actions = add_group(commands, "demo", "run a whole market on real data, on an embedded Anvil chain")

    wages = add_command(
        actions, common, "wages", "the CPS1988 wage study: a regression and a histogram over private rows",
        run_wages,
        description="Each sampled worker of AER/CPS1988 becomes a data owner holding its own row. An analyst pays\n"
                    "for the wage equation log(wage) ~ experience + experience^2 + education + ethnicity and a\n"
                    "weekly wage histogram; the secure results are printed beside the plaintext ones.",
    )
    wages.add_argument("--owners", type=_owner_count, default=2_000, metavar="N|all",
                       help="number of workers taking part, or all 28,155 (default 2000)")
    wages.add_argument("--seed", type=_seed, default=0, help="which workers are sampled (default 0)")
    wages.add_argument("--fleets", type=positive_int, default=2, metavar="P",
                       help="owner agent processes hosting the owners (default 2)")
    _add_common_options(wages, default_epsilon=None, default_text="10 for the regression, 1 for the histogram")

    audit = add_command(
        actions, common, "audit", "a recommender audit: MovieLens ratings by genre and band, with DP", run_audit,
        description="Each MovieLens user (dslabs/movielens, 671 users) keeps their own ratings. The analyst requests\n"
                    "a crosstab of rating band by genre with differential privacy, printed beside the plaintext one.",
    )
    audit.add_argument("--users", type=positive_int, metavar="N", help="take the first N users (default all 671)")
    audit.add_argument("--contribution-bound", type=positive_int, default=50, metavar="RATINGS",
                       help="most ratings one user adds to the table (default 50)")
    _add_common_options(audit, default_epsilon="1.0")

    ensemble = add_command(
        actions, common, "ensemble", "six private classifiers vote on held-out digits", run_ensemble,
        description="Six model owners train different scikit-learn classifiers on their own shards of the digits\n"
                    "data; the analyst's vote query returns how many models chose each digit per held-out image.",
    )
    ensemble.add_argument("--questions", type=positive_int, default=100, metavar="Q",
                          help="held-out images to vote on; the result has Q x 10 counts (default 100)")
    ensemble.add_argument("--rows-per-model", type=positive_int, default=120, metavar="N",
                          help="training images in each owner's shard (default 120)")
    ensemble.add_argument("--seed", type=_seed, default=0, help="how the images are split (default 0)")
    _add_common_options(ensemble, default_epsilon="0")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: expected a whole number") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"invalid seed {value}: pass 0..{MAX_SEED}")
    return value


def _check_plot(path: str | None) -> Path | None:
    """Check --plot before the run, so a bad path does not waste a whole market run."""
    if path is None:
        return None
    target = Path(path).expanduser().absolute()
    if target.suffix.lower() != ".png":
        raise CliError(f"--plot {path!r} must name a .png file, such as wages.png")
    if target.is_dir():
        raise CliError(f"--plot {path!r} is a directory; name a .png file in it")
    if target.parent.exists() and not target.parent.is_dir():
        raise CliError(f"--plot {path!r}: {target.parent} is a file, not a directory; choose another path")
    if not target.parent.is_dir():
        raise CliError(f"--plot {path!r}: the directory {target.parent} does not exist; create it or choose another path")
    if not os.access(target.parent, os.W_OK):
        raise CliError(f"--plot {path!r}: the directory {target.parent} is not writable; choose another path")
    return target


def _work_dir(path: str) -> Path:
    if not path.strip():
        raise CliError("--workdir is empty; pass a directory (it is created if missing)")
    work_dir = Path(path).expanduser().resolve()
    if work_dir.exists() and not work_dir.is_dir():
        raise CliError(f"--workdir {path!r} is a file, not a directory; pass a directory (it is created if missing)")
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CliError(f"--workdir {path!r} cannot be created: {error.strerror or error}; choose another path") from None
    return work_dir


def _run(
    context: Context,
    args: argparse.Namespace,
    run: Callable[[Path, IO[str]], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    draw: Callable[[dict[str, Any], Path], Any] | None,
) -> int:
    plot = _check_plot(args.plot)
    if args.workdir is not None:
        work_dir = _work_dir(args.workdir)
        keep = True
    else:
        work_dir = Path(tempfile.mkdtemp(prefix="pmsr-demo-"))
        keep = False
    try:
        report = run(work_dir, context.output.stderr)
    except BaseException:
        context.output.notice(f"the chain's keys, owner files and service logs are kept in {work_dir}")
        raise
    if plot is not None and draw is not None:
        draw(report, plot)
        report["plot"] = str(plot)
    if not keep:
        shutil.rmtree(work_dir, ignore_errors=True)
    else:
        report["workdir"] = str(work_dir)
    context.output.result(report, lambda: render(report) + (f"\n\nplot: {plot}" if plot is not None else ""))
    return 0


def run_wages(context: Context, args: argparse.Namespace) -> int:
    from offchain_workers.demo.plot import plot_wage_study
    from offchain_workers.demo.report import wage_report
    from offchain_workers.demo.wages import WageStudyOptions, run_wage_study

    privacy = {} if args.epsilon is None else {"epsilon_millionths": args.epsilon,
                                               "histogram_epsilon_millionths": args.epsilon}
    options = WageStudyOptions(owners=args.owners, aggregators=args.aggregators, seed=args.seed, fleets=args.fleets,
                               **privacy)
    return _run(context, args, lambda work_dir, stream: run_wage_study(options, work_dir, stream), wage_report,
                plot_wage_study)


def run_audit(context: Context, args: argparse.Namespace) -> int:
    from offchain_workers.demo.audit import AuditOptions, run_audit as run
    from offchain_workers.demo.plot import plot_audit
    from offchain_workers.demo.report import audit_report

    options = AuditOptions(users=args.users, epsilon_millionths=args.epsilon,
                           contribution_bound=args.contribution_bound, aggregators=args.aggregators)
    return _run(context, args, lambda work_dir, stream: run(options, work_dir, stream), audit_report, plot_audit)


def run_ensemble(context: Context, args: argparse.Namespace) -> int:
    from offchain_workers.demo.ensemble import EnsembleOptions, run_ensemble as run
    from offchain_workers.demo.plot import plot_ensemble
    from offchain_workers.demo.report import ensemble_report

    options = EnsembleOptions(questions=args.questions, rows_per_model=args.rows_per_model,
                              epsilon_millionths=args.epsilon, aggregators=args.aggregators, seed=args.seed)
    return _run(context, args, lambda work_dir, stream: run(options, work_dir, stream), ensemble_report,
                plot_ensemble)
