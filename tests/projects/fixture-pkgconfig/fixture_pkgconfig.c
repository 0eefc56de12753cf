#include <Python.h>
#include <ffi.h>

/* Prepares a libffi call interface: proves the library was found, linked and grafted. */
static PyObject *prepared(PyObject *self, PyObject *args) {
    ffi_cif cif;
    return PyBool_FromLong(ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 0, &ffi_type_sint, NULL) == FFI_OK);
}

static PyMethodDef methods[] = {{"prepared", prepared, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "fixture_pkgconfig", NULL, -1, methods};

PyMODINIT_FUNC PyInit_fixture_pkgconfig(void) {
    return PyModule_Create(&module);
}
