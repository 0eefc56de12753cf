#include <Python.h>

/* Needs a tool only the project's tests use (an extra, never installed). */
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_helper", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__helper(void) {
    PyObject *needed = PyImport_ImportModule("fixture_no_such_test_tool");
    if (needed == NULL) {
        return NULL;
    }
    Py_DECREF(needed);
    return PyModule_Create(&def);
}
