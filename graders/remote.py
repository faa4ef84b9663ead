"""Grading without running the submission in the process that decides its grade.

In class grading (`ddpm-course grade-class`, `ddpm-course grade --sandbox`) the graders and the report run in a
judge process that never imports the student's file. The file is loaded in a worker process, inside the sandbox
(graders/sandbox.py), and the two talk over one socket:

    judge -> worker   requests: look up a name of the student's module, call something, read an attribute, run a
                      backward pass; with them the judge's tensors and objects (the judge's data is trusted: plain
                      pickle)
    worker -> judge   replies: tensors, numbers, strings, lists, tuples and dicts, decoded with
                      `torch.load(weights_only=True)`, which builds nothing else; every other object of the
                      student's stays in the worker and comes back as a handle

What a grader gets from the student is therefore data or a proxy:

- a function of the student's: `RemoteFunction`, which calls it in the worker;
- a class of the student's: a class made here with the student's name and the student's trusted base (an
  `nn.Module`, `DiffusionModel`, ...), whose instances are made in the worker;
- an `nn.Module` of the student's: a mirror, a module here with the same submodules, parameters and buffers (their
  values copied both ways before and after every call, so that `load_state_dict`, `copy_weights`, `.double()` and the
  optimizer work as on the real thing); its forward and its own methods run in the worker. A result that needs
  gradients comes back through `_Bridge`, an autograd function whose backward asks the worker for the gradients of
  the judge's tensors the call used: `loss.backward()` here fills `.grad` of the judge's parameters as in one process;
- any other object: `RemoteObject`, whose attributes and methods are looked up in the worker.

The judge's objects handed to the student (a grader's fixture model, a schedule, a `RunLog`, a forward hook) get a
twin in the worker: their tensors are synced the same way, so that training in the worker changes the judge's model,
and so are their data attributes (a fixture's record of its calls, a log's history). A function the worker cannot
import by name (a lambda) stays here and is called back. The torch random state, the grad mode, the default dtype
and the thread count travel with each call, so a grader that seeds and then compares draws sees what it would see in
one process.

What the student's code does to its own process (patching torch, the graders or pytest, an `atexit` hook,
`os._exit`) stays there: the worker can only answer requests, and its answers are data. A worker that dies or hangs
is killed and started again for the next step.
"""

import builtins
import collections
import copy
import importlib
import inspect
import io
import itertools
import json
import os
import pickle
import socket
import sys
import types
import weakref
from collections.abc import Callable

import torch
from torch import Tensor, nn

from graders.launch import JUDGE_ENV, WorkerDied, WorkerProcess, receive, send, started  # noqa: F401

# Code whose classes and functions the judge may take as itself when the worker names them: the course and the
# libraries it is built on. A student's module is never one of them.
TRUSTED = ("torch", "utils", "graders", "solutions", "ddpm_course", "builtins", "abc", "math", "einops", "collections")
PLAIN = (int, float, bool, str, bytes, type(None), complex, torch.dtype, torch.device, torch.Size)
DICTS = (dict, collections.defaultdict, collections.OrderedDict)  # sent as plain dicts
# Exceptions that cross as themselves; any other comes back as the nearest of these in its class's MRO.
CROSSING_ERRORS = {
    name: getattr(builtins, name)
    for name in (
        "NotImplementedError RecursionError RuntimeError IndexError KeyError LookupError AttributeError "
        "ZeroDivisionError OverflowError FloatingPointError ArithmeticError TypeError ValueError StopIteration "
        "AssertionError ImportError ModuleNotFoundError NameError UnboundLocalError MemoryError OSError Exception"
    ).split()
}


def _is_trusted(module_name) -> bool:
    return isinstance(module_name, str) and module_name.partition(".")[0] in TRUSTED


def _trusted_object(module_name, qualname):
    """The object `module_name.qualname` of trusted code, or None."""
    if not _is_trusted(module_name) or not isinstance(qualname, str) or "<" in qualname:
        return None
    try:
        obj = importlib.import_module(module_name)
        for part in filter(None, qualname.split(".")):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return obj


def _version(t: Tensor) -> int:
    """How often `t` was written to in place (a tensor made in inference mode keeps no count: then -1)."""
    return -1 if t.is_inference() else t._version


def _stamp(t: Tensor) -> tuple:
    """What changes when a tensor is written to or replaced."""
    return (_version(t), t.untyped_storage().data_ptr(), t.dtype, t.device, tuple(t.shape), t.requires_grad)


def _own_slots(module: nn.Module):
    for name, p in module._parameters.items():
        if p is not None:
            yield "p", name, p
    for name, b in module._buffers.items():
        if b is not None:
            yield "b", name, b


def _tree_walk(module: nn.Module, skip):
    """`module` and its submodules, depth first in registration order, without those `skip` says (nor theirs)."""
    stack, seen = [module], set()
    while stack:
        m = stack.pop()
        if id(m) in seen or (m is not module and skip(m)):
            continue
        seen.add(id(m))
        yield m
        stack.extend(reversed([c for c in m._modules.values() if c is not None]))


def _attributes(obj) -> dict:
    """The public attributes of a module of the judge's that hold data (a fixture's record of its calls, say):
    kept the same on both sides, like its tensors."""
    return {k: v for k, v in vars(obj).items() if not k.startswith("_") and k != "training" and _is_data(v)}


def _is_data(value, depth: int = 0) -> bool:
    if type(value) in PLAIN or isinstance(value, Tensor):
        return True
    if depth < 8 and type(value) in (list, tuple):
        return all(_is_data(v, depth + 1) for v in value)
    if depth < 8 and type(value) in DICTS:
        return all(type(k) in (str, int) and _is_data(v, depth + 1) for k, v in value.items())
    return False


def _update(obj, attributes: dict) -> None:
    """Set data attributes on `obj`, keeping its lists and dicts (a defaultdict stays one) and their identity."""
    for name, new in attributes.items():
        if type(name) is not str or name.startswith("_"):
            continue
        old = obj.__dict__.get(name)
        if isinstance(old, list) and type(new) is list:
            old[:] = new
        elif isinstance(old, dict) and type(new) is dict:
            old.clear()
            old.update(new)
        else:
            obj.__dict__[name] = new


def _fingerprint(value):
    """What changes when data is changed in place or replaced (tensors by identity and version)."""
    if isinstance(value, Tensor):
        return ("t", id(value), _version(value))
    if type(value) in (list, tuple):
        return (type(value).__name__, id(value), tuple(_fingerprint(v) for v in value))
    if type(value) in DICTS:
        return ("d", id(value), tuple((k, _fingerprint(v)) for k, v in value.items()))
    return ("v", type(value).__name__, repr(value))


