from setuptools import Extension, setup

setup(ext_modules=[
    Extension("fixture_gate._needsdep", ["fixture_gate/_needsdep.c"]),
    Extension("fixture_gate._tk", ["fixture_gate/_tk.c"]),
    Extension("fixture_gate.tests._helper", ["fixture_gate/tests/_helper.c"]),
])
