#include <Python.h>

/* Needs tkinter, an optional part of the standard library that Debian packages apart. */
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_tk", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__tk(void) {
    PyObject *needed = PyImport_ImportModule("tkinter");
    if (needed == NULL) {
        return NULL;
    }
    Py_DECREF(needed);
    return PyModule_Create(&def);
}
