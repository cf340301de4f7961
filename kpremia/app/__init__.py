"""Entry points: the command line, the Python API and the command table both use."""
