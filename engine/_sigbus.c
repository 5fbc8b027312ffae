/* One line instead of "Bus error" when a model file is cut short while llama.cpp reads it (engine/sigbus.py).
 *
 * llama.cpp maps model files into memory. A file cut short in place (a copy or download over it) leaves pages of
 * that mapping with no file behind them, and the next read of one raises SIGBUS with si_code BUS_ADRERR, which
 * kills the process before any Python code can run. This handler writes the line the caller prepared (naming the
 * mapped model files, and how to go on) and exits with 135, the status a shell reports for SIGBUS. Other SIGBUS
 * causes get the default action. Only async-signal-safe calls: write and _exit. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static char message[4096];
static volatile sig_atomic_t length;

static void on_sigbus(int sig, siginfo_t *info, void *context) {
    (void)context;
    if (info == NULL || info->si_code != BUS_ADRERR) {
        signal(sig, SIG_DFL);  /* returning runs the faulting instruction again, now with the default action */
        return;
    }
    if (length > 0) {
        ssize_t written = write(STDERR_FILENO, message, (size_t)length);
        (void)written;
    }
    _exit(128 + SIGBUS);
}

/* Sets the line written on a read past the end of a mapped file (cut to fit), and installs the handler. */
int et_sigbus_message(const char *text) {
    size_t n = strlen(text);
    if (n >= sizeof message)
        n = sizeof message - 1;
    length = 0;  /* a fault while the text changes writes nothing rather than half of it */
    memcpy(message, text, n);
    length = (sig_atomic_t)n;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    return sigaction(SIGBUS, &action, NULL);
}

static struct PyModuleDef sigbus_module = {
    PyModuleDef_HEAD_INIT, "_sigbus",
    "A SIGBUS handler that names the mapped model files; called through ctypes (engine/sigbus.py).",
    -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sigbus(void) { return PyModule_Create(&sigbus_module); }
