BACKEND = "setuptools-scm"
