"""The inference room: the runner (windows, the fast path), the engine and device, eligibility,
Compare's work and the evaluation command. Imports hub/, models/, data/ (docs/architecture.md)."""
