"""The status site: static HTML beside the index (``index/status/``), written after each build and
served by ``factory serve`` at ``/status/`` under the same auth. ``render`` makes the pages from
plain data (pure functions); ``site`` gathers the data (the queue, the records, the manifest) and
writes the pages atomically."""