def _class_name(t: Tensor) -> tuple[str, str] | None:
    kind = type(t)
    return None if kind in (Tensor, nn.Parameter) else (kind.__module__, kind.__qualname__)


def _named_class(name: tuple[str, str]) -> type:
    module, qualname = name
    kind = importlib.import_module(module)
    for part in qualname.split("."):
        kind = getattr(kind, part)
    return kind


def _is_array(value) -> bool:
    return type(value).__name__ == "ndarray" and type(value).__module__ == "numpy"


def _same_array(a, b) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _tensors_in(value, numpy: bool = False) -> list:
    """The tensors (with `numpy`, the numpy arrays) in a nest of lists, tuples and dicts, in order."""
    found = []

    def walk(v):
        if _is_array(v) if numpy else isinstance(v, Tensor):
            found.append(v)
        elif type(v) in (list, tuple):
            for item in v:
                walk(item)
        elif type(v) is dict:
            for item in v.values():
                walk(item)

    walk(value)
    return found


def _replace_tensors(value, replacement: dict):
    if isinstance(value, Tensor):
        return replacement.get(id(value), value)
    if type(value) in (list, tuple):
        return type(value)(_replace_tensors(v, replacement) for v in value)
    if type(value) is dict:
        return {k: _replace_tensors(v, replacement) for k, v in value.items()}
    return value


def _crossing(kind: type) -> str:
    for base in kind.__mro__:
        if base.__module__ == "builtins" and base.__name__ in CROSSING_ERRORS:
            return base.__name__
    return "RuntimeError"


def _error_from(described) -> BaseException:
    """The worker's exception as one of ours, with its name and message, and its frames to show."""
    described = described if isinstance(described, dict) else {}
    base = CROSSING_ERRORS.get(str(described.get("builtin")), RuntimeError)
    name = str(described.get("type", base.__name__))
    kind = base if name == base.__name__ or not name.isidentifier() else type(name, (base,), {})
    error = kind(str(described.get("message", ""))[:4000])
    frames = described.get("frames", [])
    error.remote_frames = [tuple(str(x) for x in f) for f in (frames if isinstance(frames, list) else [])][:50]
    return error


# --------------------------------------------------------------------------------------------------------------------
# The judge's side


