from setuptools import setup
from setuptools.command.build_py import build_py


class broken(build_py):
    def run(self):
        raise SystemExit("error: fixture-broken-tool cannot be built")


setup(cmdclass={"build_py": broken})
