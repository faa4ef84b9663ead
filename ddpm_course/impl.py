"""Naming and loading an implementation of the course's parts: the one way every program, grader and notebook does it.

An implementation is named by one or more `--impl` values:

    exercises                 yours: exercises/partN.py for every part
    solutions                 the reference, for every part
    FOLDER                    partN.py (or one notebook partN*.ipynb) from the folder, for every part it holds
    FILE.py, FILE.ipynb       one part, the one its name says (my_part1.ipynb) or the only one the run uses
    partK=PATH                Part K from PATH (a file, a notebook, a folder, exercises or solutions); repeatable

Parts that no value names come from the reference when only `partK=` values are given, else from the one value that
names all parts. A notebook is loaded without running its training: only its imports, functions and classes run.

Everything that goes wrong here is an `ImplError`, one line naming the part, the file and the function, so that a
program can print it instead of a traceback. This module never imports exercises/ or solutions/ statically.
"""

import ast
import importlib
import importlib.util
import re
import sys
import traceback
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from utils import REPO_ROOT
from utils.colab import in_colab

REFERENCE = "solutions"
OWN = "exercises"
NAMED_PACKAGES = (OWN, REFERENCE)
SUFFIXES = (".py", ".ipynb")
_PART_VALUE = re.compile(r"^part(\d+)=(.+)$")
_PART_IN_NAME = re.compile(r"part(\d+)")


class ImplError(Exception):
    """An implementation that cannot be used, said in one line: which part, which file, which function."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows: the line alone, as the graders' failures are shown, not a traceback."""
        return [f"\x1b[31m{self}\x1b[0m"]


@dataclass(frozen=True)
class PartSource:
    """Where one part's code comes from: `spec` is "solutions", "exercises", or a path to a .py file or a notebook."""

    part: int
    spec: str
    note: str = ""  # why the part comes from here, when it is not what the user named (a folder without it)

    @property
    def path(self) -> Path:
        if self.spec in NAMED_PACKAGES:
            return REPO_ROOT / self.spec / f"part{self.part}.py"
        return Path(self.spec).expanduser()

    @property
    def whose(self) -> str:
        return "the reference" if self.spec == REFERENCE else "yours"

    def shown(self) -> str:
        """The file as a person would type it: relative to the course for exercises/solutions, else as given."""
        if self.spec in NAMED_PACKAGES:
            return f"{self.spec}/part{self.part}.py"
        return self.spec

    def __str__(self) -> str:
        return f"Part {self.part}: {self.shown()} ({self.whose}{'; ' + self.note if self.note else ''})"


def part_file_in(folder: Path, part: int) -> Path | None:
    """Part `part`'s file in `folder`: partN.py, else the one .py or notebook whose name starts with partN."""
    exact = folder / f"part{part}.py"
    if exact.is_file():
        return exact
    candidates = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix in SUFFIXES and re.match(rf"part{part}(?!\d)", p.name)
    )
    if len(candidates) > 1:
        raise ImplError(
            f"Part {part}: {folder} holds several files for it ({', '.join(p.name for p in candidates)}); "
            f"name one with --impl part{part}=FILE"
        )
    return candidates[0] if candidates else None


def _part_of_name(path: Path) -> int | None:
    found = _PART_IN_NAME.search(path.stem)
    return int(found.group(1)) if found else None


def _check_exists(spec: str, part: int | None = None) -> Path:
    path = Path(spec).expanduser()
    if not path.exists():
        where = f"Part {part}: " if part is not None else ""
        colab = (
            " In Colab your notebooks are kept in Google Drive, not on this disk: download yours (File > Download >"
            " .ipynb) and drop it in the Files panel, which puts it in /content, the folder this name is read from."
            if path.suffix == ".ipynb" and in_colab()
            else ""
        )
        raise ImplError(
            f"{where}--impl {spec}: no such file or folder. Give exercises, solutions, a folder, a .py file, a "
            f".ipynb notebook, or partK=PATH.{colab}"
        )
    if path.is_file() and path.suffix not in SUFFIXES:
        raise ImplError(f"--impl {spec}: expected a .py file or a .ipynb notebook, got a {path.suffix or 'file'}")
    return path


def _one_part(spec: str, part: int) -> PartSource:
    """Part `part` from `spec`, which names exercises, solutions, a folder or a file."""
    if spec in NAMED_PACKAGES:
        return PartSource(part, spec)
    path = _check_exists(spec, part)
    if path.is_dir():
        found = part_file_in(path, part)
        if found is None:
            return PartSource(part, REFERENCE, f"{spec} has no part{part}.py")
        return PartSource(part, str(found))
    return PartSource(part, spec)


