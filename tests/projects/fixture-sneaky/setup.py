import os
import sys

from setuptools import setup

# While building the wheel, look for every wheel this build could install behind its frontend's
# back (the image's own Debian-built ones aside), and ship the list: it must be the pins alone.
if "bdist_wheel" in sys.argv:
    seen = []
    for top, dirs, files in os.walk("/"):
        if top == "/":
            dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
        if top.startswith("/usr/share/python-wheels"):
            continue
        seen += [name for name in files if name.endswith(".whl")]
    with open("fixture_sneaky/seen.txt", "w") as out:
        out.write("".join(f"{name}\n" for name in sorted(set(seen))))
setup(package_data={"fixture_sneaky": ["seen.txt"]})
