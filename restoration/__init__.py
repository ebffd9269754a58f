"""The library behind the app, the training scripts and the evaluation.

Importing it first checks the Python version, so every entry point (`python app.py`,
`python -m train.superres`, ...) stops with one clear line on an old interpreter instead of a
traceback from deep inside an import. Keep this file parseable by old Pythons.
"""

import sys

MIN_PYTHON = (3, 11)  # datetime.UTC, typing features, and the pinned torch/gradio wheels


def check_python(version_info=sys.version_info, executable=sys.executable):
    if tuple(version_info[:2]) < MIN_PYTHON:
        raise SystemExit(
            "This project needs Python {}.{} or newer; {} is Python {}.{}. Create the virtual "
            "environment with a newer Python (e.g. `python3.11 -m venv .venv`), as the README's "
            "Set up section says.".format(*MIN_PYTHON, executable, *version_info[:2]))


check_python()
