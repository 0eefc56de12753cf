import socket

from setuptools import setup
from setuptools.command.build_py import build_py


class build_py_fetching(build_py):
    """What a careless build does: download something while building."""

    def run(self):
        socket.create_connection(("198.51.100.7", 80), timeout=5).close()  # TEST-NET-2: never answers
        super().run()


setup(cmdclass={"build_py": build_py_fetching})
