"""Where a submission runs in class grading: a throwaway folder of its own, contained as far as the OS allows.

A submission is untrusted code. `Sandbox` gives each one, before its grading process starts:

    course/     a fresh copy of the course's code (graders, tests, reference, given code), read-only: the only course
                the process has on its path, so damage to it ends with this submission
    home/, tmp/ its HOME and TMPDIR; the process's working folder is the sandbox itself
    the submission, copied in: the class folder is not needed, and is hidden where the OS allows

and `Sandbox.command` starts the grading command through this module (`python -m graders.sandbox --enter ...`), which
takes these measures in a fresh, single-threaded process and then becomes the command (`os.execve`):

    limits      address space, file size, processes and CPU time (`resource.setrlimit`; Linux and macOS)
    network     none: a network namespace of its own with no interfaces (Linux, as root or with user namespaces)
    hidden      the class folder, the output folder and the instructor's home covered by empty folders (Linux, same)
    user        as root, a user id of its own (from UID_BASE up) that owns only its sandbox: it can neither write
                the course nor read another submission or a private file (Linux and macOS, as root)

What could not be had is said in `Containment` (printed by grade-class and written to the JSON table). We write this
ourselves because the containers that do it fully (bubblewrap, nsjail, docker) are one more thing an instructor has
to install and run as root; the standard library's `resource`, `os.setuid` and two libc calls cover the rest.
"""

import ctypes
import ctypes.util
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from graders import REPO_ROOT

# What the grading process needs of the course: the packages on its path and pytest's configuration.
COURSE_PARTS = ("graders", "tests", "solutions", "exercises", "utils", "ddpm_course", "pyproject.toml", "conftest.py")
UID_BASE = 61_000  # as root, each submission runs as a user id of its own from here up (no account needed)
KEPT_ENV = ("PATH", "LANG", "LC_ALL", "DDPM_TIME_LIMIT_SCALE", "OMP_NUM_THREADS", "DDPM_DATA_DIR", "DDPM_DEBIAN_DIR")

_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC, _MS_PRIVATE = 2, 4, 0x1000, 0x4000, 1 << 18


@dataclass(frozen=True)
class Limits:
    """What one submission's process may use. The wall-clock limit is grade-class's --timeout."""

    memory_gb: float = 8.0  # address space: torch needs about 1 GB of it to start
    file_mb: float = 256.0  # the largest file it may write
    processes: int = 256  # processes and threads of its user (torch starts a thread per core)
    cpu_seconds: int = 3600  # CPU time, a backstop for a process that escapes the wall-clock limit


@dataclass
class Containment:
    """Which of the measures this machine allowed; each False comes with the reason in `notes`."""

    own_user: bool = False
    no_network: bool = False
    hidden_folders: bool = False
    limits: bool = False
    process_limit: bool = False  # root ignores RLIMIT_NPROC: it holds for a user of its own, or when not root
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        have = [name.replace("_", " ") for name, on in asdict(self).items() if on is True]
        text = f"containment: {', '.join(have) or 'a separate process only'}"
        return text + "".join(f"; {note}" for note in self.notes)


def _libc():
    path = ctypes.util.find_library("c")
    return ctypes.CDLL(path, use_errno=True) if path else None


def probe(hidden: tuple[Path, ...], reveal: tuple[Path, ...], limits: Limits) -> tuple[Containment, dict]:
    """How far the launcher can contain a submission on this machine, found by trying: the strongest settings under
    which a contained Python still starts and imports torch. Returns what was had and the settings to use."""
    import subprocess

    found = Containment()
    is_root = os.name == "posix" and os.geteuid() == 0
    try:
        import resource  # noqa: F401  (POSIX only)

        found.limits = True
    except ImportError:
        found.notes.append("no resource limits on this OS (Windows)")
    if not is_root:
        found.notes.append("not root: runs as the instructor's user, so only file modes protect the instructor's files")
    if sys.platform != "linux":
        found.notes.append("no network or folder isolation outside Linux")
    tries = [(isolate, uid) for isolate in (True, False) for uid in ((UID_BASE - 1,) if is_root else ()) + (None,)]
    for isolate, uid in tries:
        if isolate and sys.platform != "linux":
            continue
        with tempfile.TemporaryDirectory() as folder:
            os.chmod(folder, 0o755)
            seen = [*reveal, *([Path(folder)] if any(h in Path(folder).parents for h in hidden) else [])]
            settings = {"hidden": [str(p) for p in hidden], "reveal": [str(p) for p in seen]}
            settings |= {"limits": asdict(limits), "uid": uid, "isolate": isolate}
            launcher = [sys.executable, "-m", "graders.sandbox", "--enter", json.dumps(settings), "--"]
            result = subprocess.run(
                [*launcher, sys.executable, "-c", "import torch"],
                env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO_ROOT), "HOME": folder},
                cwd=folder,
                capture_output=True,
                text=True,
            )
        if result.returncode == 0:
            found.no_network = found.hidden_folders = isolate
            found.own_user = uid is not None
            found.process_limit = found.limits and (found.own_user or not is_root)
            return found, {"isolate": isolate, "own_user": uid is not None}
        found.notes.append(
            f"{'namespaces' if isolate else 'limits'}{' with an own user' if uid is not None else ''} refused here: "
            f"{(result.stderr.strip().splitlines() or ['no message'])[-1][:160]}"
        )
    return found, {"isolate": False, "own_user": False}


