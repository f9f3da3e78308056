"""``python infer.py --help`` from a checkout: the same as ``fastnst stylize``."""

import sys

from fastnst.cli import main

if __name__ == "__main__":
    sys.exit(main(["stylize", *sys.argv[1:]]))
