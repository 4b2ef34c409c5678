/* mvm_py.c -- the CPython extension miresga_core._mvm: the C VM for the `kernel` data plane.
 *
 *   _mvm.Program(data, kinds=None) load + verify (ValueError with the verifier's message);
 *                                 kinds: 4 objects returned for route, needmore, reject,
 *                                 error (default: the numbers 0..3)
 *   Program.run(buf, args=())     -> (kind, decision, status, reason, head_len, framing,
 *                                     content_length, flags, backend)
 *   Program.bench(buf, n, args=())  run n times in C (bench/vm), return the last result
 *
 * The GIL is released around long runs only (bench); one decision is shorter than the
 * release/acquire pair. miresga_core/bytecode/native.py wraps this into Outcome objects. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "mvm.h"

typedef struct {
	PyObject_HEAD
	struct mvm_prog *prog;
	PyObject *kinds[4];             /* names of the outcome kinds, or NULL: ints */
} ProgramObject;

static void Program_dealloc(ProgramObject *self)
{
	mvm_free(self->prog);
	for (int i = 0; i < 4; i++)
		Py_CLEAR(self->kinds[i]);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Program_init(ProgramObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "data", "kinds", NULL };
	Py_buffer buf;
	PyObject *kinds = NULL;
	char err[256];
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "y*|O", kwlist, &buf, &kinds))
		return -1;
	if (kinds) {
		if (!PyTuple_Check(kinds) || PyTuple_GET_SIZE(kinds) != 4) {
			PyBuffer_Release(&buf);
			PyErr_SetString(PyExc_TypeError, "kinds must be a tuple of 4 names");
			return -1;
		}
		for (int i = 0; i < 4; i++) {
			Py_XSETREF(self->kinds[i], Py_NewRef(PyTuple_GET_ITEM(kinds, i)));
		}
	}
	mvm_free(self->prog);
	self->prog = NULL;
	rc = mvm_load(buf.buf, (size_t)buf.len, &self->prog, err, sizeof(err));
	PyBuffer_Release(&buf);
	if (rc < 0) {
		PyErr_SetString(PyExc_ValueError, err);
		return -1;
	}
	return 0;
}

static int parse_args(PyObject *seq, int64_t *out, int *n)
{
	*n = 0;
	if (!seq || seq == Py_None)
		return 0;
	PyObject *fast = PySequence_Fast(seq, "args must be a sequence of ints");
	if (!fast)
		return -1;
	Py_ssize_t len = PySequence_Fast_GET_SIZE(fast);
	if (len > MVM_NARGS) {
		Py_DECREF(fast);
		PyErr_Format(PyExc_ValueError, "at most %d args", MVM_NARGS);
		return -1;
	}
	for (Py_ssize_t i = 0; i < len; i++) {
		long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(fast, i));
		if (v == -1 && PyErr_Occurred()) {
			Py_DECREF(fast);
			return -1;
		}
		out[i] = v;
	}
	*n = (int)len;
	Py_DECREF(fast);
	return 0;
}

static PyObject *result_tuple(ProgramObject *self, const struct mvm_result *r)
{
	PyObject *t = PyTuple_New(9);
	PyObject *kind;

	if (!t)
		return NULL;
	kind = self->kinds[r->kind] ? Py_NewRef(self->kinds[r->kind]) : PyLong_FromLong(r->kind);
	PyTuple_SET_ITEM(t, 0, kind);
	PyTuple_SET_ITEM(t, 1, PyLong_FromLong(r->decision));
	PyTuple_SET_ITEM(t, 2, PyLong_FromLong(r->status));
	PyTuple_SET_ITEM(t, 3, PyBytes_FromStringAndSize(r->reason ? (const char *)r->reason : "",
							 (Py_ssize_t)r->reason_len));
	PyTuple_SET_ITEM(t, 4, PyLong_FromLongLong(r->out[MVM_F_HEAD_LEN]));
	PyTuple_SET_ITEM(t, 5, PyLong_FromLongLong(r->out[MVM_F_FRAMING]));
	PyTuple_SET_ITEM(t, 6, PyLong_FromLongLong(r->out[MVM_F_CONTENT_LENGTH]));
	PyTuple_SET_ITEM(t, 7, PyLong_FromLongLong(r->out[MVM_F_FLAGS]));
	PyTuple_SET_ITEM(t, 8, PyLong_FromLongLong(r->out[MVM_F_BACKEND]));
	for (int i = 0; i < 9; i++) {
		if (!PyTuple_GET_ITEM(t, i)) {
			Py_DECREF(t);
			return NULL;
		}
	}
	return t;
}

