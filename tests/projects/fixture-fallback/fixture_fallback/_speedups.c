#include <Python.h>

/* A compiled module that fails at import, as one built against the wrong tools would. */
PyMODINIT_FUNC PyInit__speedups(void) {
    PyErr_SetString(PyExc_ImportError, "fixture_fallback._speedups is broken on purpose");
    return NULL;
}
