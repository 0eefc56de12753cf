"""A package whose compiled speedups are optional: without them it quietly uses Python."""

try:
    from fixture_fallback._speedups import twice
except ImportError:  # the fallback hides a broken extension from `import fixture_fallback`
    def twice(x: int) -> int:
        return 2 * x
