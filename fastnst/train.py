"""``fastnst train``: the Hydra entry point; the work is in :func:`fastnst.training.run.run`.

The configs are the package's own (``fastnst/conf``), so training works from any directory;
``--config-dir DIR`` adds a folder of the user's configs beside them (``style=my_style``
finds ``DIR/style/my_style.yaml``).
"""

import logging
import shutil
import sys
from pathlib import Path

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fastnst import CONF_DIR
from fastnst.errors import UserError


def check_config_dir(argv: list[str]) -> None:
    """Every YAML file under ``--config-dir`` parses: Hydra reports a malformed one with
    a multi-line dump; this names the file and line in one."""
    folder = None
    for index, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and index + 1 < len(argv):
            folder = argv[index + 1]
        elif arg.startswith("--config-dir="):
            folder = arg.partition("=")[2]
    if folder is None:
        return
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"--config-dir {root}: no such folder")
    for path in sorted(root.rglob("*.y*ml")):
        try:
            yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise UserError(f"malformed YAML in {path}{where}: {problem}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read config {path}: {exc}") from None


def remove_unused_run(cfg: DictConfig) -> None:
    """A start that failed before training leaves no run folder: remove it when it holds
    nothing but Hydra's own files (the config copy and the log), and its date folder under
    ``paths.log_dir`` when that is then empty."""
    if not HydraConfig.initialized():
        return
    folder = Path(HydraConfig.get().runtime.output_dir)
    if not folder.is_dir() or any(p.name not in (".hydra", "train.log") for p in folder.iterdir()):
        return
    root = logging.getLogger()
    for handler in root.handlers[:]:  # the run's log file goes with its folder
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == folder:
            root.removeHandler(handler)
            handler.close()
    shutil.rmtree(folder, ignore_errors=True)
    parent = folder.parent
    if parent.parent == Path(cfg.paths.log_dir) and not any(parent.iterdir()):
        parent.rmdir()


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
        remove_unused_run(cfg)
        sys.exit(143 if isinstance(exc, Terminated) else 130)
    except Exception as exc:
        cause = user_error(exc)
        if cause is None:
            extra = missing_extra(exc)
            if extra is None:
                raise
            print(extra_error("train", extra), file=sys.stderr)
            remove_unused_run(cfg)
            sys.exit(1)
        print(f"error: {cause}", file=sys.stderr)
        remove_unused_run(cfg)
        sys.exit(getattr(cause, "exit_code", 1))


if __name__ == "__main__":
    main()
