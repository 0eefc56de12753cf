#include <Python.h>

/* Needs its runtime dependency (declared in Requires-Dist), as a data library needs its array library. */
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_needsdep", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__needsdep(void) {
    PyObject *needed = PyImport_ImportModule("fixture_tool");
    if (needed == NULL) {
        return NULL;
    }
    Py_DECREF(needed);
    return PyModule_Create(&def);
}
