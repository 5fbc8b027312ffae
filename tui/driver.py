"""The terminal driver: Textual's own, but continued after a stop it did not make.

Textual resumes application mode on every SIGCONT, as if its Ctrl-Z handler (SIGTSTP) had suspended it first.
After any other stop (SIGSTOP; SIGTTIN or SIGTTOU when `energytui &` reads or sets the terminal, then `fg`) that
started a second input thread beside the first, and quitting then hung, the farewell printed. On such a SIGCONT
this driver suspends application mode before resuming it, as Ctrl-Z does: one input thread, and the terminal back
in the app's modes whatever the shell set while the app was stopped.
"""

from __future__ import annotations

from textual.drivers.linux_driver import LinuxDriver


class ContinuedDriver(LinuxDriver):
    def _sigcont_application(self, *args) -> None:
        if self._auto_restart and not self._must_signal_resume:  # no SIGTSTP suspended it: still in app mode
            self.suspend_application_mode()
        super()._sigcont_application(*args)
