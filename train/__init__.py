"""The training scripts: python -m train.classifier, python -m train.superres, python -m train.push."""

import restoration  # noqa: F401  first: checks the Python version (one clear line on Python < 3.11)
