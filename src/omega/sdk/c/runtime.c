/*
 * The C half of libomega.so: starting the embedded interpreter, the per-thread error
 * sentence, and the functions that need no Python. `omega.sdk.build` compiles this with
 * cffi's embedding mode, after the build's constants (omega__build_home,
 * omega__build_path) and before the wrappers it generates from omega.h: each public
 * function is `if (!omega__enter()) return OMEGA_E_MODEL;` then its Python
 * implementation (`extern "Python"`, in omega.sdk.cabi).
 *
 * Why the library starts the interpreter itself instead of leaving it to cffi: cffi's
 * own start uses the defaults of a `python` executable, so the interpreter would look
 * for packages beside the base installation and miss a virtualenv's; a failure there
 * prints to stderr and every call then returns 0 — OMEGA_OK. Here the interpreter is
 * configured explicitly (PyConfig: isolated from the host's PYTHON* variables, no
 * signal handlers, UTF-8, no `site`), its failures come back as a PyStatus, and
 * every later call answers OMEGA_E_MODEL with the sentence.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OMEGA_ERROR_SIZE 1024

static __thread char omega__error[OMEGA_ERROR_SIZE];
static pthread_once_t omega__once = PTHREAD_ONCE_INIT;
static int omega__ready;    /* 1: running; -1: it failed to start (omega__failure) */
static int omega__embedded; /* 1: this library started the interpreter */
static char omega__failure[OMEGA_ERROR_SIZE];
static char omega__path[8192]; /* ':'-separated directories added to sys.path */

static int cffi_start_python(void); /* cffi's, in _embedding.h */

/* Called from Python (omega.sdk.cabi): this thread's sentence. */
void _omega_set_error(const char *sentence)
{
    snprintf(omega__error, sizeof omega__error, "%s", sentence ? sentence : "");
}

/* For the init code: did this library start the interpreter, and with which path. */
int _omega_embedded(void) { return omega__embedded; }
const char *_omega_search_path(void) { return omega__path; }

static void omega__fail(const char *what, const char *detail)
{
    snprintf(omega__failure, sizeof omega__failure,
             "the Omega library could not start its Python runtime: %s%s%s", what,
             detail && *detail ? ": " : "", detail ? detail : "");
    omega__ready = -1;
}

/* OMEGA_PYTHONPATH (the device's directories) first, then the build's. */
static void omega__compose_path(void)
{
    const char *extra = getenv("OMEGA_PYTHONPATH");
    snprintf(omega__path, sizeof omega__path, "%s%s%s", extra && *extra ? extra : "",
             extra && *extra ? ":" : "", omega__build_path);
}

/* A PyStatus failure as one sentence. */
static void omega__fail_status(const char *what, PyStatus status)
{
    char detail[512];
    snprintf(detail, sizeof detail, "%s%s%s", status.func ? status.func : "",
             status.func ? ": " : "", status.err_msg ? status.err_msg : "unknown error");
    omega__fail(what, detail);
}

static int omega__allocator(const char *name)
{
    if (name == NULL || *name == '\0') return PYMEM_ALLOCATOR_NOT_SET;
    if (strcmp(name, "malloc") == 0) return PYMEM_ALLOCATOR_MALLOC;
    if (strcmp(name, "malloc_debug") == 0) return PYMEM_ALLOCATOR_MALLOC_DEBUG;
    if (strcmp(name, "pymalloc") == 0) return PYMEM_ALLOCATOR_PYMALLOC;
    if (strcmp(name, "debug") == 0) return PYMEM_ALLOCATOR_DEBUG;
    return PYMEM_ALLOCATOR_NOT_SET;
}

/* The exception being handled, as "Type: message" (the GIL held). */
static void omega__describe_exception(char *out, size_t size)
{
    PyObject *type, *value, *trace, *text = NULL;
    const char *message = NULL;
    PyErr_Fetch(&type, &value, &trace);
    PyErr_NormalizeException(&type, &value, &trace);
    if (value != NULL) text = PyObject_Str(value);
    if (text != NULL) message = PyUnicode_AsUTF8(text);
    snprintf(out, size, "%s: %s",
             type != NULL ? ((PyTypeObject *)type)->tp_name : "error",
             message != NULL ? message : "?");
    PyErr_Clear();
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(trace);
}

