"""The machinery every grader shares: loading a student's code from anywhere, weight copying, short reports."""

import json

import pytest
import torch
from torch import nn

from graders.core import GraderFailure, copy_weights, expect_close, load_impl


def test_a_failure_shows_as_its_message_alone_in_ipython():
    lines = GraderFailure("step: wrong\n  expected: 1\n  got:      2")._render_traceback_()
    assert "step: wrong" in lines[0] and lines[1:] == ["  expected: 1", "  got:      2"]


def test_load_impl_takes_a_file_outside_the_repo(tmp_path):
    student = tmp_path / "elsewhere" / "my_part1.py"
    student.parent.mkdir()
    student.write_text("from utils.engine.tensors import per_image\n\ndef linear_schedule(max_steps, min_noise=1e-4, max_noise=0.02):\n"
                       "    import torch\n    return torch.linspace(min_noise, max_noise, max_steps)\n")
    module = load_impl(str(student), 1)
    assert module.linear_schedule(3).shape == (3,)


def test_load_impl_says_what_it_accepts(tmp_path):
    with pytest.raises(FileNotFoundError, match="Give 'exercises', 'solutions', a .py file or a .ipynb notebook"):
        load_impl(str(tmp_path / "missing.py"), 1)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="expected a .py file or a .ipynb notebook"):
        load_impl(str(tmp_path / "notes.txt"), 1)


def test_notebook_loading_runs_definitions_only(tmp_path):
    cells = [
        {"cell_type": "code", "metadata": {}, "source": "%matplotlib inline\nimport torch", "outputs": [], "execution_count": None},
        {"cell_type": "code", "metadata": {}, "source": "def f(x):\n    return x + 1\nraise RuntimeError('training cell')",
         "outputs": [], "execution_count": None},
        {"cell_type": "markdown", "metadata": {}, "source": "# prose"},
        {"cell_type": "code", "metadata": {}, "source": "!pip install nothing\nclass C:\n    y = torch.ones(1)",
         "outputs": [], "execution_count": None},
    ]
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i}"
    path = tmp_path / "work.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    module = load_impl(str(path), 1)
    assert module.f(1) == 2 and module.C.y.item() == 1.0


def test_copy_weights_by_order_and_clear_mismatch():
    class A(nn.Module):
        def __init__(self):
            super().__init__()
            self.first, self.second = nn.Linear(3, 4), nn.Linear(4, 2)

    class B(nn.Module):
        def __init__(self, bias=True):
            super().__init__()
            self.layers = nn.Sequential(nn.Linear(3, 4, bias=bias), nn.ReLU(), nn.Linear(4, 2, bias=bias))

    a, b = A(), B()
    copy_weights(a, b, "B")
    assert torch.equal(b.layers[0].weight, a.first.weight) and torch.equal(b.layers[2].bias, a.second.bias)
    with pytest.raises(GraderFailure, match="bias=False"):
        copy_weights(a, B(bias=False), "B")

    class SameNamesOtherOrder(nn.Module):  # matched by name: fine
        def __init__(self):
            super().__init__()
            self.second, self.first = nn.Linear(4, 2), nn.Linear(3, 4)

    swapped = SameNamesOtherOrder()
    copy_weights(a, swapped, "SameNamesOtherOrder")
    assert torch.equal(swapped.first.weight, a.first.weight)

    class OtherNamesOtherOrder(nn.Module):  # matched by order: the shapes cannot line up
        def __init__(self):
            super().__init__()
            self.out, self.hidden = nn.Linear(4, 2), nn.Linear(3, 4)

    with pytest.raises(GraderFailure, match="parameter #0 .* wrong shape"):
        copy_weights(a, OtherNamesOtherOrder(), "OtherNamesOtherOrder")


def test_expect_close_names_a_matching_mistake_and_rejects_nan():
    expected = torch.tensor([1.0, 2.0])
    with pytest.raises(GraderFailure, match="likely mistake: doubled"):
        expect_close(expected * 2, expected, "x", mistakes={"doubled": expected * 2})
    with pytest.raises(GraderFailure, match="NaN or inf"):
        expect_close(torch.tensor([1.0, float("nan")]), expected, "x")
    with pytest.raises(GraderFailure, match="wrong shape"):
        expect_close(torch.ones(3), expected, "x")