/* run(buf, args=()) with the vectorcall convention: one decision per call from the data
 * plane, so the argument parsing is done by hand */
static PyObject *Program_run(ProgramObject *self, PyObject *const *argv, Py_ssize_t argc)
{
	Py_buffer buf;
	int64_t a[MVM_NARGS];
	int na = 0;
	struct mvm_result res;

	if (!self->prog) {
		PyErr_SetString(PyExc_RuntimeError, "program not loaded");
		return NULL;
	}
	if (argc < 1 || argc > 2) {
		PyErr_SetString(PyExc_TypeError, "run(buf, args=())");
		return NULL;
	}
	if (argc == 2 && parse_args(argv[1], a, &na) < 0)
		return NULL;
	if (PyObject_GetBuffer(argv[0], &buf, PyBUF_SIMPLE) < 0)
		return NULL;
	mvm_exec(self->prog, buf.buf, (size_t)buf.len, a, na, &res);
	PyBuffer_Release(&buf);
	return result_tuple(self, &res);
}

static PyObject *Program_bench(ProgramObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "buf", "n", "args", NULL };
	Py_buffer buf;
	Py_ssize_t n;
	PyObject *seq = NULL;
	int64_t a[MVM_NARGS];
	int na;
	struct mvm_result res;

	if (!self->prog) {
		PyErr_SetString(PyExc_RuntimeError, "program not loaded");
		return NULL;
	}
	if (!PyArg_ParseTupleAndKeywords(args, kw, "y*n|O", kwlist, &buf, &n, &seq))
		return NULL;
	if (n < 1 || parse_args(seq, a, &na) < 0) {
		if (!PyErr_Occurred())
			PyErr_SetString(PyExc_ValueError, "n must be >= 1");
		PyBuffer_Release(&buf);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	for (Py_ssize_t i = 0; i < n; i++)
		mvm_exec(self->prog, buf.buf, (size_t)buf.len, a, na, &res);
	Py_END_ALLOW_THREADS
	PyObject *out = result_tuple(self, &res);
	PyBuffer_Release(&buf);
	return out;
}

static PyMethodDef Program_methods[] = {
	{ "run", (PyCFunction)(void (*)(void))Program_run, METH_FASTCALL,
	  "run(buf, args=()) -> result tuple" },
	{ "bench", (PyCFunction)(void (*)(void))Program_bench, METH_VARARGS | METH_KEYWORDS,
	  "bench(buf, n, args=()) -> last result tuple" },
	{ NULL, NULL, 0, NULL },
};

static PyTypeObject ProgramType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "miresga_core._mvm.Program",
	.tp_basicsize = sizeof(ProgramObject),
	.tp_dealloc = (destructor)Program_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "A verified MVM program (C VM)",
	.tp_methods = Program_methods,
	.tp_init = (initproc)Program_init,
	.tp_new = PyType_GenericNew,
};

static struct PyModuleDef mvm_module = {
	PyModuleDef_HEAD_INIT, "_mvm", "The Miresga rule VM in C", -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__mvm(void)
{
	PyObject *m;

	if (PyType_Ready(&ProgramType) < 0)
		return NULL;
	m = PyModule_Create(&mvm_module);
	if (!m)
		return NULL;
	Py_INCREF(&ProgramType);
	if (PyModule_AddObject(m, "Program", (PyObject *)&ProgramType) < 0 ||
	    PyModule_AddIntConstant(m, "FMT_VERSION", MVM_FMT_VERSION) < 0 ||
	    PyModule_AddIntConstant(m, "HELPER_ABI", MVM_HELPER_ABI) < 0) {
		Py_DECREF(&ProgramType);
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
