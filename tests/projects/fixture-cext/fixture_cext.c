#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <sys/stat.h>

/* exp, log and pow are GLIBC_2.29 symbols when compiled against glibc >= 2.29 headers. */
static PyObject *curve(PyObject *self, PyObject *arg) {
    double x = PyFloat_AsDouble(arg);
    if (x == -1.0 && PyErr_Occurred()) return NULL;
    return PyFloat_FromDouble(exp(x) + log(x + 1.0) + pow(x, 3.0));
}

/* stat is GLIBC_2.33 when compiled against glibc >= 2.33 headers. */
static PyObject *file_size(PyObject *self, PyObject *arg) {
    const char *path = PyUnicode_AsUTF8(arg);
    struct stat st;
    if (path == NULL) return NULL;
    if (stat(path, &st) != 0) return PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
    return PyLong_FromLongLong((long long)st.st_size);
}

static PyMethodDef methods[] = {
    {"curve", curve, METH_O, "exp(x) + log(x + 1) + x**3"},
    {"file_size", file_size, METH_O, "the size of a file, from stat(2)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "fixture_cext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_fixture_cext(void) { return PyModule_Create(&module); }