class Judge:
    """The connection to one worker, started on first use and again after it dies or a step runs out of time."""

    def __init__(self, settings: dict):
        self.settings = settings  # how to start the worker: command, env, cwd, spec, part
        self.worker: WorkerProcess | None = None
        self.generation = 0
        self.load_error: str | None = None
        self._classes: dict = {}
        self._reset_tables()

    def _reset_tables(self) -> None:
        self.twins: dict[int, Callable] = {}  # number -> (a reference to) the judge's object copied in the worker
        self.twin_of: dict[int, int] = {}  # id(object) -> number
        self.holders: collections.Counter = collections.Counter()  # handle -> proxies alive here
        self.released: list[tuple] = []  # what the worker may forget, told with the next request
        self.callbacks: dict[int, object] = {}  # number -> the judge's object that the worker calls back
        self.callback_of: dict[int, int] = {}
        self.mirrors: dict[int, weakref.ref] = {}  # handle -> the mirror of the worker's module
        self.stamps: dict[tuple, tuple] = {}  # (owner, kind, name) -> stamp when the two sides last agreed
        self.counter = itertools.count()
        self._shared_leaves: list[Tensor] = []

    # -- the worker's life

    def start(self) -> None:
        """Start a worker (or take the one started early for this judge) and read its answer to the greeting."""
        self.stop()
        self._reset_tables()
        self.generation += 1
        settings = self.settings
        self.worker = (started(settings["spec"], settings["part"]) if self.generation == 1 else None) or (
            WorkerProcess(settings)
        )
        kind, value = self._exchange(None)
        self.load_error = str(value) if kind == "load_error" else None

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def alive(self) -> bool:
        return self.worker is not None and self.worker.alive()

    # -- one request

    def request(self, *message, leaves: list | None = None):
        """Send `message`, serve the worker's call-backs until its reply comes, and return the reply's value."""
        if not self.alive():
            self.start()
            if self.load_error:
                raise WorkerDied(self.load_error)
        kind, value = self._exchange(message, leaves)
        if kind == "error":
            raise _error_from(value)
        return value

    def _exchange(self, message, leaves: list | None = None):
        """Send `message` (None: only read the answer to the greeting) and read the reply."""
        sock = self.worker.sock
        try:
            if message is not None:
                send(sock, self.encode(message, leaves))
            while True:
                reply = self.decode(receive(sock))
                if not (isinstance(reply, tuple) and len(reply) == 2 and reply[0] in ("ok", "error", "load_error")):
                    if isinstance(reply, tuple) and len(reply) == 6 and reply[0] == "callback":
                        send(sock, self.encode(self._call_back(*reply[1:])))
                        continue
                    raise WorkerDied("the grading process answered out of turn")
                return reply
        except BaseException as e:  # out of time, or the worker died: it is not in step any more
            code = self.worker.process.poll() if self.worker else None
            self.stop()
            if isinstance(e, (WorkerDied, OSError, EOFError, pickle.UnpicklingError)):
                raise WorkerDied(
                    "your code ended the grading process"
                    + (f" (exit code {code})" if code is not None else "")
                    + " in the middle of this step: a call to exit(), os._exit() or sys.exit(), a crash of the "
                    "interpreter, or more memory or processes than a submission may have"
                ) from None
            raise
        finally:
            if self.worker is not None:
                sys.stdout.write(self.worker.take_output())

    def _call_back(self, number, name, args, kwargs, grad):
        """Call the judge's object `number` (its method `name`) for the worker, in the worker's grad mode."""
        try:
            target = self.callbacks[number]
            if name is not None:
                target = getattr(target, str(name))
            with torch.set_grad_enabled(bool(grad)):
                return ("ok", target(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 - the judge's exception goes back to the student's code as data
            return ("error", {"type": type(e).__name__, "builtin": _crossing(type(e)), "message": str(e)})

    # -- encoding: the judge's data by pickle, with references for tensors, proxies, twins and call-backs

    def encode(self, message, leaves: list | None = None) -> bytes:
        """`message` for the worker. Its tensors that take gradients, but for the shared modules' (already among
        the bridge's inputs), are appended to `leaves`: a result may depend on them (a new twin's parameters)."""
        tensors: list[Tensor] = []
        payload = self._dumps(message, tensors)
        shared = {id(t) for t in self._shared_leaves}
        marked = [i for i, t in enumerate(tensors) if t.requires_grad and id(t) not in shared]
        if leaves is not None:
            leaves.extend(tensors[i] for i in marked)
        released, self.released = self.released, []
        return pickle.dumps(
            {
                "released": released,
                "payload": payload,
                # plain tensors, with the class of any subclass (a grader's test tensor) named to rebuild it
                "tensors": [t.detach().as_subclass(Tensor) for t in tensors],
                "subclass": [_class_name(t) for t in tensors],
                "requires_grad": [t.requires_grad for t in tensors],
                "parameter": [isinstance(t, nn.Parameter) for t in tensors],
                "leaves": marked,
            },
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    def _dumps(self, obj, tensors: list) -> bytes:
        judge = self
        buffer = io.BytesIO()

        class Pickler(pickle.Pickler):
            def persistent_id(self, o):
                return judge._persistent_id(o, tensors)

            def reducer_override(self, o):
                return judge._reduce(o)

        Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
        return buffer.getvalue()

    def _persistent_id(self, o, tensors: list):
        kind = type(o)
        if kind in PLAIN or kind in (list, tuple, dict):
            return None
        if isinstance(o, Tensor):
            tensors.append(o)
            return ("t", len(tensors) - 1)
        if isinstance(o, (Mirror, RemoteObject, RemoteFunction)):
            return ("r", o._handle_for(self))
        if isinstance(o, type) and o.__dict__.get("_remote_class") is not None:
            return ("r", _class_handle_for(o, self))
        if id(o) in self.twin_of:
            return ("j", self.twin_of[id(o)])
        if id(o) in self.callback_of:
            return ("cb", self.callback_of[id(o)])
        if _by_reference(o):
            number = next(self.counter)
            self.callbacks[number], self.callback_of[id(o)] = o, number
            return ("cb", number)
        return None

    def _reduce(self, o):
        """A new object of the judge's gets a twin: pickled as usual, and registered under a number as the worker
        builds it (before its state, so that cycles through it resolve to it)."""
        if isinstance(o, (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
            return NotImplemented
        if type(o) in PLAIN or type(o) in (set, frozenset, range, slice):
            return NotImplemented
        reduced = o.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
        if isinstance(reduced, str):
            return NotImplemented
        number = next(self.counter)
        try:  # when the judge lets go of it, so may the worker
            weakref.finalize(o, self._forget, self.generation, ("j", number), id(o))
            self.twins[number] = weakref.ref(o)
        except TypeError:  # an object that takes no weak reference is kept
            self.twins[number] = lambda o=o: o
        self.twin_of[id(o)] = number
        return (_twin, (number, reduced[0], reduced[1]), *reduced[2:])

    def twin(self, number: int):
        """The judge's object `number`, or None when it is gone."""
        ref = self.twins.get(number)
        return ref() if ref is not None else None

    def hold(self, handle: int, proxy) -> None:
        """`proxy` stands for the worker's object `handle`: the worker keeps it while any such proxy lives here."""
        self.holders[handle] += 1
        weakref.finalize(proxy, self._forget, self.generation, ("h", handle), None)

    def _forget(self, generation: int, item: tuple, ident: int | None) -> None:
        if generation != self.generation:
            return
        if item[0] == "j":
            self.twins.pop(item[1], None)
            self.twin_of.pop(ident, None)
        elif item[0] == "h":
            self.holders[item[1]] -= 1
            if self.holders[item[1]] > 0:
                return
            del self.holders[item[1]]
        self.released.append(item)

    # -- decoding: the worker's data, as weights_only builds it; handles become proxies

    def decode(self, data: bytes):
        return self._build(torch.load(io.BytesIO(data), weights_only=True))

    def _build(self, value):
        if type(value) is dict:
            if "__remote__" in value:
                return self._proxy(value)
            if "__subclass__" in value and isinstance(value.get("value"), Tensor):
                kind = _trusted_object(*value["__subclass__"])
                ok = isinstance(kind, type) and issubclass(kind, Tensor)
                return value["value"].as_subclass(kind) if ok else value["value"]
            if "__numpy__" in value and isinstance(value["__numpy__"], Tensor):
                array = value["__numpy__"].numpy()
                return array[()] if value.get("scalar") else array
            if "__judge__" in value:
                number = value["__judge__"]
                return self.twin(number) if number in self.twins else self.callbacks.get(number)
            return {k: self._build(v) for k, v in value.items()}
        if type(value) is list:
            return [self._build(v) for v in value]
        if type(value) is tuple:
            return tuple(self._build(v) for v in value)
        return value

    def _proxy(self, described: dict):
        handle, kind = described["__remote__"], described.get("kind")
        if kind == "module":
            existing = self.mirrors.get(handle)
            if existing is not None and existing() is not None:
                return existing()
            if "tree" not in described:
                raise WorkerDied("the grading process named a module it never described")
            return self._mirror(described)
        if kind == "class":
            return self._remote_class(described)
        if kind == "callable":
            trusted = _trusted_object(described.get("module"), described.get("qualname"))
            if isinstance(trusted, (types.FunctionType, types.BuiltinFunctionType)):
                return trusted
            proxy = RemoteFunction(self, handle, described)
        else:
            trusted = _trusted_object(described.get("module"), "") if kind == "trusted" else None
            if trusted is not None:
                return trusted
            proxy = RemoteObject(self, handle, described)
        self.hold(handle, proxy)
        return proxy

    def _remote_class(self, described: dict) -> type:
        trusted = _trusted_object(described.get("module"), described.get("qualname"))
        if isinstance(trusted, type):
            return trusted
        key = (self.generation, described["__remote__"])
        if key not in self._classes:
            bases = tuple(b for b in (self._build(b) for b in described.get("bases", [])) if isinstance(b, type))
            names = [n for n in described.get("names", []) if isinstance(n, str) and not _judge_side(n)]
            namespace = {n: _RemoteAttribute(n) for n in names}
            namespace |= {
                "__init__": _no_init,
                "__new__": _make_remotely,
                "__module__": "submission",
                "_remote_class": (self, self.generation, described["__remote__"]),
                "__globals__": _Namespace(self, described["__remote__"]),
                "source_files": tuple(str(f) for f in described.get("files", [])),
                # names only (the worker is not trusted): what the graders' messages call the forward's arguments
                "forward_names": [n for n in described.get("forward_names", []) if isinstance(n, str)][:16],
            }
            self.holders[described["__remote__"]] += 1  # a class is kept for the worker's life
            if described.get("is_module"):
                bases = tuple(b for b in bases if issubclass(b, nn.Module)) or (nn.Module,)
                namespace |= _MIRROR_METHODS
                if not any(issubclass(b, Mirror) for b in bases):
                    bases = (*bases, Mirror)
            else:
                bases = (RemoteObject,)
            self._classes[key] = type(str(described.get("name", "Submitted")), bases, namespace)
        return self._classes[key]

    def _mirror_class(self, cls: type) -> type:
        """A mirror class for a trusted module class (nn.Linear inside a student's network): its forward remote."""
        if issubclass(cls, Mirror):
            return cls
        key = ("trusted", cls)
        if key not in self._classes:
            self._classes[key] = type(cls.__name__, (cls, Mirror), {**_MIRROR_METHODS, "__module__": cls.__module__})
        return self._classes[key]

    def _mirror(self, described: dict) -> "Mirror":
        """A module here for the worker's module `described`: its tree, its parameters and buffers, its classes."""
        modules = {}
        for path, info in described["tree"]:
            if "__judge__" in info:  # a module of the judge's inside the student's
                modules[path] = self.twin(info["__judge__"])
                continue
            existing = self.mirrors.get(info["handle"])
            if existing is not None and existing() is not None:
                modules[path] = existing()
                continue
            cls = self._remote_class(info["class"])
            cls = self._mirror_class(cls if issubclass(cls, nn.Module) else nn.Module)
            mirror = object.__new__(cls)
            nn.Module.__init__(mirror)
            mirror.__dict__["_remote"] = (self, self.generation, info["handle"])
            mirror.training = bool(info["training"])
            tensors = self._build(info.get("tensors", {}))  # its plain tensor attributes, as they were: vars() shows
            mirror.__dict__.update({k: v for k, v in tensors.items() if isinstance(v, Tensor) and k[:1] != "_"})
            self.mirrors[info["handle"]] = weakref.ref(mirror)
            self.hold(info["handle"], mirror)
            modules[path] = mirror
            for kind, name, value, grad in info["slots"]:
                value = self._build(value)
                if kind == "p":
                    mirror._parameters[name] = nn.Parameter(value, requires_grad=bool(grad))
                    self.stamps[(("m", info["handle"]), "p", name)] = _stamp(mirror._parameters[name])
                else:
                    mirror._buffers[name] = value
                    self.stamps[(("m", info["handle"]), "b", name)] = _stamp(value)
        for path, _ in described["tree"]:
            parent, _, name = path.rpartition(".")
            if path and isinstance(modules.get(parent), Mirror):
                modules[parent]._modules[name] = modules[path]
        return modules[""]

    # -- the state of shared modules, before and after a call

    def _shared_modules(self):
        """(key, module) of every module both sides hold: the judge's twins (by position in their trees) and the
        mirrors of the worker's modules (by handle)."""
        for number in list(self.twins):
            obj = self.twin(number)
            if isinstance(obj, nn.Module):
                for position, m in enumerate(_tree_walk(obj, skip=lambda m: isinstance(m, Mirror))):
                    yield ("j", number, position), m
        for handle, ref in list(self.mirrors.items()):
            mirror = ref()
            if mirror is None:
                del self.mirrors[handle]
            else:
                yield ("m", handle), mirror

    def outgoing(self) -> tuple[list, list, list]:
        """What changed here since the worker last saw it; every module's training flag; and the tensors of shared
        modules that take gradients (the bridge's inputs)."""
        changed, training, leaves = [], [], []
        for key, obj in self._shared_data():
            attributes = _attributes(obj)
            if self.stamps.get((key, "attributes")) != _fingerprint(attributes):
                changed.append((key, "a", None, attributes))
                self.stamps[(key, "attributes")] = _fingerprint(attributes)
        for key, module in self._shared_modules():
            training.append((key, module.training))
            for kind, name, t in _own_slots(module):
                stamp = _stamp(t)
                if self.stamps.get((key, kind, name)) != stamp:
                    changed.append((key, kind, name, t))
                    self.stamps[(key, kind, name)] = stamp
                if t.requires_grad:
                    leaves.append((key, kind, name, t))
        return changed, training, leaves

    def _shared_data(self):
        """(key, object) of the judge's objects with a copy in the worker whose data attributes are kept in step."""
        for key, module in self._shared_modules():
            if key[0] == "j":
                yield key, module
        for number in list(self.twins):
            obj = self.twin(number)
            if obj is not None and not isinstance(obj, nn.Module) and hasattr(obj, "__dict__"):
                if not isinstance(obj, type):
                    yield ("o", number), obj

    def incoming(self, changes: list) -> None:
        """Set here what the worker's call changed in shared modules."""
        modules = dict(self._shared_modules()) | dict(self._shared_data())
        with torch.no_grad():
            for key, kind, name, value, grad in changes:
                module = modules.get(tuple(key))
                if module is not None and kind == "c" and (value is None or isinstance(value, nn.Module)):
                    module._modules[str(name)] = value  # the student's code put another module there
                    continue
                if module is not None and kind == "a" and type(value) is dict:
                    _update(module, value)
                    self.stamps[(tuple(key), "attributes")] = _fingerprint(_attributes(module))
                if module is None or not isinstance(value, Tensor):
                    continue
                slots = module._parameters if kind == "p" else module._buffers
                current = slots.get(name)
                if kind == "p" and current is not None:
                    current.data = value
                    if isinstance(grad, Tensor):
                        current.grad = grad
                elif kind == "p":
                    slots[name] = nn.Parameter(value)
                else:
                    slots[name] = value
                self.stamps[(tuple(key), kind, name)] = _stamp(slots[name])

    # -- a call, with the state around it

    def call(self, target: tuple, args: tuple, kwargs: dict):
        changed, training, leaves = self.outgoing()
        context = {
            "rng": torch.random.get_rng_state(),
            "grad": torch.is_grad_enabled(),
            "dtype": torch.get_default_dtype(),
            "threads": torch.get_num_threads(),
        }
        shared = [(key, kind, name) for key, kind, name, _ in leaves]
        self._shared_leaves = [t for *_, t in leaves]
        sent: list[Tensor] = []
        reply = self.request("call", target, args, kwargs, context, changed, training, shared, leaves=sent)
        value, rng, changes, written, bridged = reply
        torch.random.set_rng_state(rng)
        self.incoming(changes)
        arg_tensors = _tensors_in((args, kwargs))
        arrays = _tensors_in((args, kwargs), numpy=True)
        with torch.no_grad():
            for index, new in written:
                if index < 0 and -1 - index < len(arrays) and getattr(new, "shape", None) == arrays[-1 - index].shape:
                    arrays[-1 - index][...] = new  # a numpy array the student's code changed in place
                if 0 <= index < len(arg_tensors) and isinstance(new, Tensor):
                    old = arg_tensors[index]
                    old.copy_(new) if (old.shape, old.dtype) == (new.shape, new.dtype) else old.set_(new)
        if bridged:
            value = self._bridged(value, bridged, self._shared_leaves + sent)
        return value

    def _bridged(self, value, bridged: dict, leaves: list[Tensor]):
        """`value` with its tensors that the worker computed with gradients tied into autograd here."""
        outputs = _tensors_in(value)
        marked = [outputs[i] for i in bridged["outputs"] if 0 <= i < len(outputs)]
        if not torch.is_grad_enabled() or not leaves or bridged.get("call") is None:
            for t in marked:
                t.requires_grad_(True)
            return value
        tied = _Bridge.apply(self, self.generation, bridged["call"], len(marked), *marked, *leaves)
        return _replace_tensors(value, dict(zip((id(t) for t in marked), tied)))


def _by_reference(o) -> bool:
    """A function the worker cannot import by name (a lambda, a closure): it stays here and is called back."""
    return isinstance(o, types.FunctionType) and ("<locals>" in o.__qualname__ or o.__name__ == "<lambda>")


def _judge_side(name: str) -> bool:
    """Names a proxy class never takes from the student's class."""
    return name.startswith("__") and name not in ("__call__", "__len__", "__iter__", "__getitem__", "__contains__")


class _Bridge(torch.autograd.Function):
    """Outputs computed in the worker, tied to the judge's tensors that went into them: backward asks the worker."""

    @staticmethod
    def forward(ctx, judge, generation, call, n_outputs, *tensors):
        ctx.judge, ctx.generation, ctx.call, ctx.n_outputs = judge, generation, call, n_outputs
        ctx.release = _Release(judge, generation, call)  # when the graph goes, the worker's goes too
        ctx.n_leaves = len(tensors) - n_outputs
        return tuple(t.detach().clone() for t in tensors[:n_outputs])

    @staticmethod
    def backward(ctx, *grads):
        if ctx.generation != ctx.judge.generation:
            raise WorkerDied("the grading process that computed this value was restarted")
        found = ctx.judge.request("backward", ctx.call, list(grads))
        found = list(found)[: ctx.n_leaves] if isinstance(found, list) else []
        found += [None] * (ctx.n_leaves - len(found))
        return (None, None, None, None, *([None] * ctx.n_outputs), *found)


class _Release:
    """Tells the worker, when the judge's graph that holds it is freed, that the call's graph may go."""

    def __init__(self, judge: "Judge", generation: int, call: int):
        self.judge, self.generation, self.call = judge, generation, call

    def __del__(self):
        if self.generation == self.judge.generation:
            self.judge.released.append(("c", self.call))


def _no_init(self, *args, **kwargs):
    """The instance was made in the worker (`__new__`): nothing to do here."""


def _make_remotely(cls, *args, **kwargs):
    judge, generation, handle = cls.__dict__["_remote_class"]
    if generation != judge.generation:  # the worker was restarted since: find the class again by its name
        cls = judge.call(("module", cls.__name__), (), {})
        judge, generation, handle = cls.__dict__["_remote_class"]
    return judge.call(("call", handle, None), args, kwargs)


def _class_handle_for(cls, judge: "Judge") -> int:
    owner, generation, handle = cls.__dict__["_remote_class"]
    if owner is not judge or generation != judge.generation:
        raise WorkerDied("this class lived in a grading process that was restarted after an earlier failure")
    return handle


class _RemoteAttribute:
    """An attribute the student's class defines: looked up on the instance, in the worker."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return obj.__dict__["_remote"][0].call(("getattr", _handle(obj), self.name), (), {})


def _handle(obj) -> int:
    judge, generation, handle = obj.__dict__["_remote"]
    if generation != judge.generation:
        raise WorkerDied("this object lived in a grading process that was restarted after an earlier failure")
    return handle


class _Namespace:
    """The names a function (or a class's module) of the student's sees, looked up in the worker: what
    `fn.__globals__` is for a function there."""

    def __init__(self, judge: "Judge", handle: int):
        self.judge, self.handle, self.generation = judge, handle, judge.generation

    def get(self, name: str, default=None):
        if self.generation != self.judge.generation:
            return default
        try:
            return self.judge.call(("global", self.handle, name), (), {})
        except (AttributeError, KeyError):
            return default


class Mirror:
    """A student's module seen from the judge (see the module's docstring): mixed in last, after the student's
    trusted base (nn.Module, DiffusionModel, ...), so that the class's MRO reads as the student's does. Its methods
    are put in each mirror class itself (`_MIRROR_METHODS`): here, after nn.Module, they would be found by
    nn.Module's own `super()` calls."""

    def _handle_for(self, judge: "Judge") -> int:
        return _handle(self)


def _mirror_forward(self, *args, **kwargs):
    return self.__dict__["_remote"][0].call(("call", _handle(self), None), args, kwargs)


def _mirror_getattr(self, name: str):
    try:
        return nn.Module.__getattr__(self, name)
    except AttributeError:
        if name.startswith("_") or "_remote" not in self.__dict__:
            raise
    return self.__dict__["_remote"][0].call(("getattr", _handle(self), name), (), {})


def _mirror_setattr(self, name: str, value) -> None:
    if name.startswith("_") or name == "training" or isinstance(value, (nn.Module, Tensor)):
        nn.Module.__setattr__(self, name, value)
    else:
        self.__dict__["_remote"][0].call(("setattr", _handle(self), name), (value,), {})


def _mirror_deepcopy(self, memo):
    return self.__dict__["_remote"][0].call(("deepcopy", _handle(self), None), (), {})


def _mirror_repr(self) -> str:
    return f"{type(self).__name__}(of the submission)"


_MIRROR_METHODS = {
    "forward": _mirror_forward,
    "__getattr__": _mirror_getattr,
    "__setattr__": _mirror_setattr,
    "__deepcopy__": _mirror_deepcopy,
    "__repr__": _mirror_repr,
}


class RemoteObject:
    """A student's object that is not a module: every attribute is looked up in the worker."""

    def __init__(self, judge: "Judge", handle: int, described: dict):
        self.__dict__["_remote"] = (judge, judge.generation, handle)
        self.__dict__["_type"] = str(described.get("type", "object"))

    def _handle_for(self, judge: "Judge") -> int:
        return _handle(self)

    def _ask(self, target: str, name, *args, **kwargs):
        return self.__dict__["_remote"][0].call((target, _handle(self), name), args, kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__") or "_remote" not in self.__dict__:
            raise AttributeError(name)
        return self._ask("getattr", name)

    def __setattr__(self, name: str, value) -> None:
        self._ask("setattr", name, value)

    def __call__(self, *args, **kwargs):
        return self._ask("call", None, *args, **kwargs)

    def __len__(self):
        return self._ask("method", "__len__")

    def __iter__(self):
        return iter(self._ask("list", None))

    def __getitem__(self, key):
        return self._ask("method", "__getitem__", key)

    def __repr__(self) -> str:
        return f"<{self.__dict__.get('_type', 'object')} of the submission>"


class RemoteFunction:
    """A student's function (or bound method): calling it calls it in the worker."""

    def __init__(self, judge: "Judge", handle: int, described: dict):
        self._remote = (judge, judge.generation, handle)
        self.__name__ = self.__qualname__ = str(described.get("name", "function"))
        self.__globals__ = _Namespace(judge, handle)
        self.source_files = tuple(str(f) for f in described.get("files", []))

    def _handle_for(self, judge: "Judge") -> int:
        self._refresh()
        return self._remote[2]

    def _refresh(self) -> None:
        judge, generation, _ = self._remote
        if generation != judge.generation:  # the worker was restarted since: find the function again by its name
            self._remote = judge.call(("module", self.__name__), (), {})._remote

    def __call__(self, *args, **kwargs):
        self._refresh()
        return self._remote[0].call(("call", self._remote[2], None), args, kwargs)

    def __repr__(self) -> str:
        return f"<function {self.__name__} of the submission>"


class RemoteModule(types.ModuleType):
    """The student's module as the tests see it: each name is looked up in the worker."""

    def __init__(self, judge: Judge, spec: str):
        super().__init__("submission")
        self._judge = judge
        self.__file__ = spec

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._judge.call(("module", name), (), {})


_JUDGES: dict[tuple, Judge] = {}


def stop_all() -> None:
    """Stop every worker of this judge (before its report is written, so that none is left to touch it)."""
    for judge in _JUDGES.values():
        judge.stop()


def _not_dumpable() -> None:
    """On Linux, keep other processes of the same user (a worker not given a user of its own) from attaching to this
    one or reading its memory (PR_SET_DUMPABLE = 0)."""
    if sys.platform == "linux":
        import ctypes
        import ctypes.util

        path = ctypes.util.find_library("c")
        if path:
            ctypes.CDLL(path).prctl(4, 0)


def judged_module(spec: str, part: int) -> RemoteModule | None:
    """In a judge process (JUDGE_ENV set), Part `part` of the submission `spec` as a RemoteModule whose code runs
    in a worker; None elsewhere. Raises ImportError when the submission does not load."""
    raw = os.environ.get(JUDGE_ENV)
    if not raw:
        return None
    judge = _JUDGES.get((spec, part))
    if judge is None:
        _not_dumpable()
        judge = _JUDGES[(spec, part)] = Judge({**json.loads(raw), "spec": spec, "part": part})
        judge.start()
    if judge.load_error:
        raise ImportError(judge.load_error)
    return RemoteModule(judge, spec)


# --------------------------------------------------------------------------------------------------------------------
# The worker's side


def _forward_names(cls: type) -> list[str]:
    """The names of a module class's forward's positional parameters (after self), for the graders' messages: the
    judge's mirror of the module has only *args."""
    if not issubclass(cls, nn.Module):
        return []
    try:
        parameters = list(inspect.signature(cls.forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return []
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


class Worker:
    """Serves the judge's requests on the student's module, in the sandbox."""

    def __init__(self, sock: socket.socket, module):
        self.sock, self.module = sock, module
        self.objects: dict[int, object] = {}  # handle -> the student's object
        self.handle_of: dict[int, int] = {}  # id(object) -> handle
        self.twins: dict[int, object] = {}  # number -> the copy of the judge's object
        self.twin_of: dict[int, int] = {}
        self.stamps: dict[tuple, tuple] = {}
        self.calls: dict[int, tuple] = {}  # call number -> (outputs that need gradients, the leaves)
        self.counter = itertools.count()

    # -- the judge's messages

    def decode(self, data: bytes):
        outer = pickle.loads(data)  # the judge's data: trusted
        for kind, number in outer.get("released", []):
            if kind == "c":
                self.calls.pop(number, None)
            elif kind == "h" and number in self.objects:
                self.handle_of.pop(id(self.objects.pop(number)), None)
            elif kind == "j" and number in self.twins:
                self.twin_of.pop(id(self.twins.pop(number)), None)
        tensors = [
            nn.Parameter(t, requires_grad=g) if p else (t.as_subclass(_named_class(c)) if c else t).requires_grad_(g)
            for t, g, p, c in zip(outer["tensors"], outer["requires_grad"], outer["parameter"], outer["subclass"])
        ]
        message = self._loads(outer["payload"], tensors)
        self.sent_leaves = [tensors[i] for i in outer.get("leaves", [])]
        return message

    def _loads(self, payload: bytes, tensors: list):
        worker = self

        class Unpickler(pickle.Unpickler):
            def persistent_load(self, pid):
                return worker._persistent_load(pid, tensors)

        return Unpickler(io.BytesIO(payload)).load()

    def _persistent_load(self, pid, tensors):
        kind = pid[0]
        if kind == "t":
            return tensors[pid[1]]
        if kind == "r":
            return self.objects[pid[1]]
        if kind == "j":
            return self.twins[pid[1]]
        if kind == "cb":
            return JudgeReference(self, pid[1])
        raise pickle.UnpicklingError(f"unknown reference {pid!r}")

    # -- replies: data, and handles for everything else

    @staticmethod
    def encode(message) -> bytes:
        buffer = io.BytesIO()
        torch.save(message, buffer)
        return buffer.getvalue()

    def describe(self, value, grads: list | None = None, depth: int = 0):
        """`value` as data the judge can decode: plain values as they are, objects as handles. Tensors that need
        gradients (when `grads` is a list) are collected there."""
        kind = type(value)
        if kind in PLAIN:
            return value
        if isinstance(value, Tensor):
            plain = value.detach()
            if kind not in (Tensor, nn.Parameter):
                plain = plain.as_subclass(Tensor)
                origin = self._origin(kind)  # a subclass of the course's (a grader's test tensor) stays one
                if origin is not None:
                    return {"__subclass__": [origin, kind.__qualname__], "value": plain}
            if grads is not None and value.requires_grad and value.grad_fn is not None:
                grads.append(value)
            return plain
        if kind.__module__ == "numpy" and hasattr(value, "dtype") and value.dtype.kind in "biufc":
            array = value.__array__().copy()  # a numpy scalar too: as an array of no dimensions
            return {"__numpy__": torch.from_numpy(array), "scalar": kind.__name__ != "ndarray"}
        if depth > 50:
            raise RecursionError("a value nested more than 50 deep")
        if kind in (list, tuple):
            return kind(self.describe(v, grads, depth + 1) for v in value)
        if kind in DICTS and all(type(k) in (str, int) for k in value):
            return {k: self.describe(v, grads, depth + 1) for k, v in value.items()}
        if id(value) in self.twin_of:
            return {"__judge__": self.twin_of[id(value)]}
        if isinstance(value, JudgeReference):
            return {"__judge__": value.number}
        return self.handle(value)

    def _number(self, value) -> tuple[int, bool]:
        number = self.handle_of.get(id(value))
        if number is not None:
            return number, True
        number = next(self.counter)
        self.objects[number], self.handle_of[id(value)] = value, number
        return number, False

    def _origin(self, obj) -> str | None:
        """The trusted module `obj` comes from: only where that module's name for it is `obj` itself (not a copy of
        a function with other globals, nor anything of the submission's)."""
        module = getattr(obj, "__module__", None)
        if module == self.module.__name__ or not _is_trusted(module):
            return None
        return module if _trusted_object(module, getattr(obj, "__qualname__", "")) is obj else None

    def handle(self, value) -> dict:
        number, known = self._number(value)
        described = {"__remote__": number}
        if isinstance(value, types.ModuleType):
            return described | {"kind": "trusted", "module": value.__name__}
        if isinstance(value, type):
            return described | self._class(value)
        if isinstance(value, nn.Module):
            return described | {"kind": "module"} | ({} if known else {"tree": self._tree(value)})
        if callable(value):
            function = getattr(value, "__func__", value)
            bound = function is not value
            return described | {
                "kind": "callable",
                "name": getattr(value, "__name__", type(value).__name__),
                "module": None if bound else self._origin(function),
                "qualname": getattr(function, "__qualname__", ""),
                "files": sorted(_files(value)),
            }
        return described | {"kind": "object", "type": type(value).__name__}

    def _class(self, cls: type) -> dict:
        untrusted = [c for c in cls.__mro__ if not _is_trusted(self._origin(c))]
        return {
            "kind": "class",
            "name": cls.__name__,
            "module": self._origin(cls),
            "qualname": cls.__qualname__,
            "is_module": issubclass(cls, nn.Module),
            "bases": [self.describe(b) for b in cls.__bases__ if b is not object],
            "names": sorted({n for c in untrusted for n in vars(c)}),
            "files": sorted(_files(cls)),
            "forward_names": _forward_names(cls),
        }

    def _tree(self, module: nn.Module) -> list:
        tree = []
        for path, m in module.named_modules():
            if id(m) in self.twin_of:
                tree.append((path, {"__judge__": self.twin_of[id(m)]}))
                continue
            number, _ = self._number(m)
            slots = []
            for kind, name, t in _own_slots(m):
                slots.append((kind, name, self.describe(t), t.requires_grad))
                self.stamps[(("m", number), kind, name)] = _stamp(t)
            tensors = {k: self.describe(v) for k, v in vars(m).items() if isinstance(v, Tensor) and k[:1] != "_"}
            info = {"handle": number, "class": self.describe(type(m)), "training": m.training, "slots": slots}
            info["tensors"] = tensors
            tree.append((path, info))
        return tree

    # -- shared modules

    def _shared_modules(self) -> dict:
        """The worker's side of the judge's `_shared_modules`, by the same keys."""
        modules = {}
        for number, obj in list(self.twins.items()):
            if isinstance(obj, nn.Module):
                walk = _tree_walk(obj, skip=lambda m: id(m) in self.handle_of and id(m) not in self.twin_of)
                for position, m in enumerate(walk):
                    modules[("j", number, position)] = m
        for number, obj in list(self.objects.items()):
            if isinstance(obj, nn.Module) and id(obj) not in self.twin_of:
                modules[("m", number)] = obj
        for number, obj in list(self.twins.items()):
            if not isinstance(obj, nn.Module) and hasattr(obj, "__dict__") and not isinstance(obj, type):
                modules[("o", number)] = obj
        return modules

    def take(self, modules: dict, changed: list, training: list) -> None:
        """Set what the judge changed in shared modules since the last call."""
        with torch.no_grad():
            for key, kind, name, value in changed:
                module = modules.get(tuple(key))
                if module is None:
                    continue
                if kind == "a":
                    _update(module, value)
                    self.stamps[(tuple(key), "attributes")] = _fingerprint(_attributes(module))
                    continue
                slots = module._parameters if kind == "p" else module._buffers
                current = slots.get(name)
                if kind == "p" and current is not None:
                    current.data = value.detach()
                    current.requires_grad_(value.requires_grad)
                elif kind == "p":
                    slots[name] = nn.Parameter(value.detach(), requires_grad=value.requires_grad)
                else:
                    slots[name] = value.detach()
                self.stamps[(tuple(key), kind, name)] = _stamp(slots[name])
        for key, flag in training:
            module = modules.get(tuple(key))
            if module is not None:
                module.training = flag

    def give(self, modules: dict) -> list:
        """What the call changed in shared modules: submodules of the judge's replaced, values, gradients, data
        attributes; keyed as before the call (the judge applies them to the tree as it was)."""
        changes = []
        for key, module in modules.items():
            if key[0] == "j":
                children = {name: id(child) for name, child in module._modules.items()}
                before = self.stamps.get((key, "children"), children)
                for name, child in module._modules.items():
                    if before.get(name) != id(child):
                        changes.append((key, "c", name, self.describe(child), None))
                self.stamps[(key, "children")] = children
            if key[0] in "jo":
                attributes = _attributes(module)
                if self.stamps.get((key, "attributes")) != _fingerprint(attributes):
                    changes.append((key, "a", None, self.describe(attributes), None))
                    self.stamps[(key, "attributes")] = _fingerprint(attributes)
            if key[0] == "o":
                continue
            for kind, name, t in _own_slots(module):
                grad = t.grad if kind == "p" else None
                stamp = (_stamp(t), None if grad is None else _stamp(grad))
                if self.stamps.get((key, kind, name)) not in (stamp, stamp[0]):
                    changes.append((key, kind, name, self.describe(t), None if grad is None else grad.detach()))
                self.stamps[(key, kind, name)] = stamp
        return changes

    # -- requests

    def serve(self) -> None:
        while True:
            try:
                message = self.decode(receive(self.sock))
            except (WorkerDied, OSError, EOFError):
                return
            self.reply(message)

    def reply(self, message) -> None:
        try:
            reply = ("ok", self.answer(*message))
        except Exception as e:  # noqa: BLE001 - whatever the student's code raised goes back as data
            reply = ("error", _describe_error(e))
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            payload = self.encode(reply)
        except Exception as e:  # noqa: BLE001 - a value that torch.save cannot write
            payload = self.encode(("error", _describe_error(TypeError(f"its result could not be sent back: {e}"))))
        send(self.sock, payload)

    def answer(self, kind, *rest):
        if kind == "hello":
            return None
        if kind == "backward":
            call, grads = rest
            outputs, leaves = self.calls[call]
            pairs = [(o, g) for o, g in zip(outputs, grads) if g is not None]
            if not pairs:
                return [None] * len(leaves)
            found = torch.autograd.grad(
                [o for o, _ in pairs], leaves, [g for _, g in pairs], retain_graph=True, allow_unused=True
            )
            return [None if g is None else g.detach() for g in found]
        if kind == "call":
            return self.call(*rest)
        raise ValueError(f"unknown request {kind!r}")

    def call(self, target, args, kwargs, context, changed, training, shared):
        sent_leaves = self.sent_leaves  # a call-back's reply, decoded during the call, has its own
        modules = self._shared_modules()
        self.take(modules, changed, training)
        for key, module in modules.items():  # the judge's modules' submodules as they are before the call
            if key[0] == "j":
                self.stamps.setdefault((key, "children"), {n: id(c) for n, c in module._modules.items()})
        arg_tensors = _tensors_in((args, kwargs))
        versions = [_version(t) for t in arg_tensors]
        arrays = _tensors_in((args, kwargs), numpy=True)
        copies = [a.copy() for a in arrays]
        torch.random.set_rng_state(context["rng"])
        torch.set_default_dtype(context["dtype"])
        torch.set_num_threads(context["threads"])
        with torch.set_grad_enabled(context["grad"]):
            value = self.run(target, args, kwargs)
        grads: list[Tensor] = []
        described = self.describe(value, grads)
        # The judge's modules by their keys before the call (a replaced submodule shifts the positions after it);
        # the student's by handle, new ones included.
        modules = {k: m for k, m in modules.items() if k[0] != "m"} | {
            k: m for k, m in self._shared_modules().items() if k[0] == "m"
        }
        bridged = None
        if grads:
            ids = {id(g) for g in grads}
            positions = [i for i, t in enumerate(_tensors_in(value)) if id(t) in ids]
            leaves = [self._slot(modules, *s) for s in shared] + sent_leaves
            number = None
            if leaves and all(t is not None for t in leaves):
                number = next(self.counter)
                self.calls[number] = (grads, leaves)
            bridged = {"call": number, "outputs": positions}
        written = [(i, t.detach()) for i, (t, v) in enumerate(zip(arg_tensors, versions)) if _version(t) != v]
        written += [(-1 - i, self.describe(a)) for i, (a, c) in enumerate(zip(arrays, copies)) if not _same_array(a, c)]
        return described, torch.random.get_rng_state(), self.give(modules), written, bridged

    @staticmethod
    def _slot(modules: dict, key, kind, name):
        module = modules.get(tuple(key))
        if module is None:
            return None
        return (module._parameters if kind == "p" else module._buffers).get(name)

    def run(self, target, args, kwargs):
        kind, *rest = target
        if kind == "module":
            if not hasattr(self.module, rest[0]):
                raise AttributeError(f"the submission defines no `{rest[0]}`")
            return getattr(self.module, rest[0])
        obj, name = self.objects[rest[0]], rest[1]
        if kind == "getattr":
            return getattr(obj, name)
        if kind == "global":  # a name as `obj` (a function, or a class in its module) sees it
            namespace = getattr(obj, "__globals__", None)
            if not isinstance(namespace, dict):
                module = sys.modules.get(getattr(obj, "__module__", ""))
                namespace = vars(module) if module is not None else {}
            if name not in namespace:
                raise AttributeError(name)
            return namespace[name]
        if kind == "setattr":
            return setattr(obj, name, args[0])
        if kind == "deepcopy":
            return copy.deepcopy(obj)
        if kind == "call":
            return obj(*args, **kwargs)
        if kind == "method":
            return getattr(obj, name)(*args, **kwargs)
        if kind == "list":
            return list(obj)
        raise ValueError(f"unknown target {kind!r}")

    def call_back(self, number: int, name: str | None, args: tuple, kwargs: dict):
        message = ("callback", number, name, self.describe(args), self.describe(kwargs), torch.is_grad_enabled())
        send(self.sock, self.encode(message))
        kind, value = self.decode(receive(self.sock))
        if kind == "error":
            raise _error_from(value)
        return value


_WORKER: list = []  # the worker of this process (a worker process has one)


def _twin(number: int, make, args):
    """In the worker: build the judge's object `number` as pickle would, and remember it as that object's twin."""
    obj = make(*args)
    worker = _WORKER[0]
    worker.twins[number], worker.twin_of[id(obj)] = obj, number
    return obj


class JudgeReference:
    """An object of the judge's that stays there (a RunLog, a hook): calls on it go back to the judge."""

    def __init__(self, worker: Worker, number: int):
        self._worker, self.number = worker, number

    def __call__(self, *args, **kwargs):
        return self._worker.call_back(self.number, None, args, kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._worker.call_back(self.number, name, args, kwargs)


def _files(obj) -> set[str]:
    functions = [getattr(obj, "__func__", obj)]
    if isinstance(obj, type):
        functions = list(vars(obj).values())
    return {f.__code__.co_filename for f in functions if hasattr(f, "__code__")}


def _describe_error(e: BaseException) -> dict:
    from graders.core import code_frames

    return {
        "type": type(e).__name__,
        "builtin": _crossing(type(e)),
        "message": str(e)[:4000],
        "frames": [list(f) for f in code_frames(e.__traceback__)],
    }


def serve(sock: socket.socket, spec: str, part: int) -> None:
    """The worker's main: load the student's module (telling the judge when it cannot), then answer requests."""
    pickle.loads(receive(sock))  # the judge's greeting (graders.launch)
    from ddpm_course.impl import ImplError, choose_sources, load_part

    try:
        module = load_part(choose_sources([spec], [part], default="solutions")[part])
    except ImplError as e:
        send(sock, Worker.encode(("load_error", str(e))))
        return
    except BaseException as e:  # noqa: BLE001 - whatever the file does while loading is the file's problem
        send(sock, Worker.encode(("load_error", f"{type(e).__name__}: {e}")))
        return
    send(sock, Worker.encode(("ok", None)))
    _WORKER.append(Worker(sock, module))
    _WORKER[0].serve()


def main(argv: list[str]) -> None:
    """`python -m graders.remote --fd FD --impl SPEC --part N` (or `--connect PORT`): a worker, started by a judge
    (graders/launch.py) in the sandbox."""
    args = dict(zip(argv[::2], argv[1::2]))
    if "--connect" in args:  # Windows: to the judge's port on the loopback
        sock = socket.create_connection(("127.0.0.1", int(args["--connect"])))
    else:
        sock = socket.socket(fileno=int(args["--fd"]))
    serve(sock, args["--impl"], int(args["--part"]))


if __name__ == "__main__":  # run as the module itself, not a second copy named __main__ (pickle names this one)
    importlib.import_module("graders.remote").main(sys.argv[1:])
