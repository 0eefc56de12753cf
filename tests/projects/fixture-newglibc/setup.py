import os

from setuptools import Extension, setup

# A build script that overrides the toolchain it was given: the policy gate must catch it.
os.environ["CC"] = "gcc"
os.environ["LDSHARED"] = "gcc -shared"
setup(ext_modules=[Extension("fixture_newglibc", ["fixture_newglibc.c"], libraries=["m"])])
