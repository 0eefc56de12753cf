from setuptools import Extension, setup

setup(ext_modules=[Extension("fixture_gate_hidden._speedups", ["fixture_gate_hidden/_speedups.c"])])
