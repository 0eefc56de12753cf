#include <Python.h>
#include <yaml.h>

static PyObject *libyaml_version(PyObject *self, PyObject *unused) {
    return PyUnicode_FromString(yaml_get_version_string());
}

static PyMethodDef methods[] = {{"libyaml_version", libyaml_version, METH_NOARGS, "libyaml's version"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "fixture_needsyaml", NULL, -1, methods};
PyMODINIT_FUNC PyInit_fixture_needsyaml(void) { return PyModule_Create(&module); }
