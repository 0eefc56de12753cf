"""The fields of a legacy upload (``:action=file_upload``, ``protocol_version=1``), as twine
sends them: the file's core metadata (its METADATA, or an sdist's PKG-INFO), its kind, its
Python tag and its sha256."""

from __future__ import annotations

import email.header
import email.parser
import email.policy

from packaging.utils import parse_wheel_filename

#: Core metadata fields that may repeat, and the form field each becomes.
MULTIPLE = {"classifier": "classifiers", "platform": "platform", "supported-platform": "supported_platform",
            "project-url": "project_urls", "requires-dist": "requires_dist", "provides-extra": "provides_extra",
            "dynamic": "dynamic", "license-file": "license_file", "provides-dist": "provides_dist",
            "obsoletes-dist": "obsoletes_dist", "requires-external": "requires_external", "requires": "requires",
            "provides": "provides", "obsoletes": "obsoletes"}
#: Core metadata fields given once, and the form field each becomes.
SINGLE = {"metadata-version": "metadata_version", "name": "name", "version": "version", "summary": "summary",
          "home-page": "home_page", "author": "author", "author-email": "author_email", "maintainer": "maintainer",
          "maintainer-email": "maintainer_email", "license": "license", "license-expression": "license_expression",
          "keywords": "keywords", "download-url": "download_url", "requires-python": "requires_python",
          "description-content-type": "description_content_type", "description": "description"}


def fields(filename: str, metadata: bytes, sha256: str) -> list[tuple[str, str]]:
    """The form fields (in order, repeated fields repeated) for uploading ``filename``."""
    message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(metadata)
    found: list[tuple[str, str]] = [(":action", "file_upload"), ("protocol_version", "1")]
    for key, value in message.items():
        text = _text(value)
        lowered = key.lower()
        if lowered in SINGLE:
            found.append((SINGLE[lowered], text))
        elif lowered in MULTIPLE and text:
            found.append((MULTIPLE[lowered], text))
    if "description" not in {k for k, _ in found}:
        body = message.get_payload(decode=True)
        if isinstance(body, bytes) and body.strip():
            found.append(("description", body.decode("utf-8", "replace")))
    if filename.endswith(".whl"):
        python_tag = ".".join(sorted({t.interpreter for t in parse_wheel_filename(filename)[3]}))
        found += [("filetype", "bdist_wheel"), ("pyversion", python_tag)]
    else:
        found += [("filetype", "sdist"), ("pyversion", "source")]
    found.append(("sha256_digest", sha256))
    return found


def _text(value: object) -> str:
    """A header's value as text (non-ASCII metadata comes back as a Header object)."""
    if isinstance(value, str):
        return value
    return str(email.header.make_header(email.header.decode_header(value)))  # type: ignore[arg-type]
