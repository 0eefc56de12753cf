#include <Python.h>

static PyObject *twice(PyObject *self, PyObject *arg) {
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    return PyLong_FromLong(2 * n);
}

static PyMethodDef methods[] = {{"twice", twice, METH_O, "2 * n"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "fixture_abi3", NULL, -1, methods};
PyMODINIT_FUNC PyInit_fixture_abi3(void) { return PyModule_Create(&module); }
