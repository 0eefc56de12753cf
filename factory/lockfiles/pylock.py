"""PEP 751 ``pylock.toml``: each ``[[packages]]`` entry from an index whose name and version
factory serves gets ``index`` set to factory's index and our wheels and sdist (URLs, sizes,
upload times, sha256) in place of upstream's; everything else is left as it was."""

from __future__ import annotations

import datetime
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from factory.lockfiles.ours import LockError, OurFile, Ours, Pin


def _file_table(f: OurFile) -> Any:
    table = tomlkit.inline_table()
    table["name"] = f.filename
    table["url"] = f.url
    table["upload-time"] = datetime.datetime.fromisoformat(f.upload_time.replace("Z", "+00:00"))
    if f.size is not None:
        table["size"] = f.size
    hashes = tomlkit.inline_table()
    hashes["sha256"] = f.sha256
    table["hashes"] = hashes
    return table


def _hashes(entry: Any) -> set[str]:
    found = set()
    for f in [*entry.get("wheels", []), *([entry["sdist"]] if "sdist" in entry else [])]:
        found.add(str(f.get("hashes", {}).get("sha256", "")))
    return found


def rewrite(text: str, ours: Ours) -> tuple[str, list[Pin]]:
    """The lock pointed at factory's index for the pins it serves; and those pins."""
    if not ours.index_url:
        raise LockError("a pylock.toml names the index and its file URLs: give --index-url (where factory's index "
                        "is served), or set base-url")
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise LockError(f"not a TOML file: {exc}") from None
    pins: list[Pin] = []
    for package in doc.get("packages", []):
        if "version" not in package or not ("wheels" in package or "sdist" in package):
            continue  # a directory, VCS or archive entry: not from an index
        files = ours.files(str(package["name"]), str(package["version"]))
        if not files:
            continue
        wheels = [_file_table(f) for f in files if f.is_wheel]
        sdists = [_file_table(f) for f in files if not f.is_wheel]
        before, after = _hashes(package), {f.sha256 for f in files}
        if package.get("index") == ours.index_url and before == after:
            pins.append(Pin(str(package["name"]), str(package["version"]), ""))
            continue
        package["index"] = ours.index_url
        if sdists:
            package["sdist"] = sdists[0]
        elif "sdist" in package:
            del package["sdist"]
        if wheels:
            array = tomlkit.array()
            array.extend(wheels)
            array.multiline(len(wheels) > 1)
            package["wheels"] = array
        elif "wheels" in package:
            del package["wheels"]
        pins.append(Pin(str(package["name"]), str(package["version"]),
                        f"{len(before)} upstream files -> {len(wheels)} wheels"
                        + (" and the sdist" if sdists else "") + " of ours"))
    return tomlkit.dumps(doc), pins
