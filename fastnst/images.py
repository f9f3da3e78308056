"""Reading and writing images as float RGB tensors in [0, 1], NCHW, whatever the file holds.

Grayscale, RGBA, 16-bit, palette, CMYK and EXIF-rotated files all come back as plain RGB
the way a viewer would show them. Reading needs Pillow and NumPy alone; the tensor helpers
import torch when called.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fastnst.errors import UserError

if TYPE_CHECKING:  # torch is imported where a tensor is made: the onnx path never needs it
    import torch

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
# Largest image read, in pixels: a file's header is checked before its pixels are decoded, so
# a "decompression bomb" (a small file claiming 20000x20000) is refused instead of filling
# the memory. 100 megapixels is a 12000x8000 photo; ``fastnst stylize --max-megapixels``
# raises it. Pillow's own check is replaced by this one (it raises or only warns by size).
DEFAULT_MAX_PIXELS = 100_000_000
Image.MAX_IMAGE_PIXELS = None


class ImageReadError(UserError):
    """A file that cannot be read as an image; the message is fit for the user."""


def find_images(root: str | Path) -> list[Path]:
    """Every image file below ``root`` (recursively, hidden entries skipped), sorted."""
    root = Path(root)
    if root.is_file():
        return [root] if root.suffix.lower() in IMAGE_EXTENSIONS else []
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image → 8-bit RGB as displayed: EXIF rotation applied, alpha over white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max() > 255 or image.mode.startswith("I;16") else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8))
    elif image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(array * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert("RGB")


def open_rgb(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Load ``path`` fully as RGB, or raise :class:`ImageReadError` saying why not."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise ImageReadError(f"empty file: {path}")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageReadError(
                    f"{path} is {width}x{height} ({width * height / 1e6:.0f} megapixels), over "
                    f"the limit of {max_pixels / 1e6:.0f}; raise it with --max-megapixels"
                )
            image.load()
            return to_rgb(image)
    except UnidentifiedImageError:
        raise ImageReadError(f"cannot read image {path}: {_unknown_format(path)}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from None


# ISO media brands of HEIF files (iPhone photos) and AVIF, which Pillow cannot read.
HEIF_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"mif1": "HEIF", b"avif": "AVIF"}


def _unknown_format(path: Path) -> str:
    """Why Pillow could not identify ``path``, naming HEIC/AVIF and what is supported."""
    with path.open("rb") as handle:
        head = handle.read(12)
    supported = "use JPEG, PNG, WebP, BMP, TIFF or GIF"
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        return f"{HEIF_BRANDS[head[8:12]]} images are not supported; {supported}"
    return f"not an image in a supported format; {supported}"


def animation_frames(path: str | Path) -> int:
    """How many frames an image file holds (1 for a still; GIF, APNG, WebP can hold more)."""
    with Image.open(path) as image:
        return int(getattr(image, "n_frames", 1))


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """8-bit RGB PIL image → float ``[3, H, W]`` in [0, 1]."""
    import torch

    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """Float ``[3, H, W]`` (or ``[1, 3, H, W]``) in [0, 1] → 8-bit RGB PIL image."""
    if image.dim() == 4:
        image = image[0]
    array = image.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu()
    return Image.fromarray(array.numpy(), "RGB")


def load_image(path: str | Path) -> torch.Tensor:
    """File → float ``[3, H, W]`` in [0, 1]."""
    return pil_to_tensor(open_rgb(path))


def long_side_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """``(H, W)`` with the long side ``size`` and the aspect kept: what resize_long_side makes."""
    scale = size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_long_side(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``[..., H, W]`` so that the long side is ``size`` (antialiased), keeping aspect."""
    import torch.nn.functional as F

    h, w = images.shape[-2:]
    new = long_side_shape(h, w, size)
    if new == (h, w):
        return images
    batched = images if images.dim() == 4 else images.unsqueeze(0)
    out = F.interpolate(batched, size=new, mode="bilinear", antialias=True, align_corners=False)
    return out if images.dim() == 4 else out[0]


def gaussian_taps(sigma: float) -> np.ndarray:
    """The normalised 1-D Gaussian (radius 3 sigma) both backends blur with."""
    radius = int(np.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """``[N, C, H, W]`` blurred by the separable Gaussian both backends use
    (:func:`gaussian_taps`: radius 3 sigma, the border repeated), on
    the images' device and dtype: torch's twin of :func:`fastnst.runtime.arrays.gaussian_blur`."""
    import torch
    import torch.nn.functional as F

    taps = torch.from_numpy(gaussian_taps(sigma)).to(images.device, images.dtype)
    radius, channels = len(taps) // 2, images.shape[1]
    down = taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    across = taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    low = F.conv2d(F.pad(images, (0, 0, radius, radius), mode="replicate"), down, groups=channels)
    return F.conv2d(F.pad(low, (radius, radius, 0, 0), mode="replicate"), across, groups=channels)


def resize_short_side(image: torch.Tensor, short_side: int) -> torch.Tensor:
    """``image`` resized (aspect kept) so that its short side is ``short_side``."""
    h, w = image.shape[-2:]
    return resize_long_side(image, max(1, round(short_side * max(h, w) / min(h, w))))


def center_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the short side to ``size`` then crop the centre square: fixed preview tiles."""
    scaled = resize_short_side(image, size)
    h, w = scaled.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return scaled[..., top : top + size, left : left + size]


def iter_batches(items: list, batch_size: int) -> Iterator[list]:
    for start in range(0, len(items), batch_size):
        yield items[start : start + batch_size]
