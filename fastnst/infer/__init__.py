"""Inference from an exported model file: images, folders, video, webcam.

``main`` (the ``stylize`` command) runs on onnxruntime without torch; the torch
:class:`Stylizer` is imported only when it is asked for.
"""

from __future__ import annotations

from typing import Any

from fastnst.infer.cli import main

__all__ = ["Stylizer", "main", "parse_style_spec"]


def __getattr__(name: str) -> Any:
    if name in ("Stylizer", "parse_style_spec"):
        from fastnst.infer import stylize

        return getattr(stylize, name)
    raise AttributeError(name)
