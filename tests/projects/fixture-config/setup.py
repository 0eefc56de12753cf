import subprocess

from setuptools import Extension, setup

# As pycurl runs curl-config: a missing program is a FileNotFoundError naming it.
flags = subprocess.check_output(["pcre2-config", "--cflags", "--libs8"], text=True).split()
setup(ext_modules=[Extension("fixture_config", ["fixture_config.c"],
                             include_dirs=[f[2:] for f in flags if f.startswith("-I")],
                             libraries=[f[2:] for f in flags if f.startswith("-l")])])
