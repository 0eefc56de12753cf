"""``factory index check``: prove that an index is whole.

Read as a client would (the pages parsed by mousebender, not by the code that wrote them): every
name is normalized; the HTML and JSON form of each page say the same; every link resolves; every
file's sha256 and size, and every metadata sidecar's sha256, match what the pages say; files are
in ascending order of name. Files recorded in the manifest but not yet on a page (a publish that
was interrupted) are counted, not faulted: the index is still whole, and the next publish of the
project or ``factory publish --rebuild`` lists them.
"""

from __future__ import annotations

import dataclasses
import html.parser
import json
import warnings
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from mousebender import simple
from packaging.utils import canonicalize_name

from factory.index.manifest import Manifest
from factory.index.pages import JSON_TYPE
from factory.plumbing.files import sha256_file


@dataclasses.dataclass(frozen=True)
class Report:
    projects: int
    files: int
    problems: tuple[str, ...]
    pending: int  # files in the manifest not on a page yet

    @property
    def ok(self) -> bool:
        return not self.problems



class _ProvenanceLinks(html.parser.HTMLParser):
    """File name -> data-provenance of each link (mousebender does not read that attribute)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, str | None] = {}
        self._attrs: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._attrs, self._text = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._attrs is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._attrs is not None:
            self.links["".join(self._text).strip()] = self._attrs.get("data-provenance")
            self._attrs = None


def _provenance_links(text: str) -> dict[str, str | None]:
    parser = _ProvenanceLinks()
    parser.feed(text)
    return parser.links


def _local(index_dir: Path, page_dir: str, url: str, base_url: str) -> Path | None:
    """The file a link on a page names, if it lies inside the index."""
    if url.startswith(base_url):
        relative = url[len(base_url):]
    else:
        resolved = urljoin(f"http://index.invalid/{page_dir}/", url)
        parts = urlsplit(resolved)
        if parts.netloc != "index.invalid":
            return None
        relative = parts.path.lstrip("/")
    path = (index_dir / unquote(relative)).resolve()
    return path if path.is_relative_to(index_dir.resolve()) else None


def check(index_dir: Path, base_url: str) -> Report:
    """Check the index under ``index_dir`` (whose provenance URLs start with ``base_url``)."""
    with warnings.catch_warnings():  # mousebender knows API 1.3; the pages are 1.4 (PEP 792)
        warnings.simplefilter("ignore", simple.APIVersionWarning)
        return _check(index_dir, base_url)


def _check(index_dir: Path, base_url: str) -> Report:
    problems: list[str] = []
    simple_dir = index_dir / "simple"
    root_html, root_json = simple_dir / "index.html", simple_dir / "index.json"
    if not root_html.exists() and not root_json.exists():
        return Report(0, 0, (), 0)
    try:
        html_names = [p["name"] for p in simple.parse_project_index(root_html.read_text(), "text/html")["projects"]]
        json_names = [p["name"] for p in simple.parse_project_index(root_json.read_text(), JSON_TYPE)["projects"]]
    except (OSError, ValueError, KeyError) as exc:
        return Report(0, 0, (f"root page unreadable: {exc}",), 0)
    if html_names != json_names:
        problems.append(f"root: HTML lists {len(html_names)} projects, JSON {len(json_names)}")
    files_seen: set[str] = set()
    for name in html_names:
        if canonicalize_name(name) != name:
            problems.append(f"root: {name!r} is not a normalized name")
            continue
        pages = simple_dir / name
        try:
            as_html = simple.parse_project_details((pages / "index.html").read_text(), "text/html", name)
            as_json_text = (pages / "index.json").read_text()
            as_json = simple.parse_project_details(as_json_text, JSON_TYPE, name)
            raw_json = json.loads(as_json_text)
        except (OSError, ValueError, KeyError) as exc:
            problems.append(f"{name}: page unreadable: {exc}")
            continue
        html_provenance = _provenance_links((pages / "index.html").read_text())
        if raw_json.get("name") != name:
            problems.append(f"{name}: the JSON page names {raw_json.get('name')!r}")
        html_files = {f["filename"]: f for f in as_html["files"]}
        json_files = {f["filename"]: f for f in as_json["files"]}
        names = [f["filename"] for f in as_json["files"]]
        if names != sorted(names):
            problems.append(f"{name}: files are not in ascending order of name")
        if set(html_files) != set(json_files):
            problems.append(f"{name}: HTML and JSON list different files")
        for filename, f in json_files.items():
            files_seen.add(filename)
            h = html_files.get(filename)
            where = f"{name}/{filename}"
            if h is not None:
                for key in ("hashes", "requires-python", "core-metadata", "yanked"):
                    hv, jv = h.get(key), f.get(key)
                    if key == "yanked":
                        hv, jv = hv or False, jv or False
                    if key == "core-metadata" and isinstance(hv, dict) and isinstance(jv, dict):
                        hv, jv = hv.get("sha256"), jv.get("sha256")
                    if hv != jv:
                        problems.append(f"{where}: `{key}` differs between HTML ({hv!r}) and JSON ({jv!r})")
                if html_provenance.get(filename) != f.get("provenance"):
                    problems.append(f"{where}: `provenance` differs between HTML and JSON")
            path = _local(index_dir, f"simple/{name}", h["url"] if h else f["url"], base_url)
            if path is None or not path.is_file():
                problems.append(f"{where}: the link does not resolve to a file in the index")
                continue
            if sha256_file(path) != f["hashes"].get("sha256"):
                problems.append(f"{where}: the file's sha256 differs from the page's")
            if f.get("size") is not None and path.stat().st_size != f["size"]:
                problems.append(f"{where}: the file's size differs from the page's")
            meta = f.get("core-metadata")
            if isinstance(meta, dict):
                sidecar = path.with_name(path.name + ".metadata")
                if not sidecar.is_file():
                    problems.append(f"{where}: the metadata sidecar is missing")
                elif sha256_file(sidecar) != meta.get("sha256"):
                    problems.append(f"{where}: the metadata sidecar's sha256 differs from the page's")
            if f.get("provenance"):
                target = _local(index_dir, f"simple/{name}", f["provenance"], base_url)
                if target is None or not target.is_file():
                    problems.append(f"{where}: the provenance link does not resolve")
    pending = 0
    manifest = Manifest.existing(index_dir)
    if manifest is not None:
        with manifest as m:
            pending = sum(1 for e in m.all_files() if e.filename not in files_seen)
    return Report(len(html_names), len(files_seen), tuple(problems), pending)
