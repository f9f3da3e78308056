"""``python -m fastnst.optimize``: the same as ``fastnst optimize``."""

import sys

from fastnst.cli import main

if __name__ == "__main__":
    sys.exit(main(["optimize", *sys.argv[1:]]))
