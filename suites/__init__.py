"""dreamerbench: suites."""
