"""Map templates and their registry, keyed by name and by the template id the contract uses.

Template ids are shared with the `DataMarket` contract: count = 0, sum = 1, mean = 2,
histogram = 3, crosstab = 4, ols = 5, vote = 6. Bit i of an owner's `templateMask` allows id i.
"""

from __future__ import annotations

from ..errors import SpecError
from .base import RAW_POSTPROCESS, ColumnUse, Template
from .count import CountTemplate
from .crosstab import CrosstabTemplate
from .histogram import HistogramTemplate
from .mean import MeanTemplate
from .ols import OlsTemplate
from .sum import SumTemplate
from .vote import VoteTemplate

__all__ = [
    "RAW_POSTPROCESS",
    "ColumnUse",
    "Template",
    "TEMPLATES",
    "get_template",
    "template_by_id",
    "template_mask",
]

TEMPLATES: dict[str, Template] = {
    template.name: template
    for template in (
        CountTemplate(),
        SumTemplate(),
        MeanTemplate(),
        HistogramTemplate(),
        CrosstabTemplate(),
        OlsTemplate(),
        VoteTemplate(),
    )
}

_BY_ID: dict[int, Template] = {template.template_id: template for template in TEMPLATES.values()}


def get_template(name: object, field: str = "template") -> Template:
    """Return the template called `name`.

    Raises:
        SpecError: no template has that name.
    """
    if not isinstance(name, str) or name not in TEMPLATES:
        raise SpecError(field, name, f"unknown template; expected one of {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def template_by_id(template_id: int) -> Template:
    """Return the template with the contract's id `template_id`.

    Raises:
        SpecError: no template has that id.
    """
    if template_id not in _BY_ID:
        raise SpecError("templateId", template_id, f"unknown template id; expected one of {sorted(_BY_ID)}")
    return _BY_ID[template_id]


def template_mask(*names: str) -> int:
    """Return the `templateMask` bits that allow the named templates, for an owner's policy."""
    mask = 0
    for name in names:
        mask |= 1 << get_template(name).template_id
    return mask
