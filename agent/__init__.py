"""dreamerbench: agent."""
