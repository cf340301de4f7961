"""An example kpremia plug-in: the ``my_tcn`` encoder (``my_tcn.py``) and its config.

Kept empty on purpose: kpremia imports this package to find ``configs`` before it needs
any encoder, and loads ``my_tcn`` itself through the ``kpremia.plugins`` entry point.
"""
