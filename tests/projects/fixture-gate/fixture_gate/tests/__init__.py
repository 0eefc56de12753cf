"""Its tests, with a compiled helper that needs a test-only dependency."""
