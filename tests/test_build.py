"""The single-source build: generated files in sync, stubs generated correctly, student work never overwritten."""

import ast
import json
import re

import pytest

from utils.authoring import build
from utils.authoring.build import BEGIN, END, REPO_ROOT, parse_notebook_source


def test_generated_files_are_in_sync_with_their_sources():
    problems = build.check()
    assert not problems, "generated files out of sync (run `python -m utils.authoring.build`):\n" + "\n".join(problems)


def test_stub_replaces_solution_regions_and_names_the_function():
    source = (
        "def f(x):\n"
        '    """Doc."""\n'
        "    # BEGIN SOLUTION\n"
        "    return x + 1\n"
        "    # END SOLUTION\n"
        "\n"
        "class C:\n"
        "    def g(self):\n"
        "        # BEGIN SOLUTION\n"
        "        return 2\n"
        "        # END SOLUTION\n"
    )
    stubs = build.make_stubs(source)
    assert "return x + 1" not in stubs and "return 2" not in stubs
    assert 'raise NotImplementedError("f is yours to write")' in stubs
    assert 'raise NotImplementedError("C.g is yours to write")' in stubs
    ast.parse(stubs)


@pytest.mark.parametrize(
    "source, message",
    [
        ("def f():\n    # BEGIN SOLUTION\n    return 1\n", "never closed"),
        ("def f():\n    return 1\n    # END SOLUTION\n", "without a"),
    ],
)
def test_unbalanced_markers_are_reported(source, message):
    with pytest.raises(ValueError, match=message):
        build.make_stubs(source)


def test_no_solution_leaks_into_the_exercise_files():
    for target in build.targets():
        if target.path.parent.name == "exercises":
            assert "BEGIN SOLUTION" not in target.text and "END SOLUTION" not in target.text


def test_every_import_an_exercise_uses_is_in_the_notebook():
    """Exercise cells are copied from solutions/partN.py, so the notebook must import what they use."""
    for solution in sorted((build.REPO_ROOT / "solutions").glob("part[0-9]*.py")):
        source = solution.read_text()
        imported = set()
        for node in ast.parse(source).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imported |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        for notebook_source in (build.REPO_ROOT / "notebook_src").glob(f"{solution.stem}_*.md"):
            items = build.parse_notebook_source(notebook_source.read_text())
            used = set()
            for name in (content for kind, content in items if kind == "exercise"):
                block = ast.parse(build.top_level_block(source, name))
                used |= {node.id for node in ast.walk(block) if isinstance(node, ast.Name)} & imported
            code = "\n".join(content for kind, content in items if kind == "python")
            defined = set()
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    defined |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
                if isinstance(node, ast.Assign) and "import_parts" in ast.unparse(node.value):  # the switch line
                    defined |= {n.id for target in node.targets for n in ast.walk(target) if isinstance(n, ast.Name)}
            assert used <= defined, f"{notebook_source.name} does not import {sorted(used - defined)}"


def test_rebuild_never_overwrites_a_students_edits(tmp_path, monkeypatch):
    """Copy the repo's sources into a scratch tree, build, edit a generated file, change the source, rebuild."""
    for folder in ("solutions", "notebook_src", "exercises"):
        (tmp_path / folder).mkdir()
    (tmp_path / "solutions" / "part9.py").write_text(
        'def f(x):\n    """Add one."""\n    # BEGIN SOLUTION\n    return x + 1\n    # END SOLUTION\n'
    )
    (tmp_path / "notebook_src" / "part9_demo.md").write_text("# Demo\n\n```exercise f\n```\n")
    written, kept = build.build(tmp_path)
    assert len(written) == 3 and not kept and build.check(tmp_path) == []

    stub = tmp_path / "exercises" / "part9.py"
    notebook = tmp_path / "part9_demo.ipynb"
    stub.write_text(stub.read_text().replace('raise NotImplementedError("f is yours to write")', "return x + 1"))
    nb = json.loads(notebook.read_text())
    exercise = next(c for c in nb["cells"] if "exercise" in c["metadata"].get("tags", []))
    exercise["source"] = "def f(x):\n    return x + 1\n"
    nb["cells"][1]["outputs"] = []
    notebook.write_text(json.dumps(nb))

    (tmp_path / "solutions" / "part9.py").write_text(
        'def f(x):\n    """Add one to x."""\n    # BEGIN SOLUTION\n    return x + 1\n    # END SOLUTION\n'
    )
    written, kept = build.build(tmp_path)
    assert set(kept) == {stub, notebook}, "edited files must be left alone"
    assert "return x + 1" in stub.read_text() and "return x + 1" in notebook.read_text()
    assert [p.name for p in written] == ["part9_demo.ipynb"]  # the solved notebook, never edited, is refreshed
    assert any("edited by hand" in p for p in build.check(tmp_path))

    written, kept = build.build(tmp_path, force=True)
    assert set(written) == {stub, notebook} and not kept and build.check(tmp_path) == []


def test_outputs_alone_do_not_count_as_edits(tmp_path):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "notebook_src").mkdir()
    (tmp_path / "exercises").mkdir()
    (tmp_path / "solutions" / "part9.py").write_text("X = 1\n")
    (tmp_path / "notebook_src" / "part9_demo.md").write_text("```python\nprint(1)\n```\n")
    build.build(tmp_path)
    notebook = tmp_path / "part9_demo.ipynb"
    nb = json.loads(notebook.read_text())
    nb["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "1\n"}]
    notebook.write_text(json.dumps(nb))
    assert build.check(tmp_path) == []
    assert re.search('"text": "1\\\\n"', notebook.read_text())


@pytest.mark.parametrize("source", sorted((REPO_ROOT / "notebook_src").glob("part*.md")), ids=lambda p: p.stem)
def test_every_exercise_has_a_collapsed_hint_above_it(source):
    items = parse_notebook_source(source.read_text())
    exercises = [i for i, (kind, _) in enumerate(items) if kind == "exercise"]
    assert exercises, f"{source.name} has no exercises"
    without = [
        items[i][1]
        for i in exercises
        if not (i > 0 and items[i - 1][0] == "markdown" and "<details><summary>Hint" in items[i - 1][1])
    ]
    assert not without, (
        f"{source.name}: {len(without)} of {len(exercises)} exercises have no hint above them: {without}"
    )


def test_no_marker_lines_in_any_notebook():
    for notebook in [*REPO_ROOT.glob("part*.ipynb"), *REPO_ROOT.glob("solutions/part*.ipynb")]:
        text = notebook.read_text()
        assert BEGIN not in text and END not in text, f"{notebook.name} shows a solution marker line"
