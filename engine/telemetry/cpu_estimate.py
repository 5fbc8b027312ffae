"""A declared CPU power estimate for machines without readable RAPL counters.

Model: watts = static + busy_threads x dynamic_per_thread, where busy_threads is the
busy fraction of the visible CPUs (from /proc/stat) times their count, and

    static             = static_share x TDP x visible CPUs / hardware threads
    dynamic_per_thread = (1 - static_share) x TDP / hardware threads

so every visible CPU busy draws TDP x visible / threads, and idle draws the static part
(uncore and leakage: a package spends it whatever the thread count, which favours finishing
sooner). TDP and thread count come from config/cpu_tdp.yaml (matched against /proc/cpuinfo
"model name"), or from the user (--cpu-tdp), or from a generic default of
GENERIC_WATTS_PER_THREAD; the static share from the entry, its class of part (laptop,
desktop, server) or the user (--cpu-static-share). The source states all of it in `method`
and `assumption`, and the advisor reads the numbers back from `method` (parse_method).

Energy accumulates like a counter's: each interval between two readings at the power its own clock
ticks show (their busy share, so never above every CPU busy). The meter reads it at every window's edge
(an EdgeSource), so a window's energy is the difference of two readings at its ends, whatever the periodic
rate; the periodic readings (CHART_INTERVAL_S) only draw the live chart and the peak, and each of them
wakes a thread that, on a small machine, preempts one of llama.cpp's.

Known limitation: in a virtual machine /proc/stat counts this VM's vCPUs only;
the host's power (other tenants, uncore, fans) is unknowable from inside.
Every sample is tagged "estimated".
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from .base import ESTIMATED, Sample, Unavailable

DEFAULT_PROC_STAT = "/proc/stat"
DEFAULT_CPUINFO = "/proc/cpuinfo"
# Between laptop parts (~2-3 W per thread at TDP) and desktop parts (~4-8 W);
# server parts are lower (~1.5-3 W). Off by 2x is plausible, hence always stated.
GENERIC_WATTS_PER_THREAD = 5.0
TABLE_LABEL = "config/cpu_tdp.yaml"
_READ_BYTES = 512  # the aggregate "cpu" line is first and far shorter than this
CHART_INTERVAL_S = 0.1  # periodic readings between window edges, for the live chart and the peak


@dataclass(frozen=True)
class TdpEntry:
    pattern: re.Pattern
    name: str
    tdp_w: float
    threads: int
    cpu_class: str = ""
    static_share: float | None = None  # the entry's own, where a measurement of this part exists
    static_source: str = ""


@dataclass(frozen=True)
class CpuClass:
    """A class of part (laptop, desktop, server): its static share of TDP and where that number comes from."""

    name: str
    share: float
    source: str
    pattern: re.Pattern | None = None  # recognises an unlisted CPU of this class by its model name


@dataclass(frozen=True)
class StaticPowerTable:
    classes: dict[str, CpuClass]
    unknown_class: str  # the class of a CPU no pattern recognises
    low: float  # the plausible range of the static share, which the advisor checks its answers against
    high: float
    range_source: str


@dataclass(frozen=True)
class CpuPowerModel:
    tdp_w: float
    threads: int
    origin: str  # where tdp_w and threads came from, for people
    static_share: float = 0.0
    share_origin: str = ""  # where static_share came from
    share_source: str = ""  # the measurement or judgement behind it

    @property
    def watts_per_thread(self) -> float:
        """TDP per hardware thread: what one visible CPU draws when busy, static part included."""
        return self.tdp_w / self.threads

    @property
    def dynamic_w_per_thread(self) -> float:
        return (1.0 - self.static_share) * self.watts_per_thread

    def static_w(self, visible_cpus: int) -> float:
        """The visible CPUs' share of the package's static power (a VM is charged its slice only)."""
        return self.static_share * self.watts_per_thread * visible_cpus


def default_tdp_table_path() -> Path:
    """config/cpu_tdp.yaml: the installed package data, else the source checkout."""
    try:
        installed = resources.files("energytui.config").joinpath("cpu_tdp.yaml")
        if installed.is_file():
            return Path(str(installed))
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "config" / "cpu_tdp.yaml"


@functools.lru_cache(maxsize=8)
def _document(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


@functools.lru_cache(maxsize=8)
def load_tdp_table(path: str | Path | None = None) -> tuple[TdpEntry, ...]:
    """Entries of the TDP table, validated; raises ValueError naming the file on bad content."""
    path = Path(path) if path is not None else default_tdp_table_path()
    classes = load_static_power(path).classes
    entries = []
    for position, row in enumerate(_document(path).get("cpus") or []):
        try:
            entry = TdpEntry(re.compile(row["match"], re.IGNORECASE), str(row["name"]),
                             float(row["tdp_w"]), int(row["threads"]), str(row["class"]),
                             None if row.get("static_share") is None else float(row["static_share"]),
                             str(row.get("static_source") or ""))
        except (KeyError, TypeError, ValueError, re.error) as error:
            raise ValueError(f"{path}: entry {position + 1} is invalid ({error!r}); "
                             "each needs match, name, tdp_w, threads, class") from error
        if entry.tdp_w <= 0 or entry.threads <= 0:
            raise ValueError(f"{path}: entry {position + 1} ({entry.name}) needs tdp_w > 0 and threads > 0")
        if entry.cpu_class not in classes:
            raise ValueError(f"{path}: entry {position + 1} ({entry.name}): class {entry.cpu_class!r} is not one of "
                             f"static_power.classes ({', '.join(classes)})")
        if entry.static_share is not None:
            _check_share(entry.static_share, f"{path}: entry {position + 1} ({entry.name}) static_share")
            if not entry.static_source:
                raise ValueError(f"{path}: entry {position + 1} ({entry.name}) has a static_share without "
                                 "static_source; say where the number comes from")
        entries.append(entry)
    return tuple(entries)


@functools.lru_cache(maxsize=8)
def load_static_power(path: str | Path | None = None) -> StaticPowerTable:
    """The table's static_power section: classes of part and the plausible range; ValueError names the key."""
    path = Path(path) if path is not None else default_tdp_table_path()
    section = _document(path).get("static_power") or {}
    where = f"{path}: static_power"
    try:
        classes = {name: CpuClass(name, float(row["share"]), str(row["source"]),
                                  re.compile(row["match"], re.IGNORECASE) if row.get("match") else None)
                   for name, row in (section.get("classes") or {}).items()}
        bounds = section["range"]
        table = StaticPowerTable(classes, str(section["unknown_class"]), float(bounds["low"]), float(bounds["high"]),
                                 str(bounds["source"]))
    except (KeyError, TypeError, ValueError, AttributeError, re.error) as error:
        raise ValueError(f"{where} is invalid ({error!r}); it needs classes (each with share and source), "
                         "unknown_class and range (low, high, source)") from error
    for cpu_class in classes.values():
        _check_share(cpu_class.share, f"{where}.classes.{cpu_class.name}.share")
    if table.unknown_class not in classes:
        raise ValueError(f"{where}.unknown_class {table.unknown_class!r} is not one of its classes")
    if not 0 <= table.low < table.high < 1:
        raise ValueError(f"{where}.range: needs 0 ≤ low < high < 1, got {table.low:g} and {table.high:g}")
    return table


