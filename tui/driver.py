"""The terminal driver: Textual's own, but continued after a stop it did not make, and put back by a crash no
Python code survives.

Textual resumes application mode on every SIGCONT, as if its Ctrl-Z handler (SIGTSTP) had suspended it first.
After any other stop (SIGSTOP; SIGTTIN or SIGTTOU when `energytui &` reads or sets the terminal, then `fg`) that
started a second input thread beside the first, and quitting then hung, the farewell printed. On such a SIGCONT
this driver suspends application mode before resuming it, as Ctrl-Z does: one input thread, and the terminal back
in the app's modes whatever the shell set while the app was stopped.

A model file cut short while llama.cpp reads it ends the process from a C signal handler (engine/sigbus.py): this
driver gives that handler the terminal's settings from before the app took it and the escape codes that leave
the app's modes, so the shell is usable after the line it writes.
"""

from __future__ import annotations

from textual.drivers.linux_driver import LinuxDriver

from energytui.app import guard_terminal, release_terminal

# What LinuxDriver.stop_application_mode writes to leave the app's modes (Textual 8.2.8): the kitty keyboard
# protocol, bracketed paste, mouse reporting, focus events, the alternate screen; the cursor shown again.
LEAVE_APP_MODES = "\x1b[<u\x1b[?2004l\x1b[?1000l\x1b[?1003l\x1b[?1015l\x1b[?1006l\x1b[?1004l\x1b[?1049l\x1b[?25h"


class ContinuedDriver(LinuxDriver):
    def _sigcont_application(self, *args) -> None:
        if self._auto_restart and not self._must_signal_resume:  # no SIGTSTP suspended it: still in app mode
            self.suspend_application_mode()
        super()._sigcont_application(*args)

    def start_application_mode(self) -> None:
        guard_terminal(self.fileno, LEAVE_APP_MODES)  # before the app makes the terminal raw
        super().start_application_mode()

    def stop_application_mode(self) -> None:
        super().stop_application_mode()
        release_terminal()
