#include <Python.h>
#include <factory_no_such_library.h>

PyMODINIT_FUNC PyInit_fixture_nosuchheader(void) { return NULL; }
