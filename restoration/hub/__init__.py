"""The Hub room: pinned downloads and uploads (transfer.py), the catalogue of shipped models, and
provenance. Imports models/ and data/ (docs/architecture.md)."""
