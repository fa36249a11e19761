"""`vote`: one-hot votes over C classes for Q questions, for ensembling models (template id 6)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ._axes import category_index
from ._params import read_categories, read_int, read_object, read_string
from .base import ColumnUse, Template

__all__ = ["VoteParams", "VoteTemplate"]

MAX_QUESTIONS = 65536


@dataclass(frozen=True)
class VoteParams:
    """JSON form: `{"classes": [TEXT, ...], "labelColumn": NAME, "questionColumn": NAME, "questions": Q}`.

    An owner's table has one row per answered question: the question number (0..Q-1) in
    `questionColumn` and the predicted class in `labelColumn`. Only an owner's first row for each
    question counts; rows with another question number or an undeclared class are not usable.
    """

    question_column: str
    label_column: str
    questions: int
    classes: tuple[str, ...]


class VoteTemplate(Template[VoteParams]):
    """Output: Q x C vote counts, question-major. Post-processing picks each question's majority."""

    name = "vote"
    template_id = 6
    postprocess_names = ("majority",)

    def parse_params(self, raw: Any, field: str = "params") -> VoteParams:
        obj = read_object(raw, field, required=("classes", "labelColumn", "questionColumn", "questions"))
        return VoteParams(
            question_column=read_string(obj["questionColumn"], f"{field}.questionColumn"),
            label_column=read_string(obj["labelColumn"], f"{field}.labelColumn"),
            questions=read_int(obj["questions"], f"{field}.questions", 1, MAX_QUESTIONS),
            classes=read_categories(obj["classes"], f"{field}.classes"),
        )

    def params_to_json(self, params: VoteParams) -> dict[str, Any]:
        return {
            "classes": list(params.classes),
            "labelColumn": params.label_column,
            "questionColumn": params.question_column,
            "questions": params.questions,
        }

    def output_names(self, params: VoteParams) -> tuple[str, ...]:
        return tuple(f"q{question}={label}" for question in range(params.questions) for label in params.classes)

    def column_uses(self, params: VoteParams) -> tuple[ColumnUse, ...]:
        return (
            ColumnUse("params.questionColumn", params.question_column, ("number",)),
            ColumnUse("params.labelColumn", params.label_column, ("string", "number"), params.classes),
        )

    def _questions(self, params: VoteParams, rows: pd.DataFrame) -> NDArray[np.int64]:
        values = rows[params.question_column].to_numpy(dtype=np.float64, na_value=np.nan)
        valid = np.isfinite(values) & (values == np.floor(values)) & (values >= 0) & (values < params.questions)
        return np.where(valid, np.nan_to_num(values), -1).astype(np.int64)

    def usable_rows(self, params: VoteParams, rows: pd.DataFrame) -> NDArray[np.bool_]:
        questions = self._questions(params, rows)
        usable = (questions >= 0) & (category_index(rows[params.label_column], params.classes) >= 0)
        # Keep the first usable row per question, so each owner casts at most one vote per question.
        first = pd.Series(np.where(usable, questions, -1)).duplicated(keep="first").to_numpy()
        return usable & ~first

    def map_rows(self, params: VoteParams, rows: pd.DataFrame) -> NDArray[np.float64]:
        cells = self._questions(params, rows) * len(params.classes) + category_index(rows[params.label_column], params.classes)
        return np.bincount(cells, minlength=params.questions * len(params.classes)).astype(np.float64)

    def row_l1_bound(self, params: VoteParams) -> Fraction | None:
        return Fraction(1)

    def postprocess(self, params: VoteParams, name: str, values: NDArray[np.float64]) -> dict[str, Any]:
        votes = values.reshape(params.questions, len(params.classes))
        # argmax returns the first maximum, so a tie goes to the class listed first in `classes`.
        winners = np.argmax(votes, axis=1)
        return {
            "classes": list(params.classes),
            "winners": [params.classes[index] for index in winners],
            "votes": [[float(value) for value in row] for row in votes],
        }
