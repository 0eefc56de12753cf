"""The private index: a static PEP 503 simple index, its manifest, and publishing into it.

Layout under the index directory::

    manifest.sqlite3                      what is published (the source of truth)
    simple/index.html                     the root page
    simple/<project>/index.html           one link per file, ascending by file name
    files/<h[:2]>/<h[2:4]>/<sha256>/<filename>            the file, by content
    files/<h[:2]>/<h[2:4]>/<sha256>/<filename>.metadata   its core metadata (PEP 658)
"""
