"""Figures of the demos, drawn with matplotlib's Agg backend (no display needed).

The wage figure has one small panel per coefficient, because the terms differ by four orders of
magnitude (the intercept is about 4, the experience^2 term about -0.001): each panel shows the
secure estimate and the plaintext one with their 95% confidence intervals. Below them the weekly
wage histogram shows the secure counts as bars and the plaintext counts as markers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pmsr_chain.errors import PmsrError

from .reference import WAGE_TERMS

__all__ = ["PlotError", "plot_wage_study", "plot_audit", "plot_ensemble"]

# A 95% confidence interval spans this many standard errors on each side (normal approximation).
Z_95 = 1.959964

_SECURE_COLOUR = "#1f77b4"
_PLAINTEXT_COLOUR = "#d62728"


class PlotError(PmsrError, OSError):
    """A figure could not be written."""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path) -> None:
    try:
        figure.savefig(path, dpi=120)
    except OSError as error:
        raise PlotError(f"cannot write the figure to {path}: {error.strerror or error}; check the directory") from None


def _interval(value: float | None, error: float | None) -> float:
    if value is None or error is None or not math.isfinite(error):
        return 0.0
    return Z_95 * error


def _coefficient_panel(axes: Any, term: str, section: Mapping[str, Any]) -> None:
    secure = (section.get("coefficients") or {}).get(term)
    plain = (section.get("plaintext_coefficients") or {}).get(term)
    secure_error = (section.get("standard_errors") or {}).get(term)
    plain_error = (section.get("plaintext_standard_errors") or {}).get(term)
    noise = (section.get("noise_sd") or {}).get(term)
    if noise is not None:
        # The secure estimate's error is sampling error plus the independent DP noise.
        secure_error = math.hypot(secure_error or 0.0, noise)
    if secure is not None:
        axes.errorbar([0], [secure], yerr=[_interval(secure, secure_error)], fmt="o", capsize=5,
                      color=_SECURE_COLOUR, label="secure (market)")
    if plain is not None:
        axes.errorbar([1], [plain], yerr=[_interval(plain, plain_error)], fmt="s", capsize=5,
                      color=_PLAINTEXT_COLOUR, label="plaintext")
    if secure is None:
        axes.text(0, 0.5, "no secure\nresult", transform=axes.get_xaxis_transform(), ha="center", va="center",
                  fontsize=8, color=_SECURE_COLOUR)
    axes.set_xlim(-0.7, 1.7)
    axes.set_xticks([0, 1], ["secure", "plain"])
    axes.set_title(term, fontsize=10, pad=14)
    axes.tick_params(axis="y", labelsize=8)
    axes.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4), useOffset=False)


def _histogram_panel(axes: Any, section: Mapping[str, Any]) -> None:
    bins = section.get("bins") or [str(index) for index in range(len(section["plaintext_counts"]))]
    positions = range(len(bins))
    if section.get("counts") is not None:
        axes.bar(positions, section["counts"], color=_SECURE_COLOUR, alpha=0.8, label="secure (market)")
    axes.plot(positions, section["plaintext_counts"], "_", color=_PLAINTEXT_COLOUR, markersize=22,
              markeredgewidth=2.5, label="plaintext")
    axes.set_xticks(list(positions), bins, rotation=30, ha="right", fontsize=8)
    axes.set_xlabel(f"weekly wage ({section['unit']})")
    axes.set_ylabel("workers")
    axes.legend(fontsize=8)


def plot_wage_study(report: Mapping[str, Any], path: Path) -> Path:
    """Draw the coefficients with 95% intervals and the wage histogram of a wage-study report to a PNG."""
    plt = _pyplot()
    figure = plt.figure(figsize=(12, 7.5))
    grid = figure.add_gridspec(2, len(WAGE_TERMS), height_ratios=[1, 1.2], hspace=0.45, wspace=0.55)
    section = report["ols"]
    try:
        for column, term in enumerate(WAGE_TERMS):
            _coefficient_panel(figure.add_subplot(grid[0, column]), term, section)
        histogram_axes = figure.add_subplot(grid[1, :])
        _histogram_panel(histogram_axes, report["histogram"])
        mode = "exact" if report["exact"] else "DP, " + (report.get("privacy") or f"epsilon {report['epsilon']:g} per query")
        figure.suptitle(
            f"CPS1988 wage study through the market: {report['owners']:,} owners, {report['aggregators']} "
            f"aggregators ({mode})\nlog(wage) ~ experience + experience^2 + education + ethnicity: "
            "coefficients with 95% intervals" + ("" if report["exact"] else " (secure: sampling error and DP noise)")
            + ("\nNOT RELIABLE: the DP noise forced a ridge, so the secure coefficients are biased (see the report)"
               if section.get("warning") else ""),
            fontsize=11,
        )
        if section.get("warning"):
            # The third title line needs room above the coefficient panels.
            figure.subplots_adjust(top=0.84)
        _save(figure, Path(path))
    finally:
        plt.close(figure)
    return Path(path)


def plot_audit(report: Mapping[str, Any], path: Path) -> Path:
    """Draw an audit report's crosstab: one panel per rating band, secure and plaintext bars per genre."""
    crosstab = report["crosstab"]
    bands, genres = crosstab["rows"], crosstab["columns"]
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(bands), figsize=(3.2 * len(bands), 4.2), sharey=True)
    panels = list(axes) if len(bands) > 1 else [axes]
    try:
        positions = list(range(len(genres)))
        for index, (band, panel) in enumerate(zip(bands, panels)):
            if crosstab.get("counts") is not None:
                panel.bar([p - 0.2 for p in positions], crosstab["counts"][index], width=0.4, color=_SECURE_COLOUR,
                          label="secure (market)")
            panel.bar([p + 0.2 for p in positions], crosstab["plaintext_counts"][index], width=0.4,
                      color=_PLAINTEXT_COLOUR, label="plaintext")
            panel.set_xticks(positions, genres, rotation=45, ha="right", fontsize=8)
            panel.set_title(f"rating {band}", fontsize=10)
        panels[0].set_ylabel("ratings")
        panels[0].legend(fontsize=8)
        mode = "exact" if report["exact"] else f"DP, epsilon {report['epsilon']:g}"
        figure.suptitle(f"MovieLens ratings by genre and rating band: {report['owners']:,} users ({mode})", fontsize=11)
        figure.tight_layout()
        _save(figure, Path(path))
    finally:
        plt.close(figure)
    return Path(path)


def plot_ensemble(report: Mapping[str, Any], path: Path) -> Path:
    """Draw each model's accuracy and the secure ensemble's as horizontal bars."""
    names = [model["name"] for model in report["models"]]
    values = [model["accuracy"] for model in report["models"]]
    vote = report["vote"]
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 0.45 * (len(names) + 1) + 1.6))
    try:
        labels = [*names, "secure ensemble"]
        if vote.get("accuracy") is not None:
            values = [*values, vote["accuracy"]]
        else:
            labels = names
        colours = [_PLAINTEXT_COLOUR] * len(names) + [_SECURE_COLOUR] * (len(labels) - len(names))
        axes.barh(range(len(labels)), values, color=colours)
        axes.set_yticks(range(len(labels)), labels)
        axes.invert_yaxis()
        axes.set_xlim(0, 1.08)
        axes.set_xlabel(f"accuracy on {vote['questions']} held-out questions")
        for position, value in enumerate(values):
            axes.text(value + 0.01, position, f"{value:.3f}", va="center", fontsize=8)
        axes.set_title("Six private classifiers and their secure majority vote (digits)", fontsize=11)
        figure.tight_layout()
        _save(figure, Path(path))
    finally:
        plt.close(figure)
    return Path(path)
