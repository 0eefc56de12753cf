from setuptools import Extension, setup

setup(ext_modules=[Extension("fixture_gnuc", ["fixture_gnuc.c"])])
