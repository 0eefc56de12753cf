"""``factory serve``: the private index over HTTP, with auth, upstream fallback and a miss log."""
