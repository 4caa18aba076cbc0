"""Developer tools that CI does not run (tools/README.md); importable from the repository root."""
