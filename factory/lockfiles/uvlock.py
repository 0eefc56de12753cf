"""``uv.lock``: each ``[[package]]`` from a registry whose name and version factory serves is
pointed at factory's index (``source.registry``) and lists our files (URLs, hashes, sizes and
upload times) in place of upstream's; every other package, and the file's formatting, is left
as it was (tomlkit keeps it)."""

from __future__ import annotations

from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from factory.lockfiles.ours import LockError, OurFile, Ours, Pin


def _file_table(f: OurFile) -> Any:
    table = tomlkit.inline_table()
    table.update({"url": f.url, "hash": f"sha256:{f.sha256}"})
    if f.size is not None:
        table["size"] = f.size
    table["upload-time"] = f.upload_time
    return table


def rewrite(text: str, ours: Ours) -> tuple[str, list[Pin]]:
    """The lock pointed at factory's index for the pins it serves; and those pins."""
    if not ours.index_url:
        raise LockError("a uv.lock names the index and its file URLs: give --index-url (where factory's index is "
                        "served, as uv is told with --index or --default-index), or set base-url")
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise LockError(f"not a TOML file: {exc}") from None
    pins: list[Pin] = []
    for package in doc.get("package", []):
        source = package.get("source", {})
        if "registry" not in source or "name" not in package or "version" not in package:
            continue  # the project itself, a path, a git or a URL source: not ours to change
        files = ours.files(str(package["name"]), str(package["version"]))
        if not files:
            continue
        wheels = [_file_table(f) for f in files if f.is_wheel]
        sdists = [_file_table(f) for f in files if not f.is_wheel]
        before = ({w.get("hash") for w in package.get("wheels", [])}
                  | ({package["sdist"].get("hash")} if "sdist" in package else set()))
        after = {t["hash"] for t in wheels + sdists}
        if source["registry"] == ours.index_url and before == after:
            pins.append(Pin(str(package["name"]), str(package["version"]), ""))
            continue
        source["registry"] = ours.index_url
        if sdists:
            package["sdist"] = sdists[0]
        elif "sdist" in package:
            del package["sdist"]
        if wheels:
            array = tomlkit.array()
            array.extend(wheels)
            array.multiline(True)
            package["wheels"] = array
        elif "wheels" in package:
            del package["wheels"]
        pins.append(Pin(str(package["name"]), str(package["version"]),
                        f"{len(before)} upstream files -> {len(wheels)} wheels"
                        + (" and the sdist" if sdists else "") + " of ours"))
    return tomlkit.dumps(doc), pins
