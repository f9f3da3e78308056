"""Style sets: named groups of images whose mean Gram matrix is one style's target.

The ``conf/style/*.yaml`` configs instantiate one of the builders below through
``_target_``; each returns a list of :class:`StyleSet` in the network's style order.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fastnst.data.textures import UNIVERSES, universe_textures
from fastnst.errors import UserError
from fastnst.images import ImageReadError, find_images, load_image, resize_long_side

log = logging.getLogger(__name__)


@dataclass
class StyleSet:
    """One style: its name, the image files that define it, or in-memory images."""

    name: str
    paths: list[Path] = field(default_factory=list)
    images: list[torch.Tensor] = field(default_factory=list)
    coefficient: float = 1.0
    source: str = "files"

    def describe(self) -> str:
        """Where the style's look came from, as recorded in exported models."""
        if self.source == "procedural":
            return "procedural stand-in (built-in texture; no images of this style were given)"
        return f"{len(self.paths) + len(self.images)} image(s)" + (
            f", e.g. {self.paths[0].name}" if self.paths else ""
        )

    def load(self, size: int) -> list[torch.Tensor]:
        """The style's images with long side ``size`` (0: as they are); unreadable files are
        skipped."""

        def resized(image: torch.Tensor) -> torch.Tensor:
            return resize_long_side(image, size) if size else image

        loaded = [resized(image) for image in self.images]
        for path in self.paths:
            try:
                loaded.append(resized(load_image(path)))
            except ImageReadError as exc:
                log.warning("style %s: skipping %s", self.name, exc)
        if not loaded:
            raise UserError(f"style {self.name!r} has no readable image")
        return loaded


def _coefficient(coefficients: Mapping[str, float] | None, name: str) -> float:
    return float((coefficients or {}).get(name, 1.0))


def spiderverse_styles(
    root: str | Path,
    universes: Sequence[str] = tuple(UNIVERSES),
    max_images: int = 64,
    coefficients: Mapping[str, float] | None = None,
    texture_size: int = 384,
    seed: int = 0,
) -> list[StyleSet]:
    """One style per universe from ``root/<universe>/`` frames (``fastnst extract-frames``
    writes them); a universe with no frames falls back to built-in comic-print textures."""
    root = Path(root)
    styles = []
    rng = random.Random(seed)
    for name in universes:
        frames = find_images(root / name) if (root / name).is_dir() else []
        if frames:
            if len(frames) > max_images:
                frames = sorted(rng.sample(frames, max_images))
            log.info("style %s: %d frames from %s", name, len(frames), root / name)
            styles.append(
                StyleSet(name, paths=frames, coefficient=_coefficient(coefficients, name))
            )
        else:
            log.warning(
                "style %s: no frames in %s - using the built-in procedural comic-print texture "
                "instead (extract frames with fastnst extract-frames for the film's real look)",
                name,
                root / name,
            )
            styles.append(
                StyleSet(
                    name,
                    images=universe_textures(name, size=texture_size, seed=seed),
                    coefficient=_coefficient(coefficients, name),
                    source="procedural",
                )
            )
    return styles


def folder_styles(
    dir: str | Path,  # noqa: A002 - mirrors the `style.dir` config key
    max_images: int = 64,
    coefficients: Mapping[str, float] | None = None,
    seed: int = 0,
) -> list[StyleSet]:
    """Each image directly in ``dir`` is a style; each subfolder is one style of many images."""
    root = Path(dir)
    if not root.is_dir():
        raise UserError(f"style folder not found: {root}")
    rng = random.Random(seed)
    styles = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            paths = find_images(entry)
            if len(paths) > max_images:
                paths = sorted(rng.sample(paths, max_images))
        else:
            paths = find_images(entry)
        if paths:
            name = entry.name if entry.is_dir() else entry.stem
            styles.append(StyleSet(name, paths=paths, coefficient=_coefficient(coefficients, name)))
    if not styles:
        raise UserError(f"no style images in {root}")
    return styles


def wikiart_styles(
    root: str | Path,
    num_styles: int = 10,
    group: str = "painting",
    max_images: int = 32,
    coefficients: Mapping[str, float] | None = None,
    seed: int = 0,
) -> list[StyleSet]:
    """Pick ``num_styles`` styles from a WikiArt tree ``root/<movement>/<artist>_<title>.jpg``.

    ``group`` says what one style is: ``painting`` (one image), ``artist`` (all of an
    artist's paintings, the artist being the file name before ``_``) or ``movement`` (a
    top-level folder). The pick is random but fixed by ``seed``.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"WikiArt folder not found: {root}")
    paths = find_images(root)
    groups: dict[str, list[Path]] = {}
    for path in paths:
        rel = path.relative_to(root)
        if group == "painting":
            key = path.stem
        elif group == "artist":
            key = path.stem.split("_", 1)[0]
        elif group == "movement":
            key = rel.parts[0] if len(rel.parts) > 1 else "unsorted"
        else:
            raise UserError(f"style.sets.group must be painting, artist or movement, got {group!r}")
        groups.setdefault(key, []).append(path)
    if len(groups) < num_styles:
        raise UserError(
            f"{root} has {len(groups)} {group} groups, fewer than num_styles={num_styles}"
        )
    rng = random.Random(seed)
    chosen = sorted(rng.sample(sorted(groups), num_styles))
    styles = []
    for name in chosen:
        members = groups[name]
        if len(members) > max_images:
            members = sorted(rng.sample(members, max_images))
        styles.append(StyleSet(name, paths=members, coefficient=_coefficient(coefficients, name)))
    return styles
