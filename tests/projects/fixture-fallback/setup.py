from setuptools import Extension, setup

setup(ext_modules=[Extension("fixture_fallback._speedups", ["fixture_fallback/_speedups.c"])])
