from setuptools import Extension, setup

setup(ext_modules=[Extension("fixture_cpp", ["fixture_cpp.cpp"], language="c++", extra_compile_args=["-std=c++17"])])
