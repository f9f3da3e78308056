"""Ship a trained model inside the package: ``fastnst/models/<name>.safetensors``.

Stores the weights as fp16 (half the file; the export self-check compares against the
fp16-rounded network) and writes the run's provenance into the file's metadata, so
``fastnst stylize --model <name> --info`` tells where the model came from.

    python tools/bundle_model.py outputs/run/classics.safetensors --name classics \\
        --extra docs/models/classics.json

``--out-dir`` keeps a study's model in the repository without shipping it (a later
session continues from it with ``init_from``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from fastnst.errors import UserError, run_command
from fastnst.export import load_model, save_model
from fastnst.models import MODELS_DIR


def bundle(model: Path, name: str, extra: Path | None, out_dir: Path = MODELS_DIR) -> Path:
    """``extra``: a JSON object of metadata sections (``provenance``, ``style_sources``)
    merged into the model's own, key by key."""
    net, info = load_model(model)
    if extra is not None:
        sections = json.loads(extra.read_text())
        if not isinstance(sections, dict) or not all(
            isinstance(v, dict) for v in sections.values()
        ):
            raise UserError(f"{extra} must hold a JSON object of objects")
        for key, values in sections.items():
            info.extra[key] = {**info.extra.get(key, {}), **values}
    return save_model(net, out_dir / f"{name}.safetensors", info, dtype=torch.float16)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an exported .safetensors model")
    parser.add_argument("--name", required=True, help="the bundled name (--model NAME)")
    parser.add_argument(
        "--extra", type=Path, help="JSON {section: {key: value}} merged into the metadata"
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=MODELS_DIR,
        help="where the file goes (default: the package's models, which ship)",
    )
    args = parser.parse_args(argv)
    return run_command(
        lambda: bundle(args.model, args.name, args.extra, args.out_dir), "nothing was bundled"
    )


if __name__ == "__main__":
    sys.exit(main())
