#include <Python.h>

#if PY_VERSION_HEX >= 0x030D0000
#error "fixture-no313 does not support CPython 3.13"
#endif

static PyMethodDef methods[] = {{NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "fixture_no313", NULL, -1, methods};
PyMODINIT_FUNC PyInit_fixture_no313(void) { return PyModule_Create(&module); }
