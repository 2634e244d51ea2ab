"""Transfer Lab engine: domains and shifts, one training loop, transfer strategies,
domain-gap metrics and run records. UI-free: no streamlit, no printing."""

__version__ = "0.1.0"
