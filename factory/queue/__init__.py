"""Misses become builds: miss logs are parsed (``misses``) and aggregated (``ingest``) into the
ledger's prioritized, leased requests (``ledger``), which workers claim and build (``worker``)."""
