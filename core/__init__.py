"""The ground floor: the typed reader, file helpers, checkpoints and the run record; imports no
other room (docs/architecture.md)."""
