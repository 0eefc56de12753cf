from setuptools import Extension, setup

setup(ext_modules=[Extension("fixture_needsyaml", ["fixture_needsyaml.c"], libraries=["yaml"])])
