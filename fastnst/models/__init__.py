"""Models that ship inside the package: ``--model classics`` works on a fresh install.

Each ``<name>.safetensors`` in this folder is a bundled model; its provenance (command,
steps, data, date, machine) is in the file's own metadata (``fastnst stylize --info``).
"""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
SUFFIX = ".safetensors"


def bundled_models() -> dict[str, Path]:
    """Bundled model names and their files, sorted by name."""
    return {path.stem: path for path in sorted(MODELS_DIR.glob(f"*{SUFFIX}"))}


def resolve_model(spec: str | Path) -> Path:
    """A model argument as a file: an existing path wins, then a bundled name.

    Anything else comes back unchanged, so the loader reports it as not found."""
    path = Path(spec)
    if path.exists():
        return path
    bundled = bundled_models()
    name = path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.name
    if path.parent == Path(".") and name in bundled:
        return bundled[name]
    return path
