"""Inference from an exported model file: images, folders, video, webcam.

Core dependencies only (torch, torchvision, safetensors, numpy, pillow, tqdm, av).
"""

from fastnst.infer.cli import main
from fastnst.infer.stylize import Stylizer, parse_style_spec

__all__ = ["Stylizer", "main", "parse_style_spec"]
