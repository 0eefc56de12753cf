import subprocess

from setuptools import Extension, setup


def pkg_config(*args):
    """What pkg-config says, or its own error in the build log and a failed build."""
    done = subprocess.run(["pkg-config", *args, "libffi"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"pkg-config failed:\n{done.stderr}")
    return done.stdout.split()


flags = pkg_config("--cflags")
libs = pkg_config("--libs")
setup(ext_modules=[Extension("fixture_pkgconfig", ["fixture_pkgconfig.c"],
                             include_dirs=[f[2:] for f in flags if f.startswith("-I")],
                             libraries=[f[2:] for f in libs if f.startswith("-l")])])
