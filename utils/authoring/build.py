"""Generate the exercise stubs and the notebooks from their one source, and check that they are in sync.

    python -m utils.authoring.build            # (re)write every generated file that is missing or stale
    python -m utils.authoring.build --check    # exit 1 if a generated file differs from what its source gives (CI runs this)

Sources:
    solutions/partN.py          the reference. Each exercise body sits between `# BEGIN SOLUTION` and
                                `# END SOLUTION`; the stub replaces it with `raise NotImplementedError(...)`.
    notebook_src/partN_*.md     the notebook's prose and code. A ```python fence is a code cell, a line `+++` splits
                                markdown cells, and a fence ```exercise NAME becomes the exercise NAME taken from
                                solutions/partN.py: its stub (or its solution), a check cell, and a collapsed solution.
                                A fence ```given NAME copies the given (not graded) function or class NAME from
                                solutions/partN.py, so that the notebook runs it on the student's own functions.
Targets:
    exercises/partN.py          the stubs, for students
    partN_*.ipynb               the students' notebook, with stubs
    solutions/partN_*.ipynb     the same notebook with every exercise solved (nbval runs these in CI)

Every notebook also gets an "Open in Colab" badge and, as its first code cell, the set-up of `utils/colab.py` (which
installs the course where it is missing), both built from the repository URL in pyproject.toml's `[project.urls]`.

Students edit generated files, so a rebuild never overwrites one that was changed by hand: each generated file
records a hash of what was written, and a file whose content no longer matches its hash is left alone (and
reported) unless `--force` is given.
"""

import argparse
import ast
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from utils import REPO_ROOT
from utils.colab import colab_badge, setup_cell

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
BUILD_COMMAND = "python -m utils.authoring.build"


# --------------------------------------------------------------------------------------------------------------------
# Exercise stubs


def make_stubs(solution_source: str) -> str:
    """The solution module with every `# BEGIN SOLUTION` ... `# END SOLUTION` region replaced by a stub."""
    tree = ast.parse(solution_source)
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    qualnames = _qualnames(tree)
    lines = solution_source.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() != BEGIN:
            if line.strip() == END:
                raise ValueError(f"line {i + 1}: `{END}` without a `{BEGIN}` before it")
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        start = i
        while i < len(lines) and lines[i].strip() != END:
            i += 1
        if i == len(lines):
            raise ValueError(f"line {start + 1}: `{BEGIN}` is never closed by `{END}`")
        enclosing = [f for f in functions if f.lineno <= start + 1 <= f.end_lineno]
        name = qualnames[max(enclosing, key=lambda f: f.lineno)] if enclosing else "this exercise"
        out.append(f'{indent}raise NotImplementedError("{name} is yours to write")')
        i += 1
    return "\n".join(out) + "\n"


def _qualnames(tree: ast.Module) -> dict[ast.AST, str]:
    names: dict[ast.AST, str] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names[child] = prefix + child.name
                visit(child, prefix + child.name + ".")

    visit(tree, "")
    return names


def top_level_block(source: str, name: str) -> str:
    """The source of the top-level function or class `name`, decorators included."""
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            return "\n".join(source.splitlines()[first - 1 : node.end_lineno])
    raise KeyError(f"no top-level function or class named {name!r}")


def without_markers(source: str) -> str:
    """`source` without its `# BEGIN SOLUTION` and `# END SOLUTION` lines: how a solution is shown to a reader."""
    return "\n".join(line for line in source.splitlines() if line.strip() not in (BEGIN, END))


def snake_case(name: str) -> str:
    """`NoiseSchedule` -> `noise_schedule`, `SiLU` -> `silu`: exercise names to grader and test names.

    A word starts at a capital that follows a lower-case letter or digit and is itself followed by a lower-case
    letter, so a closing run of capitals (the "LU" of SiLU) stays in its word.
    """
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", "_", name).lower()


# --------------------------------------------------------------------------------------------------------------------
# Notebooks


@dataclass(frozen=True)
class Cell:
    kind: str  # "markdown" or "code"
    source: str
    tags: tuple[str, ...] = ()


