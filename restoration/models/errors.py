"""The models room's error, in a module free of torch: the catalogue's reader (hub/catalogue_file.py)
raises it, and commands that read the catalogue answer `--help` without waiting for torch."""


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be loaded; the message names the file and the problem."""
