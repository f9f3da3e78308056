"""``python -m fastnst.datasets``: the same as ``fastnst datasets``."""

import sys

from fastnst.cli import main

if __name__ == "__main__":
    sys.exit(main(["datasets", *sys.argv[1:]]))