def _check_share(share: float, name: str) -> None:
    if not 0 <= share < 1:
        raise ValueError(f"{name} {share:g}: give the share of TDP drawn whatever the load, from 0 to below 1 "
                         "(e.g. 0.3 or 30%)")


def match_cpu(model_name: str | None, table: tuple[TdpEntry, ...]) -> TdpEntry | None:
    if not model_name:
        return None
    return next((entry for entry in table if entry.pattern.search(model_name)), None)


def class_of(model_name: str | None, static: StaticPowerTable) -> tuple[CpuClass, bool]:
    """(the class of a CPU not in the table, recognised by its name?); unrecognised: the unknown_class."""
    for cpu_class in static.classes.values():
        if model_name and cpu_class.pattern is not None and cpu_class.pattern.search(model_name):
            return cpu_class, True
    return static.classes[static.unknown_class], False


def read_cpuinfo(path: str | Path = DEFAULT_CPUINFO) -> tuple[str | None, bool]:
    """(model name of the first processor, whether the "hypervisor" flag says we are in a VM)."""
    model_name, in_vm = None, False
    try:
        text = Path(path).read_text()
    except OSError:
        return None, False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model_name is None:
            model_name = value.strip()
        elif key == "flags" and "hypervisor" in value.split():
            in_vm = True
    return model_name, in_vm


