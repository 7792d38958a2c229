"""The C API: a tiny extension module, compiled here against fastloss.get_include(),
calls the softmax kernel through the capsule table with raw pointers."""

import os
import subprocess
import sys
import sysconfig
import textwrap

import numpy as np
import pytest

import fastloss

TINY = textwrap.dedent(r"""
    #define PY_SSIZE_T_CLEAN
    #include <Python.h>
    #include "fastloss_api.h"

    /* mean_ce(logits: float64 buffer (n, c), labels: int64 buffer (n,)) -> (loss, status) */
    static PyObject *mean_ce(PyObject *self, PyObject *args)
    {
        PyObject *ox, *oy;
        Py_buffer bx, by;
        fl_softmax_ce_args a;
        fl_result r;
        fl_status st;
        if (!PyArg_ParseTuple(args, "OO", &ox, &oy)) return NULL;
        if (PyObject_GetBuffer(ox, &bx, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_ND) < 0)
            return NULL;
        if (PyObject_GetBuffer(oy, &by, PyBUF_C_CONTIGUOUS | PyBUF_ND) < 0) {
            PyBuffer_Release(&bx);
            return NULL;
        }
        memset(&a, 0, sizeof(a));
        a.outer = bx.shape[0];
        a.n_classes = bx.shape[1];
        a.inner = 1;
        a.logits = bx.buf;
        a.labels = (const int64_t *)by.buf;
        a.ignore_index = -100;
        a.reduction = FL_REDUCE_MEAN;
        Py_BEGIN_ALLOW_THREADS
        st = FL_API->softmax_ce_f64(&a, &r);
        Py_END_ALLOW_THREADS
        PyBuffer_Release(&bx);
        PyBuffer_Release(&by);
        return Py_BuildValue("(di)", r.value, (int)st);
    }

    static PyMethodDef methods[] = {{"mean_ce", mean_ce, METH_VARARGS, NULL}, {NULL}};
    static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "tiny_fl", NULL, -1, methods};

    PyMODINIT_FUNC PyInit_tiny_fl(void)
    {
        if (fl_import() < 0) return NULL;
        return PyModule_Create(&mod);
    }
""")


def _compiler():
    cc = sysconfig.get_config_var("CC")
    return cc.split()[0] if cc else None


@pytest.mark.skipif(sys.platform == "win32", reason="the test drives a Unix C compiler")
def test_a_tiny_extension_calls_a_kernel_from_c(tmp_path):
    cc = _compiler()
    if cc is None or subprocess.run([cc, "--version"], capture_output=True).returncode != 0:
        pytest.skip("no C compiler")
    include = fastloss.get_include()
    assert os.path.isfile(os.path.join(include, "fastloss.h"))
    src = tmp_path / "tiny_fl.c"
    src.write_text(TINY)
    so = tmp_path / ("tiny_fl" + sysconfig.get_config_var("EXT_SUFFIX"))
    cmd = [cc, "-shared", "-fPIC", "-O1", "-I" + sysconfig.get_paths()["include"],
           "-I" + include, str(src), "-o", str(so)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    code = textwrap.dedent("""
        import sys, numpy as np, fastloss
        sys.path.insert(0, sys.argv[1])
        import tiny_fl
        rng = np.random.default_rng(0)
        x = rng.standard_normal((50, 7))
        y = rng.integers(0, 7, 50)
        value, status = tiny_fl.mean_ce(x, y)
        assert status == 0, status
        expected = fastloss.softmax_cross_entropy(x, y)
        assert value == expected, (value, expected)
        bad, status = tiny_fl.mean_ce(x, np.full(50, 9))
        assert status == 1, status          # FL_ERR_LABEL
        print("ok", value)
    """)
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ok")


def test_capsule_table_is_exported():
    import fastloss._core as core
    assert type(core._C_API).__name__ == "PyCapsule"
    assert "fastloss._core._C_API" in repr(core._C_API)
