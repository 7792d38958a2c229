"""``python -m fastloss.bench``: the same as ``fastloss bench``."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
