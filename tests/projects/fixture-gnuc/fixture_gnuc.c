#include <Python.h>

static PyObject *square(PyObject *self, PyObject *arg) {
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    /* A GNU C nested function: gcc accepts it, clang does not. */
    long sq(long x) { return x * x; }
    return PyLong_FromLong(sq(n));
}

static PyMethodDef methods[] = {{"square", square, METH_O, "n * n"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "fixture_gnuc", NULL, -1, methods};
PyMODINIT_FUNC PyInit_fixture_gnuc(void) { return PyModule_Create(&module); }
