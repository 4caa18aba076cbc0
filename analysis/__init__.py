"""dreamerbench: analysis."""
