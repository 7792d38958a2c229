"""``python -m fastloss.bench``: the same as ``fastloss bench``."""

import sys

from . import main

sys.exit(main())