def choose_power_model(model_name: str | None, table: tuple[TdpEntry, ...], visible_cpus: int,
                       cpu_tdp_w: float | None = None, cpu_threads: int | None = None,
                       static: StaticPowerTable | None = None,
                       cpu_static_share: float | None = None) -> CpuPowerModel:
    """User TDP beats the table, the table beats the generic default; threads likewise. The static share:
    the user's, else the entry's own, else its class's (a CPU not in the table: the class its name shows)."""
    entry = match_cpu(model_name, table)
    share, share_origin, share_source = _static_share(model_name, entry, static, cpu_static_share)
    if cpu_tdp_w is not None:
        if cpu_tdp_w <= 0:
            raise ValueError(f"--cpu-tdp must be positive watts, got {cpu_tdp_w}")
        if cpu_threads:
            threads, threads_origin = cpu_threads, "threads given"
        elif entry is not None:
            threads, threads_origin = entry.threads, f"threads of {entry.name} from {TABLE_LABEL}"
        else:
            threads, threads_origin = visible_cpus, f"assuming the {visible_cpus} visible CPUs are the whole processor"
        return CpuPowerModel(cpu_tdp_w, threads, f"user-given --cpu-tdp; {threads_origin}", share, share_origin,
                             share_source)
    if entry is not None:
        return CpuPowerModel(entry.tdp_w, cpu_threads or entry.threads, f"{entry.name}, {TABLE_LABEL}", share,
                             share_origin, share_source)
    threads = cpu_threads or visible_cpus
    return CpuPowerModel(
        GENERIC_WATTS_PER_THREAD * threads, threads,
        f"generic default {GENERIC_WATTS_PER_THREAD:g} W per hardware thread; "
        f"{model_name or 'this CPU'!r} is not in {TABLE_LABEL} and no --cpu-tdp was given",
        share, share_origin, share_source,
    )


def _static_share(model_name: str | None, entry: TdpEntry | None, static: StaticPowerTable | None,
                  user_share: float | None) -> tuple[float, str, str]:
    """(share, where it came from, the source behind it)."""
    if user_share is not None:
        _check_share(user_share, "--cpu-static-share")
        return user_share, "user-given --cpu-static-share", ""
    static = static or load_static_power()
    if entry is not None and entry.static_share is not None:
        return entry.static_share, f"{entry.name}'s own, {TABLE_LABEL}", entry.static_source
    if entry is not None:
        cpu_class, known = static.classes[entry.cpu_class], True
    else:
        cpu_class, known = class_of(model_name, static)
    guess = "" if known else " (assumed: its name shows no class)"
    return cpu_class.share, f"{cpu_class.name} class{guess}, {TABLE_LABEL}", cpu_class.source


def parse_cpu_times(proc_stat: bytes) -> tuple[int, int]:
    """(busy, total) jiffies from the aggregate "cpu" line of /proc/stat.

    busy = user + nice + system + irq + softirq; total adds idle, iowait and
    steal (time the hypervisor ran something else: not our power). guest and
    guest_nice are already inside user and nice, so they are not added again.
    """
    fields = proc_stat.split(b"\n", 1)[0].split()
    if not fields or fields[0] != b"cpu":
        raise ValueError(f"/proc/stat does not start with the aggregate cpu line: {proc_stat[:80]!r}")
    user, nice, system, idle, iowait, irq, softirq = (int(v) for v in fields[1:8])
    steal = int(fields[8]) if len(fields) > 8 else 0
    busy = user + nice + system + irq + softirq
    return busy, busy + idle + iowait + steal


