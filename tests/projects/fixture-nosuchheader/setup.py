from setuptools import Extension, setup

setup(ext_modules=[Extension("fixture_nosuchheader", ["fixture_nosuchheader.c"])])
