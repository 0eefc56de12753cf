from setuptools import Extension, setup

setup(ext_modules=[Extension("fixture_cext", ["fixture_cext.c"], libraries=["m"])])