def _isolate(hidden: tuple[Path, ...], reveal: tuple[Path, ...]) -> None:
    """In the calling process: a network namespace with no interfaces, and a mount namespace in which each of
    `hidden` is covered by an empty folder, except the `reveal` paths inside them (the Python that runs, the
    sandbox), mounted back where they were. As root directly; otherwise inside a user namespace that maps the
    caller's own ids. Raises OSError where the kernel refuses."""
    libc = _libc()
    if libc is None or sys.platform != "linux":
        raise OSError("namespaces need Linux")
    uid, gid = os.getuid(), os.getgid()
    flags = _CLONE_NEWNET | _CLONE_NEWNS | (0 if uid == 0 else _CLONE_NEWUSER)

    def check(result: int, what: str) -> None:
        if result != 0:
            raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")

    check(libc.unshare(flags), "unshare")
    if uid != 0:  # map our own ids, so that files keep their owner
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "private mounts")
    handles = [(os.open(path, os.O_PATH | os.O_DIRECTORY), path) for path in reveal]  # the originals, kept before
    for path in hidden:  # their parents are covered
        check(libc.mount(b"tmpfs", bytes(path), b"tmpfs", _MS_NOSUID | _MS_NODEV, b"size=1m,mode=755"), f"hide {path}")
    for handle, path in handles:
        path.mkdir(parents=True, exist_ok=True)
        check(libc.mount(f"/proc/self/fd/{handle}".encode(), bytes(path), None, _MS_BIND | _MS_REC, None), f"{path}")
        os.close(handle)


@dataclass(frozen=True)
class Policy:
    """How every submission of a class is contained: the limits, the folders to hide and the paths inside them to
    keep, and what `probe` found this machine allows."""

    limits: Limits = Limits()
    hidden: tuple[Path, ...] = ()
    reveal: tuple[Path, ...] = ()
    isolate: bool = False
    own_user: bool = False

    @classmethod
    def for_class(cls, *hide: Path, limits: Limits | None = None) -> tuple["Policy", Containment]:
        """The strongest policy this machine allows, hiding the folders `hide` (see `hidden_folders`)."""
        limits = limits or Limits()
        hidden, reveal = hidden_folders(*hide)
        containment, allowed = probe(hidden, reveal, limits)
        return cls(limits, hidden, reveal, **allowed), containment