def parse_notebook_source(text: str) -> list[tuple[str, str]]:
    """Split a notebook source into ("markdown", text), ("python", code), ("exercise", name) and ("given", names)."""
    items: list[tuple[str, str]] = []
    markdown: list[str] = []

    def flush() -> None:
        chunk = "\n".join(markdown).strip("\n")
        if chunk.strip():
            items.append(("markdown", chunk))
        markdown.clear()

    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = re.fullmatch(r"```(python|exercise|given)\s*(.*)", line.rstrip())
        if line.rstrip() == "+++":
            flush()
        elif fence:
            flush()
            body = []
            i += 1
            while i < len(lines) and lines[i].rstrip() != "```":
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise ValueError(f"line {i}: a ```{fence.group(1)} fence is never closed")
            if fence.group(1) == "python":
                items.append(("python", "\n".join(body)))
            else:
                items.append((fence.group(1), fence.group(2).strip()))
        else:
            markdown.append(line)
        i += 1
    flush()
    return items


def notebook_cells(
    items: list[tuple[str, str]], part: int, solution_source: str, stub_source: str, solved: bool
) -> list[Cell]:
    """The cells of the students' notebook (`solved=False`) or of the solved one."""
    cells: list[Cell] = []
    for kind, content in items:
        if kind == "markdown":
            cells.append(Cell("markdown", content))
        elif kind == "python":
            cells.append(Cell("code", content))
        elif kind == "given":
            blocks = [without_markers(top_level_block(solution_source, name)) for name in content.split()]
            cells.append(Cell("code", "\n\n\n".join(blocks), ("given",)))
        else:
            name = content
            solution = without_markers(top_level_block(solution_source, name))
            cells.append(Cell("code", solution if solved else top_level_block(stub_source, name), ("exercise",)))
            cells.append(Cell("code", f"grader.check_{snake_case(name)}({name})", ("check",)))
            if not solved:
                cells.append(
                    Cell(
                        "markdown",
                        (
                            f"<details><summary>Solution: <code>{name}</code></summary>\n\n```python\n{solution}\n```\n\n"
                            f"</details>\n\nStuck, and want to move on? Run `from solutions.part{part} import {name}` in a "
                            "new cell: the rest of the notebook then uses the reference, and you can come back later."
                        ),
                    )
                )
    return cells


def cells_hash(cells: list[Cell]) -> str:
    payload = json.dumps([[c.kind, c.source, list(c.tags)] for c in cells])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def repository_url(root: Path = REPO_ROOT) -> str:
    """The project's repository, as pyproject.toml's `[project.urls] Repository` states it (the one place it is set)."""
    text = (root / "pyproject.toml").read_text()
    try:
        import tomllib
    except ImportError:  # Python 3.10: the one line is easy to find without a TOML parser
        match = re.search(r'^\[project\.urls\][^\[]*?^Repository\s*=\s*"([^"]+)"', text, re.MULTILINE | re.DOTALL)
        if match is None:
            raise KeyError("pyproject.toml has no [project.urls] Repository") from None
        return match.group(1)
    return tomllib.loads(text)["project"]["urls"]["Repository"]


def to_notebook(
    cells: list[Cell], source_name: str, solved: bool, notebook_path: str = "", url: str | None = None
) -> nbformat.NotebookNode:
    """The notebook of `cells`, after a generated header (with an "Open in Colab" badge for `notebook_path`, the
    notebook's path in the repository) and the set-up cell, both for the repository at `url`."""
    url = url or repository_url()
    header = (
        (f"{colab_badge(url, notebook_path)}\n\n" if notebook_path else "")
        + f"*Generated from `{source_name}` by `{BUILD_COMMAND}`.* "
        + (
            "This copy has every exercise solved; CI runs it. Students work in the copy at the repository root."
            if solved
            else "Fill in the exercises here: rebuilding never overwrites this notebook once you have changed it."
        )
    )
    cells = [Cell("markdown", header, ("generated",)), Cell("code", setup_cell(url), ("setup",))] + cells
    nb = nbformat.v4.new_notebook()
    index = 0
    for cell in cells:
        new = nbformat.v4.new_markdown_cell if cell.kind == "markdown" else nbformat.v4.new_code_cell
        # Fixed ids: the same source always gives the same file. The set-up cell has its own, so that adding it did
        # not renumber the others.
        node = new(cell.source, id="setup" if "setup" in cell.tags else f"cell-{index:03d}")
        index += "setup" not in cell.tags
        if cell.tags:
            node.metadata["tags"] = list(cell.tags)
        nb.cells.append(node)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["ddpm_course"] = {"generated_from": source_name, "content_hash": cells_hash(cells)}
    return nb


