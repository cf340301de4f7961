"""Config tree of the plug-in, laid out like ``kpremia/configs`` (``encoder/my_tcn.yaml``)."""
