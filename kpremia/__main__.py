"""``python -m kpremia``: see :mod:`kpremia.app.cli`."""

import sys

from kpremia.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
