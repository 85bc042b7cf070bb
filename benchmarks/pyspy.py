"""py-spy profiles of a server's processes during a measured run (``benchmarks.run --profile DIR``).

py-spy (``pip install py-spy``) samples, 100 times a second, the thread that
holds the GIL in each Python process of the server's tree (``--gil``: Python
CPU time, not threads waiting on I/O) and writes collapsed stacks; a summary
lists where that time goes: the functions on CPU (self) and the frames that
contain the most samples (inclusive), across the workers.
"""
from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass
class Recording:
    """py-spy processes recording one system's server."""

    system: str
    folder: Path
    processes: list[tuple[int, Path, subprocess.Popen[bytes]]]


def start_recording(root_pid: int, folder: Path, system: str, seconds: float) -> Recording | None:
    """Start one ``py-spy record`` per Python process under ``root_pid``; None when py-spy is missing."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        print("   profile skipped: py-spy is not installed (python3 -m pip install py-spy)", flush=True)
        return None
    folder.mkdir(parents=True, exist_ok=True)
    root = psutil.Process(root_pid)
    recording = Recording(system, folder, [])
    for process in [root, *root.children(recursive=True)]:
        try:
            if "python" not in process.name().lower() and "python" not in " ".join(process.cmdline()[:1]).lower():
                continue
        except psutil.Error:
            continue
        output = folder / f"{system}-{process.pid}.txt"
        command = [py_spy, "record", "--pid", str(process.pid), "--duration", str(max(1, int(seconds))),
                   "--rate", "100", "--gil", "--format", "raw", "--output", str(output)]
        recording.processes.append((process.pid, output, subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    return recording


def finish_recording(recording: Recording, top: int = 25) -> str:
    """Wait for the recordings, write ``<system>-summary.txt`` and return that summary."""
    stacks: Counter[str] = Counter()
    for _pid, output, process in recording.processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if output.is_file():
            for line in output.read_text(errors="replace").splitlines():
                stack, _, count = line.rpartition(" ")
                if stack and count.isdigit():
                    stacks[stack] += int(count)
    summary = summarize(stacks, recording.system, top)
    (recording.folder / f"{recording.system}-summary.txt").write_text(summary)
    print(summary, flush=True)
    return summary


def _short(frame: str) -> str:
    # py-spy frames read "function (path/to/file.py:line)"; keep the function and the file's tail.
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, _line = where.rpartition(":")
    tail = "/".join(Path(path).parts[-2:]) if path else where
    return f"{name} ({tail})"


def summarize(stacks: Counter[str], system: str, top: int = 25) -> str:
    """Self and inclusive sample shares of the hottest frames of collapsed stacks."""
    total = sum(stacks.values())
    if total == 0:
        return f"profile {system}: no samples"
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for stack, count in stacks.items():
        frames = [_short(f) for f in stack.split(";") if f]
        if not frames:
            continue
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"profile {system}: {total} samples (100 Hz, all server processes)", "  self (on CPU):"]
    lines += [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    lines.append("  inclusive:")
    lines += [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(lines)
