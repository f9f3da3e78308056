"""``fastnst train``: the Hydra entry point; the work is in :func:`fastnst.training.run.run`.

The configs are the package's own (``fastnst/conf``), so training works from any directory;
``--config-dir DIR`` adds a folder of the user's configs beside them (``style=my_style``
finds ``DIR/style/my_style.yaml``).
"""

import sys

import hydra
from omegaconf import DictConfig

from fastnst import CONF_DIR


# An absolute path: the same folder however this module is reached (``fastnst train``,
# ``python -m fastnst.train``, ``python train.py``, a DDP rank).
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> None:
    """Train with the composed config; a user error or a missing extra (e.g. PyAV for real
    clips in ``stage=temporal``) ends with one ``error:`` line."""
    from fastnst.errors import Terminated, extra_error, missing_extra
    from fastnst.training.run import run, user_error

    try:
        run(cfg)
    except KeyboardInterrupt as exc:
        print("error: interrupted outside the training loop; nothing was exported", file=sys.stderr)
        sys.exit(143 if isinstance(exc, Terminated) else 130)
    except Exception as exc:
        cause = user_error(exc)
        if cause is None:
            extra = missing_extra(exc)
            if extra is None:
                raise
            print(extra_error("train", extra), file=sys.stderr)
            sys.exit(1)
        print(f"error: {cause}", file=sys.stderr)
        sys.exit(getattr(cause, "exit_code", 1))


if __name__ == "__main__":
    main()