def count_visible_cpus(proc_stat: bytes) -> int:
    return sum(1 for line in proc_stat.splitlines() if re.match(rb"cpu\d+ ", line))


@dataclass(frozen=True)
class EstimateParameters:
    """What the advisor needs of an estimate that produced stored figures (parse_method)."""

    static_share: float
    watts_per_thread: float  # TDP / hardware threads
    visible_cpus: int | None  # None: not recorded (estimates written before static power was modelled)


def describe_method(model: CpuPowerModel, visible_cpus: int) -> str:
    """The source's `method`: the model and its numbers in one line. parse_method reads it back: change both."""
    share = f"{model.static_share * 100:g}%"
    rest = f"{(1 - model.static_share) * 100:g}%"
    visible = f" × {visible_cpus}/{model.threads} CPUs visible" if visible_cpus != model.threads else ""
    return (f"estimated: {model.static_w(visible_cpus):.3g} W static ({share} of {model.tdp_w:g} W TDP{visible}) "
            f"+ CPU utilisation × {model.dynamic_w_per_thread:.3g} W per busy thread (the other {rest} / "
            f"{model.threads} threads); TDP: {model.origin}; static share: {model.share_origin}; "
            "energy: the model over the busy share of the clock ticks between readings at each window's edges")


_METHOD = re.compile(r"estimated: \S+ W static \((?P<share>[\d.]+)% of (?P<tdp>[\d.e+]+) W TDP"
                     r"(?: × (?P<visible>\d+)/\d+ CPUs visible)?\) \+ CPU utilisation × \S+ W per busy thread "
                     r"\(the other [\d.]+% / (?P<threads>\d+) threads\)")
_METHOD_WITHOUT_STATIC = re.compile(r"estimated: CPU utilisation × (?P<tdp>[\d.e+]+) W / (?P<threads>\d+) threads")


def parse_method(method: str | None) -> EstimateParameters | None:
    """The estimate's numbers from a stored method line (any line of a multi-source method), or None if it has
    no CPU estimate. Lines written before static power was modelled read as a static share of 0."""
    text = method or ""
    found = _METHOD.search(text)
    if found:
        threads = int(found["threads"])
        return EstimateParameters(float(found["share"]) / 100, float(found["tdp"]) / threads,
                                  int(found["visible"]) if found["visible"] else threads)
    found = _METHOD_WITHOUT_STATIC.search(text)
    if found:
        return EstimateParameters(0.0, float(found["tdp"]) / int(found["threads"]), None)
    return None


