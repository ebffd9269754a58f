"""Benchmarks: python -m bench.<name> prints a table; not tests."""

import restoration  # noqa: F401  first: checks the Python version (one clear line on Python < 3.11)
