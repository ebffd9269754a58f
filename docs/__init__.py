"""The figures of the README and docs/results.md: python -m docs.make_figure."""

import restoration  # noqa: F401  first: checks the Python version (one clear line on Python < 3.11)