class CpuEstimateSource:
    """CPU power estimated from utilisation: static + busy threads × dynamic per thread (device "cpu")."""

    name = "cpu-estimate"
    devices = ("cpu",)
    source = ESTIMATED

    def __init__(self, proc_stat_path: str, model: CpuPowerModel, visible_cpus: int, in_vm: bool,
                 poll_interval_s: float = CHART_INTERVAL_S):
        self.proc_stat_path = proc_stat_path
        self.poll_interval_s = poll_interval_s
        self.model = model
        self.visible_cpus = visible_cpus
        self.update_period_s = 1.0 / os.sysconf("SC_CLK_TCK")  # /proc/stat counts in clock ticks
        self._fd = os.open(proc_stat_path, os.O_RDONLY)
        self._lock = threading.Lock()  # the sampler's thread and the runner's (read_edge) both read
        self._last_ns = time.monotonic_ns()
        self._last_busy, self._last_total = parse_cpu_times(os.pread(self._fd, _READ_BYTES, 0))
        self._energy_j = 0.0
        self._last_power_w: float | None = None
        self._static_w = model.static_w(visible_cpus)
        self._watts_per_busy_cpu = model.dynamic_w_per_thread
        self.method = describe_method(model, visible_cpus)
        self.assumption = "; ".join(self._notes(in_vm))

    def _notes(self, in_vm: bool) -> list[str]:
        model, visible = self.model, self.visible_cpus
        notes = [f"power = {self._static_w:.3g} W static + (busy share of the {visible} visible CPUs) × {visible} × "
                 f"{model.dynamic_w_per_thread:.3g} W per busy thread; the static part is drawn whatever runs, so "
                 f"idle power is {self._static_w:.3g} W and net energy (gross − idle) leaves it out",
                 f"static share {model.static_share * 100:g}% of TDP, {model.share_origin}"
                 + (f": {model.share_source}" if model.share_source else "")]
        if model.origin.startswith("generic default"):
            notes.append(f"{model.origin}; pass --cpu-tdp or add the CPU to {TABLE_LABEL} for a better estimate")
        if in_vm:
            notes.append("running in a virtual machine: utilisation is of this VM's vCPUs only, "
                         "host power is unknowable from inside")
        return notes

    @classmethod
    def probe(cls, *, proc_stat: str = DEFAULT_PROC_STAT, cpuinfo: str = DEFAULT_CPUINFO,
              cpu_tdp_w: float | None = None, cpu_threads: int | None = None,
              tdp_table: str | Path | None = None, cpu_static_share: float | None = None,
              poll_interval_s: float = CHART_INTERVAL_S) -> "CpuEstimateSource | Unavailable":
        """Open the estimate; an unreadable /proc/stat or a bad table gives Unavailable.

        poll_interval_s: the periodic readings' interval, on their own thread (0: every sampler tick). The
        meter reads the estimate at every window's edge as well (read_edge), so the energy does not depend on it.
        """
        try:
            snapshot = Path(proc_stat).read_bytes()
            parse_cpu_times(snapshot)
            visible_cpus = count_visible_cpus(snapshot) or os.cpu_count() or 1
            model_name, in_vm = read_cpuinfo(cpuinfo)
            model = choose_power_model(model_name, load_tdp_table(tdp_table), visible_cpus, cpu_tdp_w, cpu_threads,
                                       load_static_power(tdp_table), cpu_static_share)
            return cls(proc_stat, model, visible_cpus, in_vm, poll_interval_s)
        except (OSError, ValueError) as error:
            return Unavailable("cpu-estimate", str(error),
                               "check --cpu-tdp, --cpu-static-share and config/cpu_tdp.yaml")

    def read(self, t_ns: int) -> list[Sample]:
        """The last interval's power, and the estimated energy since the source opened: each interval between
        readings (by either thread) at the power its own clock ticks show."""
        with self._lock:  # readings in lock order: sample times and energy never go backwards
            busy, total = parse_cpu_times(os.pread(self._fd, _READ_BYTES, 0))
            t_ns = max(t_ns, self._last_ns)
            busy_delta, total_delta = busy - self._last_busy, total - self._last_total
            if total_delta > 0:
                self._last_busy, self._last_total = busy, total
                busy_cpus = min(max(busy_delta / total_delta, 0.0), 1.0) * self.visible_cpus
                self._last_power_w = self._static_w + busy_cpus * self._watts_per_busy_cpu
            elif self._last_power_w is None:
                return []  # no clock tick since opening: nothing to say yet
            # No tick since the last read: the last interval's power still stands.
            self._energy_j += self._last_power_w * (t_ns - self._last_ns) / 1e9
            self._last_ns = t_ns
            return [Sample(t_ns, "cpu", ESTIMATED, self._last_power_w, self._energy_j)]

    def read_edge(self, t_ns: int) -> list[Sample]:
        """A reading at a window's edge, from the runner's thread (EdgeSource)."""
        return self.read(t_ns)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
