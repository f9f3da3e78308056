"""Stylize images, folders, videos or a webcam: ``python infer.py --help``."""

import sys

from fastnst.infer import main

if __name__ == "__main__":
    sys.exit(main())
