"""Shared pieces of the benchmarks: message texts, percentiles, machine facts, and
server subprocesses whose listening port is read from their stdout."""

from __future__ import annotations

import json
import os
import platform
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent

# --- realistic customer messages ----------------------------------------------------------

# What visitors of a Vietnamese shop's webchat write: questions, order numbers, addresses,
# complaints. Messages are assembled from these to a target length.
VI_SENTENCES: tuple[str, ...] = (
    "Chào shop ạ.",
    "Cho mình hỏi chút ạ.",
    "Shop ơi, đơn hàng của mình đến đâu rồi?",
    "Mã đơn của em là DH{n}.",
    "Em đặt hôm thứ Hai mà đến giờ vẫn chưa nhận được hàng.",
    "Áo thun size M còn màu xanh navy không shop?",
    "Mình muốn đổi sang size L được không ạ?",
    "Giao hàng về Quận 7, TP. Hồ Chí Minh mất mấy ngày vậy?",
    "Phí vận chuyển ra Hà Nội là bao nhiêu ạ?",
    "Sản phẩm này có bảo hành không, bảo hành bao lâu?",
    "Em cần xuất hóa đơn VAT cho công ty.",
    "Số điện thoại của em là 090{n}.",
    "Địa chỉ: số {n} đường Nguyễn Thị Minh Khai, phường Đa Kao, Quận 1.",
    "Hàng nhận được bị móp hộp, bên trong có một chiếc cốc bị vỡ.",
    "Mình đã chuyển khoản rồi nhưng trạng thái đơn vẫn là chờ thanh toán.",
    "Có được kiểm tra hàng trước khi thanh toán không ạ?",
    "Cảm ơn shop nhiều nhé!",
    "Khi nào có đợt giảm giá tiếp theo vậy shop?",
    "Mã giảm giá GIAM{n} của mình không dùng được.",
    "Shop có cửa hàng ở Đà Nẵng không?",
    "Nồi chiên không dầu loại 5 lít còn hàng không ạ?",
    "Em muốn hủy đơn vì đặt nhầm địa chỉ.",
    "Làm ơn gọi lại cho em sau 5 giờ chiều nhé.",
    "Sao tin nhắn trước của em chưa ai trả lời vậy?",
    "Mình ở xa, thanh toán bằng ví MoMo được không?",
    "Hướng dẫn sử dụng bằng tiếng Việt có kèm theo không?",
    "Đơn hàng giao thiếu một món, nhờ shop kiểm tra giúp.",
    "Ưu đãi mua hai tặng một còn áp dụng đến cuối tháng không?",
)


def vi_text(rng: random.Random, min_len: int = 20, max_len: int = 300) -> str:
    """A Vietnamese customer message of min_len..max_len characters (log-uniform lengths:
    most chat messages are short, some are long)."""
    target = int(min_len * (max_len / min_len) ** rng.random())
    parts: list[str] = []
    length = 0
    while length < target:
        sentence = rng.choice(VI_SENTENCES).replace("{n}", str(rng.randint(1000, 99999)))
        parts.append(sentence)
        length += len(sentence) + 1
    text = " ".join(parts)
    if len(text) > max_len:
        text = text[:max_len].rstrip()
    return text


# --- statistics ----------------------------------------------------------------------------


def percentiles(
    samples_ns: Sequence[int], points: Sequence[float] = (50, 90, 99)
) -> dict[str, Any]:
    """Nearest-rank percentiles of all samples, in milliseconds."""
    if not samples_ns:
        return {"n": 0, **{f"p{p:g}": None for p in points}, "max": None, "mean": None}
    data = sorted(samples_ns)
    n = len(data)
    out: dict[str, Any] = {"n": n}
    for p in points:
        rank = max(1, min(n, -(-int(p * n) // 100)))  # ceil(p/100 * n)
        out[f"p{p:g}"] = round(data[rank - 1] / 1e6, 3)
    out["max"] = round(data[-1] / 1e6, 3)
    out["mean"] = round(sum(data) / n / 1e6, 3)
    return out


def fmt_ms(value: float | None) -> str:
    """Milliseconds for a report; "-" when there were no samples."""
    return "-" if value is None else f"{value:.1f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --- machine facts --------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fs_type(path: Path) -> str:
    """Filesystem type of the mount holding ``path`` (tmpfs makes fsync free)."""
    best, kind = "", "unknown"
    target = str(path.resolve())
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) < 3:
                continue
            mount = fields[1]
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best):
                best, kind = mount, fields[2]
    except OSError:
        pass
    return kind


def machine_facts() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        import aiohttp

        aiohttp_version = aiohttp.__version__
    except ImportError:
        aiohttp_version = "missing"
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "platform": platform.platform(),
        "aiohttp": aiohttp_version,
        "sqlite": sqlite3.sqlite_version,
        "revision": git_revision(),
    }


