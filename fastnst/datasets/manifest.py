"""``manifest.json`` beside extracted frames: where each frame came from and its hashes.

It is what makes extraction re-runnable: a frame already listed (same clip content, same
timestamp) or looking like a listed one (perceptual hashes) is not written again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from fastnst.datasets.phash import from_hex, hamming
from fastnst.errors import UserError
from fastnst.files import atomic_write

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
_FINGERPRINT_CHUNK = 1 << 20


@dataclass(frozen=True)
class FrameRecord:
    """One written frame."""

    file: str  # relative to the manifest's folder
    source: str  # the clip's path when it was extracted
    source_id: str  # fingerprint of the clip's bytes: survives renames and moves
    timestamp: float  # seconds into the clip
    scene: int  # index of the shot within the clip
    phash: str  # 16 hex digits
    dhash: str  # 16 hex digits
    width: int
    height: int
    crop: tuple[int, int, int, int]  # (left, top, right, bottom) kept inside letterbox bars
    sharpness: float

    @property
    def key(self) -> tuple[str, int]:
        return self.source_id, round(self.timestamp * 1000)


def clip_fingerprint(path: Path) -> str:
    """SHA-1 of a clip's size, first and last MiB: cheap, and stable under renames."""
    size = path.stat().st_size
    digest = hashlib.sha1(str(size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(_FINGERPRINT_CHUNK))
        handle.seek(max(0, size - _FINGERPRINT_CHUNK))
        digest.update(handle.read(_FINGERPRINT_CHUNK))
    return digest.hexdigest()


class Manifest:
    """The frame records of one style folder, loaded from and saved to its manifest file."""

    def __init__(self, folder: Path, frames: list[FrameRecord] | None = None) -> None:
        self.folder = folder
        self.frames = frames or []
        self._keys = {record.key for record in self.frames}
        self._hashes = [(from_hex(r.phash), from_hex(r.dhash)) for r in self.frames]

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST_NAME

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        """The folder's manifest, or an empty one if it has none yet."""
        path = folder / MANIFEST_NAME
        if not path.exists():
            return cls(folder)
        try:
            raw = json.loads(path.read_text())
            frames = [
                FrameRecord(**{**item, "crop": tuple(item["crop"])}) for item in raw["frames"]
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(
                f"frame manifest {path} is damaged ({exc}); move it away to start the folder over"
            ) from None
        return cls(folder, frames)

    def save(self) -> None:
        payload = {"version": MANIFEST_VERSION, "frames": [asdict(r) for r in self.frames]}
        atomic_write(self.path, lambda tmp: tmp.write_text(json.dumps(payload, indent=1)))

    def has(self, key: tuple[str, int]) -> bool:
        return key in self._keys

    def near_duplicate(self, phash: int, dhash: int, max_distance: int) -> bool:
        """True if a listed frame is within ``max_distance`` bits on both hashes (either
        hash alone misfires on flat, low-detail frames)."""
        return any(
            hamming(phash, p) <= max_distance and hamming(dhash, d) <= max_distance
            for p, d in self._hashes
        )

    def add(self, record: FrameRecord) -> None:
        self.frames.append(record)
        self._keys.add(record.key)
        self._hashes.append((from_hex(record.phash), from_hex(record.dhash)))
