"""``python -m protectedvm verify --stack-outputs outputs.json`` (see :mod:`protectedvm.cli`)."""

import sys

from protectedvm.cli import main

if __name__ == "__main__":
    sys.exit(main())
