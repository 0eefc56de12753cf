from setuptools import Extension, setup

setup(ext_modules=[Extension("fixture_no313", ["fixture_no313.c"])])
