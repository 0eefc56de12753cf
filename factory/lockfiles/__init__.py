"""``factory hashes``: adopt factory's index without regenerating lock files. A requirements
file gets our sha256 beside upstream's for every pin we serve; a ``uv.lock`` or PEP 751
``pylock.toml`` is rewritten to our index's URLs and hashes for those pins, the rest untouched."""
