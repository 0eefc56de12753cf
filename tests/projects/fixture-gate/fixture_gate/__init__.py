"""A package with compiled modules that import other modules when they load."""
