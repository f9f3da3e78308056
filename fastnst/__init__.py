"""fastnst: fast feed-forward multi-style neural style transfer."""

from pathlib import Path

# The packaged Hydra configs (train, loss, style, ...), found wherever fastnst is installed.
CONF_DIR = Path(__file__).resolve().parent / "conf"
