"""The progress line of `energytui run`: trial i/N, its configuration, live tokens/s."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from energytui.app.views import TAG_LABELS, config_label

if TYPE_CHECKING:
    from energytui.app.runs import Event

from .tables import terminal_width, wrap

_BAR = 20


class Progress:
    def __init__(self, stream, columns: int | None = None):
        self.stream = stream
        self.live = stream.isatty()  # redraw in place on a terminal, one line per trial otherwise
        self.columns = columns or (shutil.get_terminal_size().columns if self.live else terminal_width())
        self._width = 0

    def on_event(self, event: Event) -> None:
        if event.kind == "tokens" and self.live:
            rate = f"{event.tokens_per_s:6.1f} tok/s" if event.tokens_per_s else "   … tok/s"
            self._draw(f"{self._head(event)}  {event.tokens:4d} tok {rate}")
        elif event.kind == "trial_start" and self.live:
            self._draw(f"{self._head(event)}  prefill…")
        elif event.kind == "cooldown" and self.live:
            self._draw(f"{self._head(event)}  cooldown {event.trial['cooldown_s']:g} s")
        elif event.kind == "trial_end":
            self._draw(self._result(event), final=True)

    def _head(self, event: Event) -> str:
        filled = _BAR * (event.index - 1) // max(event.total, 1)
        trial = event.trial
        prompt = "" if trial["prompt_id"] == (trial["suite"] or trial["prompt_id"]) else f" {trial['prompt_id']}"
        return (f"[{'#' * filled}{'.' * (_BAR - filled)}] trial {event.index}/{event.total} "
                f"{config_label(trial)}{prompt} r{trial['repetition']}")

    def _result(self, event: Event) -> str:
        trial = event.trial
        if trial["status"] != "done":
            return f"{self._head(event)}  {trial['status'].upper()}: {trial['error']}"
        energy = ""
        if trial.get("j_per_token") is not None:
            energy = f", {trial['j_per_token']:.4f} J/tok {TAG_LABELS.get(trial['energy_tag'], trial['energy_tag'])}"
        return (f"{self._head(event)}  {trial['gen_tokens']} tok, TTFT {trial['ttft_ms']:.0f} ms, "
                f"decode {trial['decode_tps'] or 0:.1f} tok/s{energy}")

    def _draw(self, text: str, final: bool = False) -> None:
        """Live redraws are cut to the terminal's width; a trial's final line wraps instead."""
        if self.live and not final:
            text = text if not self.columns or len(text) < self.columns else text[:self.columns - 2] + "…"
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        elif self.live:
            self.stream.write("\r" + " " * self._width + "\r" + wrap(text, self.columns, "    ") + "\n")
            self._width = 0
        else:
            self.stream.write(wrap(text, self.columns, "    ") + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.live and self._width:
            self.stream.write("\n")
            self.stream.flush()
