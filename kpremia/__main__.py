"""``python -m kpremia``: see :mod:`kpremia.cli`."""

import sys

from kpremia.cli import main

if __name__ == "__main__":
    sys.exit(main())
