#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *backend(PyObject *self, PyObject *unused) { return PyUnicode_FromString("scikit-build-core"); }

static PyMethodDef methods[] = {{"backend", backend, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "fixture_skbuild", NULL, -1, methods};

PyMODINIT_FUNC PyInit_fixture_skbuild(void) { return PyModule_Create(&module); }
