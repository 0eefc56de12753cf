"""A package that needs tkinter: importing any of its modules first fails for that."""

import tkinter  # noqa: F401
