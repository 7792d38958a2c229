/*
 * fastloss_api.h -- calling fastloss's C kernels from another extension module.
 *
 * The kernels live in the fastloss._core extension; other extensions reach
 * them through a table of function pointers that _core exports as the
 * capsule "fastloss._core._C_API" (NumPy's import_array() pattern), so no
 * link-time dependency on fastloss is needed:
 *
 *     #include <Python.h>
 *     #include "fastloss_api.h"          // cc -I$(python -c "import fastloss; print(fastloss.get_include())")
 *     ...in the module init:   if (fl_import() < 0) return NULL;
 *     ...then, GIL released or not:
 *         fl_softmax_ce_args a = {0};  a.outer = n; a.n_classes = c; a.inner = 1; ...
 *         fl_result r;  fl_status st = FL_API->softmax_ce_f64(&a, &r);
 *
 * The table only grows: new entries are appended and `version` increases,
 * so a caller built against version V runs with any table whose version >= V.
 */
#ifndef FASTLOSS_API_H
#define FASTLOSS_API_H

#include "fastloss.h"

#define FASTLOSS_API_VERSION 2
#define FASTLOSS_CAPSULE_NAME "fastloss._core._C_API"

typedef struct {
    int version;
    fl_status (*softmax_ce_f32)(const fl_softmax_ce_args *, fl_result *);
    fl_status (*softmax_ce_f64)(const fl_softmax_ce_args *, fl_result *);
    fl_status (*sigmoid_ce_f32)(const fl_sigmoid_ce_args *, fl_result *);
    fl_status (*sigmoid_ce_f64)(const fl_sigmoid_ce_args *, fl_result *);
    fl_status (*hinge_f32)(const fl_hinge_args *, fl_result *);
    fl_status (*hinge_f64)(const fl_hinge_args *, fl_result *);
    fl_status (*mse_f32)(const fl_mse_args *, fl_result *);
    fl_status (*mse_f64)(const fl_mse_args *, fl_result *);
    /* version 2: half precision (fastloss.h says which buffers are half) */
    fl_status (*softmax_ce_f16)(const fl_softmax_ce_args *, fl_result *);
    fl_status (*softmax_ce_bf16)(const fl_softmax_ce_args *, fl_result *);
    fl_status (*sigmoid_ce_f16)(const fl_sigmoid_ce_args *, fl_result *);
    fl_status (*sigmoid_ce_bf16)(const fl_sigmoid_ce_args *, fl_result *);
    fl_status (*hinge_f16)(const fl_hinge_args *, fl_result *);
    fl_status (*hinge_bf16)(const fl_hinge_args *, fl_result *);
    fl_status (*mse_f16)(const fl_mse_args *, fl_result *);
    fl_status (*mse_bf16)(const fl_mse_args *, fl_result *);
} fl_api_table;

#ifdef Py_PYTHON_H
/* One pointer per translation unit that includes this header. */
static const fl_api_table *FL_API = NULL;

/* Import fastloss._core and fetch its table: 0 on success, -1 with a Python
 * exception set (ImportError, or RuntimeError for a table that is too old). */
static int fl_import(void)
{
    const fl_api_table *t = (const fl_api_table *)PyCapsule_Import(FASTLOSS_CAPSULE_NAME, 0);
    if (t == NULL) return -1;
    if (t->version < FASTLOSS_API_VERSION) {
        PyErr_Format(PyExc_RuntimeError, "fastloss C API version %d is older than %d, the one "
                     "this module was built against", t->version, FASTLOSS_API_VERSION);
        return -1;
    }
    FL_API = t;
    return 0;
}
#endif

#endif /* FASTLOSS_API_H */
