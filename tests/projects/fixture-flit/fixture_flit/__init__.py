"""A flit fixture."""
BACKEND = "flit_core"
