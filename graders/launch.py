"""Starting the worker of a judge (graders/remote.py) without torch: the framing of their messages, and the worker's
process. A judge process starts its worker as soon as pytest has read its options (conftest.py), so that the worker's
start (importing torch, loading the submission) overlaps the judge's own instead of following it."""

import contextlib
import json
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import threading

JUDGE_ENV = "DDPM_JUDGE"  # set for a judge by graders/grade_class.py: how to start its worker (JSON)
MAX_MESSAGE = 1 << 31  # 2 GiB: a longer message is refused
OUTPUT_CAP = 64 * 1024  # of the worker's printing, at most this much is kept between two requests


class WorkerDied(RuntimeError):
    """The worker ended (its code exited the process, or it was killed) in the middle of a request."""


def send(sock: socket.socket, data: bytes) -> None:
    sock.sendall(struct.pack("!Q", len(data)) + data)


def receive(sock: socket.socket) -> bytes:
    size = struct.unpack("!Q", _exactly(sock, 8))[0]
    if size > MAX_MESSAGE:
        raise WorkerDied(f"a message of {size:,} bytes, more than the {MAX_MESSAGE:,} allowed")
    return _exactly(sock, size)


def _exactly(sock: socket.socket, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise WorkerDied("the connection closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class WorkerProcess:
    """A worker started with `settings` (the JSON of JUDGE_ENV: command, env, cwd, spec, part) and greeted: it loads
    the submission while the judge goes on; the judge reads the answer to the greeting when it first needs it."""

    def __init__(self, settings: dict):
        where = ["--impl", str(settings["spec"]), "--part", str(settings["part"])]
        if os.name == "nt" or settings.get("loopback"):  # no descriptor to hand down: it connects to the loopback
            listener = socket.create_server(("127.0.0.1", 0))
            listener.settimeout(120)
            self.process = self._spawn(
                [*settings["command"], "--connect", str(listener.getsockname()[1]), *where], settings
            )
            self.sock = listener.accept()[0]
            listener.close()
        else:
            mine, theirs = socket.socketpair()
            command = [*settings["command"], "--fd", str(theirs.fileno()), *where]
            self.process = self._spawn(command, settings, pass_fds=(theirs.fileno(),))
            theirs.close()
            self.sock = mine
        self.output = bytearray()
        threading.Thread(target=self._drain, daemon=True).start()
        send(self.sock, pickle.dumps({"hello": True}))

    @staticmethod
    def _spawn(command: list[str], settings: dict, **options) -> subprocess.Popen:
        return subprocess.Popen(
            command,
            env=settings["env"],
            cwd=settings["cwd"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **options,
        )

    def _drain(self) -> None:
        while chunk := self.process.stdout.read1(1 << 16):
            self.output.extend(chunk)
            if len(self.output) > OUTPUT_CAP:
                del self.output[: len(self.output) - OUTPUT_CAP]

    def take_output(self) -> str:
        text = self.output.decode("utf-8", "replace")
        self.output.clear()
        return text

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.sock.close()
        with contextlib.suppress(ProcessLookupError, PermissionError, AttributeError):  # no killpg on Windows
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.kill()
        self.process.wait()


_STARTED: dict[tuple, WorkerProcess] = {}


def settings() -> dict | None:
    """This judge's settings, or None in any other process."""
    raw = os.environ.get(JUDGE_ENV)
    return json.loads(raw) if raw else None


def start_early() -> None:
    """In a judge: start its worker now (called as pytest starts)."""
    found = settings()
    if found is not None and "spec" in found and (found["spec"], found["part"]) not in _STARTED:
        _STARTED[(found["spec"], found["part"])] = WorkerProcess(found)


def started(spec: str, part: int) -> WorkerProcess | None:
    """The worker started early for `spec` and `part`, handed over once."""
    return _STARTED.pop((spec, int(part)), None)


if __name__ == "__main__":
    sys.exit("graders.launch is used by graders.remote; it has no command of its own")