def choose_sources(
    values: str | Sequence[str] | None, parts: Iterable[int], default: str = OWN
) -> dict[int, PartSource]:
    """Where each of `parts` comes from, given the `--impl` values (see the module's docstring).

    `default` names all parts when `values` is empty. A lone file is the part its name says; when a run uses a single
    part, any file is that part."""
    parts = tuple(parts)
    values = [values] if isinstance(values, str) else list(values or [])
    overrides: dict[int, str] = {}
    whole = []
    for value in values:
        matched = _PART_VALUE.match(value)
        if matched:
            part, spec = int(matched.group(1)), matched.group(2)
            if part not in parts:
                raise ImplError(
                    f"--impl {value}: this run uses Part{'s' if len(parts) > 1 else ''} "
                    f"{', '.join(map(str, parts))}, not Part {part}"
                )
            if part in overrides:
                raise ImplError(f"--impl part{part}= is given twice ({overrides[part]} and {spec}); keep one")
            overrides[part] = spec
        else:
            whole.append(value)
    if len(whole) > 1:
        raise ImplError(
            f"--impl names all parts twice ({' and '.join(whole)}); give one, and partK=PATH for single parts"
        )
    base = whole[0] if whole else (REFERENCE if overrides else default)
    if base not in NAMED_PACKAGES and Path(base).expanduser().is_file():
        path = _check_exists(base)
        part = parts[0] if len(parts) == 1 else _part_of_name(path)
        if part not in parts:
            said = (
                "Its name does not say" if part is None else f"Its name says Part {part}, which this run does not use"
            )
            raise ImplError(
                f"--impl {base}: which part does it hold? {said}; give --impl partK={base} "
                f"(this run uses Parts {', '.join(map(str, parts))})"
            )
        if part in overrides:
            raise ImplError(f"--impl {base} and --impl part{part}={overrides[part]} both name Part {part}; keep one")
        overrides[part] = base
        base = REFERENCE
    sources = {part: _one_part(overrides.get(part, base), part) for part in parts}
    if base not in NAMED_PACKAGES and all(source.note for source in sources.values()):
        raise ImplError(
            f"--impl {base}: the folder holds none of the parts this run uses "
            f"({', '.join(f'part{p}.py' for p in parts)}, or notebooks named partN...)"
        )
    return sources


def describe(sources: dict[int, PartSource]) -> str:
    """One line per part saying whose code it is and which file it comes from, for a program to print first."""
    return "\n".join(str(source) for source in sources.values())


def load_part(source: PartSource, names: Iterable[str] = ()) -> types.ModuleType:
    """The module `source` names, checked to define each of `names` and none of them still the untouched stub."""
    try:
        module = load_impl(source.spec, source.part)
    except ImplError:
        raise
    except Exception as e:
        raise ImplError(f"{source.shown()}, Part {source.part}: could not load it: {_one_line(e, source)}") from None
    missing = [name for name in names if not hasattr(module, name)]
    if missing:
        raise ImplError(
            f"Part {source.part} ({source.shown()}) defines no {', '.join(f'`{n}`' for n in missing)}: "
            "the run needs it; copy it in from your work, or take this part from the reference "
            f"(--impl part{source.part}=solutions)"
        )
    for name in names:
        stub = untouched_stub(module, name)
        if stub is not None:
            reached, where = stub
            via = f"`{name}` calls `{reached}`, which" if reached != name else f"`{name}`"
            raise ImplError(
                f"Part {source.part} ({source.shown()}, {where}): {via} is still the untouched stub; write it "
                f"(`ddpm-course grade {source.part} {source.spec}` shows what is left), or take this part from the "
                f"reference (--impl part{source.part}=solutions)"
            )
    return module


def load_parts(
    values: str | Sequence[str] | None, needs: dict[int, Iterable[str]], default: str = OWN, show=print
) -> dict[int, types.ModuleType]:
    """The modules of the parts `needs` lists, each checked to define the names listed for it; first `show`s where
    each part comes from. Raises ImplError, one line, for a value, a file or a stub that cannot be used."""
    sources = choose_sources(values, sorted(needs), default)
    if show is not None:
        show(describe(sources))
    return {part: load_part(source, needs[part]) for part, source in sources.items()}


def import_parts(values: str | Sequence[str] | None, names: dict[int, str], default: str = REFERENCE) -> list:
    """The notebooks' switch line: the objects `names` lists (part -> space-separated names), in that order, from
    the parts `values` names (see the module's docstring; default: the reference). Says first which file each part
    comes from.

        NoiseSchedule, sample, Unet = import_parts("part1=part1_gradients.ipynb", {1: "NoiseSchedule sample", 2: "Unet"})
    """
    needs = {part: listed.split() for part, listed in names.items()}
    modules = load_parts(values, needs, default)
    return [getattr(modules[part], name) for part, listed in needs.items() for name in listed]


def _one_line(error: BaseException, source: PartSource) -> str:
    """`error` in one line, at the line of the part's own file where it was raised, when it was."""
    where = ""
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == str(source.path.resolve()) or frame.filename.startswith(source.path.name):
            where = f" (at {Path(frame.filename).name}, line {frame.lineno})"
    if isinstance(error, SyntaxError) and error.lineno and not where:
        where = f" (line {error.lineno})"
    message = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {message}{where}"