def cells_of(nb: nbformat.NotebookNode) -> list[Cell]:
    """A notebook's cells as the build sees them: kind, source and tags; outputs and ids do not count."""
    return [Cell(c.cell_type, c.source, tuple(c.get("metadata", {}).get("tags", ()))) for c in nb.cells]


def notebook_text(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


# --------------------------------------------------------------------------------------------------------------------
# Targets


@dataclass
class Target:
    path: Path
    text: str  # what the build writes

    def expected_key(self) -> str:
        return self._key(self.text)

    def current_key(self) -> str | None:
        return self._key(self.path.read_text()) if self.path.exists() else None

    def is_pristine(self) -> bool:
        """True when the file on disk is exactly what some earlier build wrote: nobody has edited it since."""
        text = self.path.read_text()
        if self.path.suffix == ".ipynb":
            try:
                nb = nbformat.reads(text, as_version=4)
            except Exception:
                return False
            recorded = nb.metadata.get("ddpm_course", {}).get("content_hash")
            return recorded == cells_hash(cells_of(nb))
        match = re.search(r"^# content-hash: (\w+)\n", text, re.M)
        return bool(match) and match.group(1) == _py_hash(text[match.end() :])

    def _key(self, text: str) -> str:
        if self.path.suffix == ".ipynb":
            return cells_hash(cells_of(nbformat.reads(text, as_version=4)))
        return text


def _py_hash(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def stub_file_text(part: int, stub_source: str) -> str:
    header = (
        f"# GENERATED from solutions/part{part}.py by `{BUILD_COMMAND}`: the reference with each exercise's body\n"
        "# replaced by a stub. This file is yours: fill in the stubs, then run `pytest tests/test_part"
        f"{part}.py`.\n# Rebuilding never overwrites this file once you have edited it.\n"
    )
    return header + f"# content-hash: {_py_hash(stub_source)}\n" + stub_source


def targets(root: Path = REPO_ROOT) -> list[Target]:
    """Every generated file and the text the build gives it."""
    url = repository_url(root) if (root / "pyproject.toml").is_file() else repository_url()
    result = []
    for solution_path in sorted((root / "solutions").glob("part[0-9]*.py")):
        part = int(re.search(r"part(\d+)", solution_path.stem).group(1))
        solution_source = solution_path.read_text()
        stub_source = make_stubs(solution_source)
        result.append(Target(root / "exercises" / solution_path.name, stub_file_text(part, stub_source)))
        for src in sorted((root / "notebook_src").glob(f"part{part}_*.md")):
            items = parse_notebook_source(src.read_text())
            source_name = f"notebook_src/{src.name}"
            for solved, folder in ((False, root), (True, root / "solutions")):
                cells = notebook_cells(items, part, solution_source, stub_source, solved)
                path = folder / f"{src.stem}.ipynb"
                notebook = to_notebook(cells, source_name, solved, path.relative_to(root).as_posix(), url)
                result.append(Target(path, notebook_text(notebook)))
    return result


def check(root: Path = REPO_ROOT) -> list[str]:
    """The generated files that differ from what their sources give: empty when all is in sync."""
    problems = []
    for target in targets(root):
        rel = target.path.relative_to(root)
        if not target.path.exists():
            problems.append(f"{rel}: missing")
        elif target.current_key() != target.expected_key():
            why = "stale (its source changed)" if target.is_pristine() else "edited by hand"
            problems.append(f"{rel}: {why}")
    return problems


def build(root: Path = REPO_ROOT, force: bool = False) -> tuple[list[Path], list[Path]]:
    """Write missing and stale targets. Returns (written, left alone because edited by hand)."""
    written, kept = [], []
    for target in targets(root):
        if target.path.exists() and (
            target.path.read_text() == target.text if force else target.current_key() == target.expected_key()
        ):
            continue
        if target.path.exists() and not target.is_pristine() and not force:
            kept.append(target.path)
            continue
        target.path.write_text(target.text)
        written.append(target.path)
    return written, kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ddpm-course build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report generated files that are out of sync")
    parser.add_argument("--force", action="store_true", help="also overwrite generated files edited by hand")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        for problem in problems:
            print(f"out of sync: {problem}")
        if problems:
            print(f"Run `{BUILD_COMMAND}` (add --force to overwrite hand edits) and commit the result.")
            return 1
        print("generated files are in sync with their sources")
        return 0
    written, kept = build(force=args.force)
    for path in written:
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    for path in kept:
        print(f"left alone {path.relative_to(REPO_ROOT)}: it has edits (yours?); --force overwrites them")
    if not written and not kept:
        print("everything is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
