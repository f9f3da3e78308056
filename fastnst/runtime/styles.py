"""Style specs (``2``, ``gwen``, ``miles:0.7,gwen:0.3``, ``all``) as NumPy weight rows."""

from __future__ import annotations

import numpy as np

from fastnst.errors import UserError


def parse_style_spec(spec: str, style_names: list[str]) -> list[tuple[str, np.ndarray]]:
    """A style spec → ``[(label, float32 weights[num_styles])]``.

    ``2`` or ``gwen`` picks one style, ``miles:0.7,gwen:0.3`` blends (weights are
    normalised to sum to one), ``all`` gives one entry per style.
    """
    count = len(style_names)
    spec = spec.strip()
    if spec == "all":
        eye = np.eye(count, dtype=np.float32)
        return [(name, eye[i]) for i, name in enumerate(style_names)]
    weights = np.zeros(count, dtype=np.float32)
    for part in spec.split(","):
        name, _, raw_weight = part.strip().partition(":")
        index = _style_index(name.strip(), style_names)
        try:
            weight = float(raw_weight) if raw_weight else 1.0
        except ValueError:
            raise UserError(f"bad weight {raw_weight!r} in style spec {spec!r}") from None
        if not weight >= 0 or weight == float("inf"):
            raise UserError(f"style weights must be finite and non-negative, got {raw_weight}")
        weights[index] += weight
    if float(weights.sum()) <= 0:
        raise UserError(f"style spec {spec!r} has only zero weights")
    label = spec.replace(":", "-").replace(",", "_")
    return [(label, weights / weights.sum())]


def _style_index(name: str, style_names: list[str]) -> int:
    if name in style_names:
        return style_names.index(name)
    if name.isdigit() and int(name) < len(style_names):
        return int(name)
    choices = ", ".join(f"{i}={n}" for i, n in enumerate(style_names))
    raise UserError(f"unknown style {name!r}; this model has {choices}")