# --------------------------------------------------------------------------------------------------------------------
# Untouched stubs, found before a run starts rather than an hour into it


def _is_stub_body(body: list[ast.stmt]) -> bool:
    """A body that always raises NotImplementedError (a `raise` at its top level): the generated stub, which may
    keep a given first line or two before it."""
    for statement in body:
        if isinstance(statement, ast.Raise) and statement.exc is not None:
            raised = statement.exc.func if isinstance(statement.exc, ast.Call) else statement.exc
            if isinstance(raised, ast.Name) and raised.id == "NotImplementedError":
                return True
    return False


def _stub_line(node: ast.AST) -> int | None:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return node.lineno if _is_stub_body(node.body) else None
    if isinstance(node, ast.ClassDef):
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_stub_body(item.body):
                return item.lineno
    return None


def _definitions(module: types.ModuleType) -> dict[str, tuple[ast.AST, str]]:
    """The module's top-level functions and classes by name, each with where it sits ("" in a file, "code cell N, "
    in a notebook); the last definition wins, as when it ran."""
    trees = getattr(module, "__impl_trees__", None)
    if trees is None:
        file = getattr(module, "__file__", None)
        if not file or not file.endswith(".py"):
            return {}
        trees = [("", ast.parse(Path(file).read_text(encoding="utf-8")))]  # as Python reads source
    found = {}
    for where, tree in trees:
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found[node.name] = (node, where)
    return found


def untouched_stub(module: types.ModuleType, name: str) -> tuple[str, str] | None:
    """(the stub, where: "line N" or "code cell C, line N") if `name`, or a function or class of the same module it
    uses, is still the stub."""
    definitions = _definitions(module)
    seen, todo = set(), [name]
    while todo:
        current = todo.pop(0)
        if current in seen or current not in definitions:
            continue
        seen.add(current)
        node, where = definitions[current]
        line = _stub_line(node)
        if line is not None:
            return current, f"{where}line {line}"
        todo.extend(n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in definitions)
    return None


# --------------------------------------------------------------------------------------------------------------------
# Loading one part's module


def load_impl(spec: str, part: int) -> types.ModuleType:
    """The module of Part `part` that `spec` names.

    `spec` is "exercises" (your `exercises/partN.py`), "solutions" (the reference), a folder holding that part, a
    path to a `.py` file anywhere, a path to a notebook (from which the cells that only import and define things are
    loaded, never the cells that train or plot), or `partN=` followed by one of these.
    """
    matched = _PART_VALUE.match(spec)
    if matched:
        if int(matched.group(1)) != part:
            raise ImplError(f"--impl {spec} names Part {matched.group(1)}, but Part {part} is asked for")
        spec = matched.group(2)
    if spec in NAMED_PACKAGES:
        return importlib.import_module(f"{spec}.part{part}")
    path = _check_exists(spec, part)
    if path.is_dir():
        found = part_file_in(path, part)
        if found is None:
            raise ImplError(f"Part {part}: {spec} holds no part{part}.py and no part{part}*.ipynb")
        path = found
    path = path.resolve()
    module_name = f"_graded_part{part}_{abs(hash(str(path)))}"
    if path.suffix == ".py":
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        module_spec.loader.exec_module(module)
        return module
    return load_notebook_definitions(path, module_name)


_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _is_definition(node: ast.stmt) -> bool:
    """An import, a function, a class, a constant (`IMPL = "solutions"`) or the switch line (`... = import_parts(...)`):
    what a later exercise of the notebook may need, and nothing that trains or plots."""
    if isinstance(node, _DEFINITIONS):
        return True
    if not isinstance(node, ast.Assign):
        return False
    value = node.value
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "import_parts":
        return True
    try:
        ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return all(isinstance(target, ast.Name) for target in node.targets)


def load_notebook_definitions(path: Path, module_name: str) -> types.ModuleType:
    """A module holding the imports, functions and classes a notebook defines, in cell order.

    Each code cell is parsed and only its import, `def` and `class` statements, constants and the switch line
    (`import_parts`) run; everything else (training, plotting, printing) is skipped, so grading a notebook takes
    seconds. IPython magics (`%`, `!`) are ignored.
    """
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    module = types.ModuleType(module_name)
    module.__file__ = str(path)
    module.__impl_trees__ = []  # what untouched_stub reads, as a notebook has no source file to parse
    sys.modules[module_name] = module
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        # Blank out magics line by line, so line numbers in error messages still match the cell.
        source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in cell.source.splitlines())
        try:
            tree = ast.parse(source)
        except SyntaxError as e:
            raise SyntaxError(f"{path.name}, code cell {index + 1}, line {e.lineno}: {e.msg}") from None
        tree.body = [node for node in tree.body if _is_definition(node)]
        if tree.body:
            module.__impl_trees__.append((f"code cell {index + 1}, ", tree))
            exec(compile(tree, f"{path.name} (cell {index + 1})", "exec"), module.__dict__)
    return module
