"""energytui: what running a small LLM costs in time and joules, and how to run it better."""

__version__ = "0.1.0"
