from setuptools import Extension, setup

setup(
    ext_modules=[Extension("fixture_abi3", ["fixture_abi3.c"], py_limited_api=True,
                           define_macros=[("Py_LIMITED_API", "0x030B0000")])],
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
