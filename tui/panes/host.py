"""The Host tab: this machine, its llama.cpp build, and which power sources it can read (or why not)."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from ..pane import Pane


class HostPane(Pane):
    def compose(self) -> ComposeResult:
        with VerticalScroll(id="host-scroll"):
            yield Static("Probing power sources…", id="host-text", markup=False)

    def after_open(self) -> None:
        self.probe()

    @work(thread=True, exclusive=True, group="host")
    def probe(self) -> None:
        from energytui.app import machine

        described = machine.describe(self.config.meter or machine.MeterOptions())
        host, report = described.host, described.power
        lines = [f"{host['hostname']}: {host['cpu']}, {host['cores']} CPUs, {host['ram_gb']} GiB RAM",
                 f"GPU: {host['gpu'] or 'none visible through NVML'}; llama-cpp-python {host['llama_cpp']}, "
                 f"GPU offload {'yes' if host['gpu_offload'] else 'no'}", "", "Power sources:"]
        for s in report.sources:
            slow = " (slow: its energy comes from steady-state windows)" if s.get("slow") else ""
            state = f" — state: {s['state']}" if s.get("state") else ""
            ms = s["update_period_ms"]
            period = f"{ms:.3g} ms" if ms < 1000 else f"{ms / 1e3:.3g} s"  # a battery's 5 s, not "5e+03 ms"
            lines.append(f"  ok  {', '.join(s['devices'])}: {s['tag']}, {s['achieved_hz']:.0f} Hz, "
                         f"updates every {period}{slow} — {s['method']}{state}")
        for u in report.unavailable:
            lines.append(f"  missing  {u.name}: {u.reason}" + (f" — fix: {u.remedy}" if u.remedy else ""))
        lines.append("")
        lines.append("Energy is measured." if report.real else
                     "No power counter can be read: energy figures are ESTIMATES.")
        self.on_ui(lambda: self.query_one(Static).update("\n".join(lines)))
