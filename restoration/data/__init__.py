"""The data room: opening images safely, uploads, the ×2 degradations, metrics, datasets and the
Tiny ImageNet download. Imports no other room (docs/architecture.md)."""
