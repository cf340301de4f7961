"""Plug-in tests: third-party packages through entry points, local modules, the encoder guide."""