/* Append the ':'-separated directories to sys.path, then import _cffi_backend (cffi
   needs it before any of Omega's code runs). The GIL held; 0 on success. */
static int omega__prepare_path(void)
{
    char detail[OMEGA_ERROR_SIZE];
    PyObject *path = PySys_GetObject("path"); /* borrowed */
    PyObject *backend;
    const char *start = omega__path;
    while (path != NULL && *start) {
        const char *end = strchr(start, ':');
        size_t length = end ? (size_t)(end - start) : strlen(start);
        if (length > 0) {
            PyObject *entry = PyUnicode_DecodeFSDefaultAndSize(start, (Py_ssize_t)length);
            if (entry == NULL || PyList_Append(path, entry) < 0) {
                Py_XDECREF(entry);
                omega__describe_exception(detail, sizeof detail);
                omega__fail("cannot extend sys.path", detail);
                return -1;
            }
            Py_DECREF(entry);
        }
        start += length + (end ? 1 : 0);
    }
    backend = PyImport_ImportModule("_cffi_backend");
    if (backend == NULL) {
        omega__describe_exception(detail, sizeof detail);
        snprintf(detail + strlen(detail), sizeof detail - strlen(detail),
                 " (searched %s; set OMEGA_PYTHONPATH to the directories holding Omega "
                 "and its dependencies)", omega__path);
        omega__fail("cannot import cffi's _cffi_backend", detail);
        return -1;
    }
    Py_DECREF(backend);
    return 0;
}

static void omega__start_interpreter(void)
{
    PyPreConfig preconfig;
    PyConfig config;
    PyStatus status;
    const char *home = getenv("OMEGA_PYTHONHOME");

    PyPreConfig_InitIsolatedConfig(&preconfig);
    preconfig.utf8_mode = 1;
    /* PYTHONMALLOC=malloc lets valgrind see every allocation (docs/sdk.md). */
    preconfig.allocator = omega__allocator(getenv("PYTHONMALLOC"));
    status = Py_PreInitialize(&preconfig);
    if (PyStatus_Exception(status)) {
        omega__fail_status("pre-initialisation failed", status);
        return;
    }
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0; /* the path is set below: the build's, not the base's */
    config.install_signal_handlers = 0;
    status = PyConfig_SetBytesString(&config, &config.home,
                                     home && *home ? home : omega__build_home);
    if (!PyStatus_Exception(status))
        status = PyConfig_SetBytesString(&config, &config.program_name, "omega");
    if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        omega__fail_status("the interpreter did not start (is OMEGA_PYTHONHOME right?)",
                           status);
        return;
    }
    omega__embedded = 1;
    omega__prepare_path();
    PyEval_SaveThread(); /* release the GIL: calls take it as they come */
}

static void omega__start(void)
{
    omega__compose_path();
    if (!Py_IsInitialized()) { /* else the host is Python itself (ctypes, say) */
        omega__start_interpreter();
        if (omega__ready < 0) return;
    }
    if (cffi_start_python() != 0) {
        omega__fail("cffi's start-up failed", "its report went to stderr");
        return;
    }
    omega__ready = 1;
}

/* Start the runtime once (any thread); clear this thread's sentence. 0: it failed. */
static int omega__enter(void)
{
    omega__error[0] = '\0';
    pthread_once(&omega__once, omega__start);
    if (omega__ready < 0) {
        _omega_set_error(omega__failure);
        return 0;
    }
    return 1;
}

OMEGA_API const char *omega_last_error(void) { return omega__error; }

OMEGA_API const char *omega_version(void) { return OMEGA_VERSION; }

OMEGA_API const char *omega_status_name(omega_status status)
{
    static const char *const names[] = {
        "OMEGA_OK",      "OMEGA_E_ERROR",   "OMEGA_E_CONFIG",  "OMEGA_E_INPUT",
        "OMEGA_E_STORAGE", "OMEGA_E_MODEL", "OMEGA_E_NETWORK", "OMEGA_E_AUTH",
        "OMEGA_E_PROTOCOL", "OMEGA_E_BUFFER",
    };
    if ((int)status < 0 || (size_t)status >= sizeof names / sizeof names[0])
        return "OMEGA_E_UNKNOWN";
    return names[status];
}
