"""``python -m fastnst``: the same as the ``fastnst`` command."""

import sys

from fastnst.cli import main

if __name__ == "__main__":
    sys.exit(main())
