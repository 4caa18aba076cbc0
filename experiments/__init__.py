"""dreamerbench: experiments."""
