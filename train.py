"""Train a multi-style network: ``python train.py style=spiderverse`` (see conf/train.yaml)."""

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    from fastnst.training.run import run, user_error

    try:
        run(cfg)
    except Exception as exc:
        cause = user_error(exc)
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