class Sandbox:
    """One submission's throwaway folder (see the module's docstring); remove it with `close` (or use `with`)."""

    def __init__(self, submission: Path, number: int, policy: Policy):
        self.policy = policy
        self.root = Path(tempfile.mkdtemp(prefix="grade-"))
        self.course = copy_course(self.root / "course")
        for folder in ("home", "tmp", "submission"):
            (self.root / folder).mkdir()
        self.submission = self.root / "submission" / submission.name
        shutil.copy2(submission, self.submission)
        self.home = self.root / "home"  # also its working folder
        # Ids apart for each grading process, so that two classes graded at once never share one.
        self.uid = UID_BASE + 1024 * (os.getpid() % 4096) + number % 1024 if policy.own_user else None
        _read_only(self.course)
        if self.uid is not None:  # its own user owns its folders, not the course copy
            for path in [self.submission, *(self.root / f for f in ("home", "tmp", "submission"))]:
                os.chown(path, self.uid, self.uid)
            os.chown(self.root, self.uid, self.uid)  # no other user may look in
        os.chmod(self.root, 0o700)

    def environment(self) -> dict[str, str]:
        """A clean environment: the course copy first on the path, HOME and TMPDIR in the sandbox, no secrets."""
        env = {name: os.environ[name] for name in KEPT_ENV if name in os.environ}
        home, tmp = str(self.root / "home"), str(self.root / "tmp")
        return {**env, "PYTHONPATH": str(self.course), "HOME": home, "TMPDIR": tmp, "MPLCONFIGDIR": tmp}

    def command(self, command: list[str]) -> list[str]:
        """`command` run through the launcher that isolates, limits and drops to the sandbox's user first."""
        policy = self.policy
        reveal = [*policy.reveal, *([self.root] if any(h in self.root.parents for h in policy.hidden) else [])]
        settings = {"hidden": [str(p) for p in policy.hidden], "reveal": [str(p) for p in reveal]}
        settings |= {"limits": asdict(policy.limits), "uid": self.uid}
        settings["isolate"] = policy.isolate
        return [sys.executable, "-m", "graders.sandbox", "--enter", json.dumps(settings), "--", *command]

    def kill_leftovers(self) -> None:
        """Kill every process still running as the sandbox's user (one that left its process group)."""
        if self.uid is None or sys.platform != "linux":
            return
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and entry.stat().st_uid == self.uid:
                    os.kill(int(entry.name), 9)
            except (ProcessLookupError, PermissionError, FileNotFoundError):
                continue

    def close(self) -> None:
        self.kill_leftovers()
        for path in [self.root, *self.root.rglob("*")]:  # give back write permission so that the tree can go
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o700)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def hidden_folders(*candidates: Path) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """The candidates to hide from a submission (every existing folder but the root and those inside the Python it
    runs), and the paths inside them to keep visible: the Python (its prefix and base prefix). A sandbox also keeps
    its own folder visible (`Sandbox.command`)."""
    python = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix)} | {Path(sys.executable).resolve().parents[1]}
    # A folder on the way to the Python that other users cannot enter (a root-only home holding pyenv) is hidden
    # too: covering it with a folder anyone may enter, with the Python mounted back inside, lets a dropped user run.
    private = {a for p in python for a in p.parents if a != Path("/") and not a.stat().st_mode & 0o001}
    hidden = []
    for folder in {c.resolve() for c in candidates} | private:
        if folder.is_dir() and folder != Path("/") and not any(folder == p or p in folder.parents for p in python):
            hidden.append(folder)
    hidden = [h for h in hidden if not any(other in h.parents for other in hidden)]  # the outermost of nested ones
    reveal = sorted({p for p in python for h in hidden if h in p.parents})
    return tuple(sorted(hidden)), tuple(reveal)


def enter(settings: dict) -> None:
    """In the launcher: isolate (network, hidden folders), set the limits, and drop to the sandbox's user."""
    uid = settings["uid"]
    if settings["isolate"]:
        _isolate(*(tuple(Path(p) for p in settings[key]) for key in ("hidden", "reveal")))
    try:
        import resource
    except ImportError:  # Windows: a separate process and a clean environment are all there is
        return
    limits = Limits(**settings["limits"])
    for kind, value in (
        (resource.RLIMIT_AS, int(limits.memory_gb * 2**30)),
        (resource.RLIMIT_FSIZE, int(limits.file_mb * 2**20)),
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, limits.processes + (0 if uid is not None else _processes_of(os.getuid()))),
    ):
        resource.setrlimit(kind, (value, value))
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)


def main(argv: list[str]) -> None:
    """`python -m graders.sandbox --enter SETTINGS -- COMMAND...`: COMMAND, contained as SETTINGS say."""
    if len(argv) < 4 or argv[0] != "--enter" or argv[2] != "--":
        sys.exit("usage: python -m graders.sandbox --enter SETTINGS_JSON -- COMMAND...")
    enter(json.loads(argv[1]))
    libc = _libc() if sys.platform == "linux" else None
    if libc is not None:  # PR_SET_PDEATHSIG, after the change of user (which clears it): when the process that
        libc.prctl(1, 9)  # started this one (a judge) ends, killed at its time limit too, this one goes with it
    if os.name == "nt":  # Windows has no exec that keeps the process: run the command and pass its exit code on
        import subprocess

        sys.exit(subprocess.call(argv[3:]))
    os.execve(argv[3], argv[3:], os.environ)


def copy_course(destination: Path) -> Path:
    """A copy of the course's code (COURSE_PARTS, without notebooks or caches) at `destination`."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in COURSE_PARTS:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__", "*.ipynb"))
        elif source.is_file():
            shutil.copy2(source, destination / name)
    return destination


def _read_only(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o555 if path.is_dir() else 0o444)


def _processes_of(uid: int) -> int:
    """How many processes and threads `uid` runs now (RLIMIT_NPROC counts them all): 0 where /proc is missing."""
    count = 0
    proc = Path("/proc")
    if not proc.is_dir():
        return 0
    for entry in proc.iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                count += len(list((entry / "task").iterdir()))
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return count


if __name__ == "__main__":
    main(sys.argv[1:])
