"""``python train.py style=spiderverse`` from a checkout: the same as ``fastnst train``."""

import sys

from fastnst.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
