"""The fault-injection and bad-input round of issue 23 (``python -m tools.fault_round``)."""
