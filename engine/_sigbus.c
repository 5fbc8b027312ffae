/* One line instead of "Bus error" when a model file is cut short while llama.cpp reads it (engine/sigbus.py).
 *
 * llama.cpp maps model files into memory. A file cut short in place (a copy or download over it) leaves pages of
 * that mapping with no file behind them, and the next read of one raises SIGBUS with si_code BUS_ADRERR, which
 * kills the process before any Python code can run. This handler writes the line the caller prepared (naming the
 * mapped model files, and how to go on) and exits with 135, the status a shell reports for SIGBUS. Other SIGBUS
 * causes get the default action. A full-screen app that holds the terminal (raw input, the alternate screen) gives
 * the terminal to put back first, so that the line and the shell after it read normally. The app's other threads
 * go on until _exit: standard error is pointed at /dev/null first, so that a frame its writer thread sends after
 * the codes that leave its modes lands nowhere, and the codes and the line go out in one write. Only
 * async-signal-safe calls: tcsetattr, dup, open, dup2, memcpy, write and _exit. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static char message[4096];
static volatile sig_atomic_t length;
static struct termios terminal_settings;  /* the terminal as it was before the app took it */
static char leave_app[256];  /* the escape codes that leave the app's modes */
static volatile sig_atomic_t leave_length, terminal_fd = -1;

static char output[sizeof leave_app + sizeof message];

static void write_all(int fd, const char *text, size_t n) {
    while (n > 0) {
        ssize_t written = write(fd, text, n);
        if (written <= 0)
            return;
        text += written;
        n -= (size_t)written;
    }
}

static void on_sigbus(int sig, siginfo_t *info, void *context) {
    (void)context;
    if (info == NULL || info->si_code != BUS_ADRERR) {
        signal(sig, SIG_DFL);  /* returning runs the faulting instruction again, now with the default action */
        return;
    }
    int out = dup(STDERR_FILENO), sink = open("/dev/null", O_WRONLY);
    if (out < 0)
        out = STDERR_FILENO;
    else if (sink >= 0)
        dup2(sink, STDERR_FILENO);  /* what other threads write from here on goes nowhere */
    size_t n = 0;
    if (terminal_fd >= 0) {
        tcsetattr(terminal_fd, TCSANOW, &terminal_settings);
        memcpy(output, leave_app, (size_t)leave_length);
        n = (size_t)leave_length;
    }
    memcpy(output + n, message, (size_t)length);
    write_all(out, output, n + (size_t)length);
    _exit(128 + SIGBUS);
}

/* An app takes the terminal on `fd` (its input): its settings now are put back, and `leave` (escape codes) written
 * to standard error, before the line. fd < 0: the app gave it back. Returns tcgetattr's result. */
int et_sigbus_terminal(int fd, const char *leave) {
    terminal_fd = -1;
    if (fd < 0)
        return 0;
    size_t n = strlen(leave);
    if (n >= sizeof leave_app)
        n = sizeof leave_app - 1;
    memcpy(leave_app, leave, n);
    leave_length = (sig_atomic_t)n;
    if (tcgetattr(fd, &terminal_settings) != 0)
        return -1;
    terminal_fd = fd;
    return 0;
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
