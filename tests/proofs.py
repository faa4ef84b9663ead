"""One harness for the proofs of every part's graders, driven by the graders' registry (graders.core.REGISTRY).

A part's proof module lists two things: CORRECT, pairs (check, implementation) that must pass, and MISTAKES, triples
(check, mistaken implementation, a regular expression its failure must match). `proofs(part, CORRECT, MISTAKES)`
returns the test functions that prove, for every step the part's graders register:

    - every correct implementation passes, and every mistake fails with a message naming it;
    - each step is proven on the reference and at least one other correct implementation, and on a mistake;
    - the untouched stub, in exercises/partN.py and in the student notebook, reports "not implemented yet";
    - passing something that is not a function or class says how to call the grader;
    - tests/test_partN.py has one test per step, named after it.
"""

import importlib
from collections.abc import Callable

import pytest

from graders.core import REGISTRY, REPO_ROOT, GraderFailure, NotImplementedYet, load_impl
from utils.authoring.build import snake_case


def registry(part: int) -> dict[str, Callable]:
    """Part `part`'s graders by step, in the order they are defined."""
    importlib.import_module(f"graders.part{part}")
    return REGISTRY[f"graders.part{part}"]


def _id(case) -> str:
    return f"{case[0].step}-{getattr(case[1], '__name__', type(case[1]).__name__)}"


def proofs(part: int, correct: list, mistakes: list) -> dict[str, Callable]:
    """The test functions proving Part `part`'s graders; a proof module does `globals().update(proofs(...))`."""
    steps = registry(part)
    reference = importlib.import_module(f"solutions.part{part}")

    @pytest.mark.parametrize("check, implementation", correct, ids=[_id(c) for c in correct])
    def test_grader_accepts_correct_implementation(check, implementation):
        check(implementation)

    @pytest.mark.parametrize("check, implementation, message", mistakes, ids=[_id(c) for c in mistakes])
    @pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
    def test_grader_names_the_mistake(check, implementation, message):
        with pytest.raises(GraderFailure, match=message) as failure:
            check(implementation)
        assert not isinstance(failure.value, NotImplementedYet)
        assert str(failure.value).startswith(f"{check.step}: "), "the failure must name its step first"

    @pytest.mark.parametrize("step", steps)
    def test_every_step_is_proven(step):
        passes = [impl for check, impl in correct if check is steps[step]]
        assert getattr(reference, step) in passes, f"{step}: the reference is not among the correct implementations"
        assert len(passes) >= 2, f"{step}: proven on the reference alone; add another correct implementation"
        assert any(check is steps[step] for check, *_ in mistakes), f"{step}: no mistake is shown to be caught"

    @pytest.mark.parametrize("step", steps)
    def test_untouched_stub_is_not_implemented_yet(step):
        stubs = importlib.import_module(f"exercises.part{part}")
        with pytest.raises(NotImplementedYet, match="not implemented yet"):
            steps[step](getattr(stubs, step))

    @pytest.mark.parametrize("step", steps)
    def test_untouched_student_notebook_is_not_implemented_yet(step):
        (notebook,) = REPO_ROOT.glob(f"part{part}_*.ipynb")
        module = load_impl(str(notebook), part)
        with pytest.raises(NotImplementedYet, match="not implemented yet"):
            steps[step](getattr(module, step))

    @pytest.mark.parametrize("step", steps)
    def test_wrong_kind_of_argument_is_explained(step):
        with pytest.raises(GraderFailure, match="takes your (function|class) itself"):
            steps[step](1.5)

    def test_every_step_has_a_test_named_after_it():
        tests = importlib.import_module(f"tests.test_part{part}")
        assert {n for n in dir(tests) if n.startswith("test_")} == {f"test_{snake_case(s)}" for s in steps}
        assert all(check.__name__ == f"check_{snake_case(s)}" for s, check in steps.items())

    return {
        f.__name__: f
        for f in (
            test_grader_accepts_correct_implementation,
            test_grader_names_the_mistake,
            test_every_step_is_proven,
            test_untouched_stub_is_not_implemented_yet,
            test_untouched_student_notebook_is_not_implemented_yet,
            test_wrong_kind_of_argument_is_explained,
            test_every_step_has_a_test_named_after_it,
        )
    }
