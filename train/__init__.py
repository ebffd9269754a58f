"""The training scripts: python -m train.classifier and python -m train.superres train a model;
python -m train.ship turns one run into a model folder in weights/; python -m train.publish uploads
weights/ and the app to the Hub."""

import restoration  # noqa: F401  first: checks the Python version (one clear line on Python < 3.11)
