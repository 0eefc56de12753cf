#include <Python.h>

/* Broken: the init function has the wrong name, so CPython cannot load the module. */
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_speedups", NULL, -1, NULL};

PyMODINIT_FUNC PyInit_wrong_name(void) {
    return PyModule_Create(&def);
}
