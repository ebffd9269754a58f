"""The models room: layers, the U-Nets, the classifier, losses, foreign architectures, the
checkpoint format and the model types (auto.py). Imports only data/ (docs/architecture.md)."""
