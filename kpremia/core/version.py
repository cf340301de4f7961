"""kpremia's version, alone in a module of the bottom layer.

Why here and not only in ``kpremia/__init__``: ``python -m kpremia --version`` (kpremia.app.cli_help)
reads it, and importing the name from the package would make the version answer depend on the
package's lazy public API (``kpremia.fit`` ... from kpremia.app.api) in the import graph.
pyproject.toml's ``version`` is the same string (a test compares them).
"""

__version__ = "0.1.0"
