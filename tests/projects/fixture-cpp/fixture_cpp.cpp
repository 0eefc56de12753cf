#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <charconv>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

static std::string digits(long n) {
    if (n < 0) throw std::invalid_argument("negative");
    std::vector<long> values(static_cast<size_t>(n));
    std::iota(values.begin(), values.end(), 0L);
    std::string out;
    char buf[32];
    for (long v : values) {
        auto result = std::to_chars(buf, buf + sizeof buf, v);
        out.append(buf, result.ptr);
        out.push_back(',');
    }
    return out;
}

static PyObject *join_digits(PyObject *self, PyObject *arg) {
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    try {
        std::string s = digits(n);
        return PyUnicode_FromStringAndSize(s.data(), static_cast<Py_ssize_t>(s.size()));
    } catch (const std::exception &e) {
        PyErr_SetString(PyExc_ValueError, e.what());
        return NULL;
    }
}

static PyMethodDef methods[] = {
    {"join_digits", join_digits, METH_O, "0,1,...,n-1, each followed by a comma"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "fixture_cpp", NULL, -1, methods};

PyMODINIT_FUNC PyInit_fixture_cpp(void) { return PyModule_Create(&module); }
