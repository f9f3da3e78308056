"""Content photos for training: any image folder, COCO through the FiftyOne zoo, a FiftyOne
dataset by name, or the real photos bundled in scikit-image (works offline, anywhere)."""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from fastnst.errors import UserError
from fastnst.images import ImageReadError, center_square, find_images, open_rgb, pil_to_tensor

log = logging.getLogger(__name__)

ContentItem = Path | Image.Image

# Real photographs shipped inside scikit-image (no download): the offline default set.
EMBEDDED_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "stereo_motorcycle",
)


def embedded_content() -> list[ContentItem]:
    """scikit-image's bundled photos as RGB images (both views of the stereo pair)."""
    from skimage import data as skdata

    images: list[ContentItem] = []
    for name in EMBEDDED_PHOTOS:
        value = getattr(skdata, name)()
        arrays = value[:2] if isinstance(value, tuple) else (value,)
        images.extend(Image.fromarray(array).convert("RGB") for array in arrays)
    return images


def folder_content(dir: str | Path) -> list[ContentItem]:  # noqa: A002 - mirrors `data.dir`
    """Every image below ``dir``, recursively (COCO's train2017 is such a folder)."""
    root = Path(dir)
    if not root.is_dir():
        raise UserError(f"content folder not found: {root}")
    paths = find_images(root)
    if not paths:
        raise UserError(f"no images found below {root}")
    return list(paths)


class FiftyOneUnavailable(UserError):
    """FiftyOne content could not be had; the message tells the user what to do."""


# Where the FiftyOne zoo downloads COCO-2017 images from.
COCO_HOST = ("images.cocodataset.org", 80)


def coco_reachable(timeout: float = 3.0) -> bool:
    """Can the COCO download host be reached? Offline this answers in ``timeout`` at most,
    instead of the zoo's own retries."""
    try:
        with socket.create_connection(COCO_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def coco_content(max_samples: int = 20000, split: str = "train") -> list[ContentItem]:
    """COCO-2017 photos through the FiftyOne zoo (downloads on first use: needs internet)."""
    try:
        import fiftyone as fo
        import fiftyone.zoo as foz
    except ImportError as exc:
        raise FiftyOneUnavailable("data=coco needs FiftyOne: pip install 'fastnst[data]'") from exc
    downloaded = Path(fo.config.dataset_zoo_dir, "coco-2017", split).is_dir()
    if not downloaded and not coco_reachable():
        raise FiftyOneUnavailable(
            f"data=coco needs internet to fetch COCO-2017 from the FiftyOne zoo, and "
            f"{COCO_HOST[0]} cannot be reached. Offline, train on a local photo folder: "
            "data=folder data.dir=/path/to/train2017 (or ../shared/data/photos)"
        )
    try:
        dataset = foz.load_zoo_dataset(
            "coco-2017", split=split, max_samples=max_samples, label_types=[], shuffle=True, seed=0
        )
    except Exception as exc:  # noqa: BLE001 - the zoo raises many kinds; all mean the same here
        raise FiftyOneUnavailable(
            f"could not get COCO-2017 from the FiftyOne zoo ({type(exc).__name__}: {exc}). "
            "It needs internet on first use; offline, point data=folder data.dir=... at a "
            "local copy of train2017 or any photo folder"
        ) from None
    return [Path(p) for p in dataset.values("filepath")]


def fiftyone_content(name: str) -> list[ContentItem]:
    """The image files of a persistent FiftyOne dataset, by name
    (``fastnst datasets content NAME DIR`` builds one from a folder)."""
    try:
        import fiftyone as fo
    except ImportError as exc:
        raise FiftyOneUnavailable(
            "data=fiftyone needs FiftyOne: pip install 'fastnst[data]'"
        ) from exc
    if not fo.dataset_exists(name):
        known = ", ".join(fo.list_datasets()) or "none"
        raise FiftyOneUnavailable(f"no FiftyOne dataset named {name!r} (datasets here: {known})")
    paths = [Path(p) for p in fo.load_dataset(name).values("filepath")]
    if not paths:
        raise FiftyOneUnavailable(f"FiftyOne dataset {name!r} has no samples")
    return paths


def _load(item: ContentItem) -> Image.Image:
    return item if isinstance(item, Image.Image) else open_rgb(item)


class ContentDataset(Dataset):
    """Random resized crops with flips; a sample that fails to load is replaced by another.

    Each sample is ``(image [3, S, S], skipped)`` where ``skipped`` counts the unreadable
    files passed over to produce it, so the training loop can log the total.
    """

    def __init__(
        self,
        items: Sequence[ContentItem],
        image_size: int = 256,
        scale: tuple[float, float] = (0.35, 1.0),
        length: int | None = None,
    ) -> None:
        if not items:
            raise ValueError("no content images")
        self.items = list(items)
        self.length = length or len(self.items)
        self.transform = v2.Compose(
            [
                v2.RandomResizedCrop(image_size, scale=scale, antialias=True),
                v2.RandomHorizontalFlip(),
            ]
        )
        self._reported: set[int] = set()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index %= len(self.items)
        skipped = 0
        for _ in range(20):
            try:
                image = _load(self.items[index])
                return self.transform(pil_to_tensor(image)), skipped
            except ImageReadError as exc:
                skipped += 1
                if index not in self._reported:
                    self._reported.add(index)
                    log.warning("skipping unreadable content image: %s", exc)
                index = random.randrange(len(self.items))
        raise UserError("20 content images in a row could not be read; check the folder")


def validation_images(items: Sequence[ContentItem], count: int, size: int) -> torch.Tensor:
    """The first ``count`` readable items as fixed centre squares ``[count, 3, size, size]``."""
    tiles = []
    for item in items:
        if len(tiles) == count:
            break
        try:
            tiles.append(center_square(pil_to_tensor(_load(item)), size))
        except ImageReadError:
            continue
    if not tiles:
        raise UserError("no readable content image for the validation previews")
    return torch.stack(tiles)