def git_revision() -> str:
    """The commit measured, marked when tracked files differ from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads), from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float | None:
    """CPU time spent by the whole machine, every process and the kernel, since boot
    (from /proc/stat: all but idle and iowait; steal counts, as the cores were taken)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def parent_pid(pid: int) -> int | None:
    """The parent of a process on this machine (a PostgreSQL backend's: its postmaster)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def process_tree_cpu_seconds(pid: int) -> float | None:
    """CPU time of a process and all its descendants (a postmaster and its backends), from
    /proc: user + system time of each live one, plus the time of the children they have
    already reaped (cutime, cstime), so that a backend that exits is still counted."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended meanwhile; its parent's cutime has it
        fields = stat[stat.rindex(")") + 2 :].split()
        child = int(entry.name)
        children.setdefault(int(fields[1]), []).append(child)  # ppid
        ticks[child] = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    if pid not in ticks:
        return None
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += ticks.get(current, 0)
        todo.extend(children.get(current, ()))
    return total / os.sysconf("SC_CLK_TCK")


# --- server subprocesses ---------------------------------------------------------------------


class ServerProcess:
    """A server started as a subprocess; its port is parsed from a line on stdout."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        port_pattern: str,
        env: dict[str, str] | None = None,
        stderr_path: Path | None = None,
        cwd: Path = REPO,
    ) -> None:
        self.name = name
        self.argv = argv
        self.port_pattern = re.compile(port_pattern)
        self.env = env
        self.stderr_path = stderr_path
        self.cwd = cwd
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self._stdout_lines: list[str] = []

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> int:
        if self.stderr_path is not None:
            self._stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr if self._stderr is not None else subprocess.DEVNULL,
            text=True,
        )
        found = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self._stdout_lines.append(line.rstrip("\n"))
                if not self.port:
                    match = self.port_pattern.search(line)
                    if match:
                        self.port = int(match.group(1))
                        found.set()
            found.set()  # stdout closed: the process ended

        threading.Thread(target=pump, name=f"{self.name}-stdout", daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.1):
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not report a port within {timeout:.0f}s")
        if not self.port:
            self.stop()
            raise RuntimeError(f"{self.name} exited before listening; {self.diagnostics()}")
        return self.port

    def diagnostics(self) -> str:
        tail = ""
        if self.stderr_path is not None and self.stderr_path.exists():
            tail = "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-20:])
        out = "\n".join(self._stdout_lines[-10:])
        return f"stdout:\n{out}\nstderr ({self.stderr_path}):\n{tail}"

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"{self.name} ignored SIGTERM for {timeout:.0f}s; killing", file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        return self.proc.returncode


def gateway_server(
    name: str, python: str, config: Path, data_dir: Path, admin_token: str, stderr_path: Path
) -> ServerProcess:
    """``omnigw serve`` with ``config`` on a free port of 127.0.0.1 (not started yet)."""
    return ServerProcess(
        name,
        [
            python,
            "-m",
            "gateway",
            "serve",
            "--config",
            str(config),
            "--data-dir",
            str(data_dir),
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--log-level",
            "warning",
        ],
        port_pattern=r"listening on http://[^:]+:(\d+)",
        env=clean_env(OMNIGW_ADMIN_TOKEN=admin_token),
        stderr_path=stderr_path,
    )


def run_role(
    python: str, script: Path, role: str, spec: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """Run ``script --role ROLE --spec JSON`` in its own process (a load generator, so the
    load does not run inside what it measures); its answer is the last JSON line it prints."""
    proc = subprocess.run(
        [python, str(script), "--role", role, "--spec", json.dumps(spec)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{script.name} --role {role} failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without OMNIGW_* settings (they would override the config)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIGW_")}
    env.update(extra)
    return env


def serve_until_signalled(app: Any, host: str, label: str) -> None:
    """Run an aiohttp application on a free port of ``host`` until SIGINT or SIGTERM,
    printing "<label> listening on http://host:port" once it is up."""
    import asyncio

    from aiohttp import web

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"{label} listening on http://{host}:{port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(serve())


def open_work_dir(work_dir: Path | None, prefix: str, facts: dict[str, Any]) -> Path | None:
    """The benchmark's work folder: ``work_dir`` (which must be empty) or a new temporary
    one; prints where it is and its filesystem. None when ``work_dir`` is not empty."""
    import tempfile

    work = work_dir or Path(tempfile.mkdtemp(prefix=prefix))
    if work_dir is not None:
        if work.exists() and any(work.iterdir()):
            print(f"--work-dir {work} is not empty", file=sys.stderr)
            return None
        work.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {facts['cpu_count']} CPUs, Python {facts['python']}; work dir {work} "
        f"({fs_type(work)})",
        file=sys.stderr,
        flush=True,
    )
    return work
