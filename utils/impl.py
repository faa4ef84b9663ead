"""Loading an implementation of a part: `exercises` (yours), `solutions` (the reference), a .py file anywhere, or a
notebook. The graders, the class-grading command and the programs that run a part end to end all load code this way.
"""

import ast
import importlib
import importlib.util
import sys
import types
from pathlib import Path


def load_impl(spec: str, part: int) -> types.ModuleType:
    """The module of Part `part` that `spec` names.

    `spec` is "exercises" (your `exercises/partN.py`), "solutions" (the reference), a path to a `.py` file anywhere,
    or a path to a notebook, from which the cells that only import and define things are loaded (never the cells
    that train or plot).
    """
    if spec in ("exercises", "solutions"):
        return importlib.import_module(f"{spec}.part{part}")
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"--impl {spec}: no such file. Give 'exercises', 'solutions', a .py file or a .ipynb notebook."
        )
    path = path.resolve()
    module_name = f"_graded_part{part}_{abs(hash(str(path)))}"
    if path.suffix == ".py":
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        module_spec.loader.exec_module(module)
        return module
    if path.suffix == ".ipynb":
        return load_notebook_definitions(path, module_name)
    raise ValueError(f"--impl {spec}: expected a .py file or a .ipynb notebook, got a {path.suffix or 'folder'}")


_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def load_notebook_definitions(path: Path, module_name: str) -> types.ModuleType:
    """A module holding the imports, functions and classes a notebook defines, in cell order.

    Each code cell is parsed and only its import, `def` and `class` statements run; everything else (training,
    plotting, printing) is skipped, so grading a notebook takes seconds. IPython magics (`%`, `!`) are ignored.
    """
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    module = types.ModuleType(module_name)
    module.__file__ = str(path)
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
        tree.body = [node for node in tree.body if isinstance(node, _DEFINITIONS)]
        if tree.body:
            exec(compile(tree, f"{path.name} (cell {index + 1})", "exec"), module.__dict__)
    return module


def gather(cls: type, sources: dict[str, object]):
    """The dataclass `cls` with each field taken, by name, from the module (or object) `sources` maps it to: how a
    program collects the pieces of an implementation it runs. Missing pieces are all named at once."""
    missing = [name for name, source in sources.items() if not hasattr(source, name)]
    if missing:
        raise AttributeError(f"the implementation lacks {', '.join(missing)}")
    return cls(**{name: getattr(source, name) for name, source in sources.items()})
