#define PCRE2_CODE_UNIT_WIDTH 8
#include <Python.h>
#include <pcre2.h>

/* Whether PCRE2 matches: proves the library was found, linked and grafted. */
static PyObject *matches(PyObject *self, PyObject *args) {
    const char *pattern, *subject;
    int code;
    PCRE2_SIZE offset;
    if (!PyArg_ParseTuple(args, "ss", &pattern, &subject)) return NULL;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &code, &offset, NULL);
    if (re == NULL) return PyErr_Format(PyExc_ValueError, "bad pattern");
    pcre2_match_data *data = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = pcre2_match(re, (PCRE2_SPTR)subject, PCRE2_ZERO_TERMINATED, 0, 0, data, NULL);
    pcre2_match_data_free(data);
    pcre2_code_free(re);
    return PyBool_FromLong(rc >= 0);
}

static PyMethodDef methods[] = {{"matches", matches, METH_VARARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "fixture_config", NULL, -1, methods};

PyMODINIT_FUNC PyInit_fixture_config(void) { return PyModule_Create(&module); }
