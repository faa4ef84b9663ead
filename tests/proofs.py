"""One harness for the proofs of every part's graders, driven by the graders' registry (graders.core.REGISTRY).

Each other way to write a step is registered once, beside its code in tests/variants_partN.py, in that part's
`Catalogue`: `@correct("q_eq2")` over an implementation its grader must pass, `@mistake("q_eq2", says="beta used as
a standard deviation")` over one its grader must fail, with a message matching that regular expression. A factory's
product or a function from elsewhere registers the same way, called: `correct("q_eq4", ref.q_eq2)`. A correct way
that the grader's meta-device check cannot judge (it reads values on the host: graders.fixtures.run_on_meta) says so,
`@correct("sample", unchecked_on_meta=True)`; every other correct way, the reference first, must be judged there.
`proofs(part)` returns the test functions that prove, for every step the part's graders register:

    - the reference and every correct implementation pass, and every mistake fails with a message naming it;
    - every device check on the meta device judges each correct implementation, but those registered as beyond it;
    - each step is proven on at least one correct implementation besides the reference, and on a mistake;
    - the untouched stub, in exercises/partN.py and in the student notebook, reports "not implemented yet";
    - passing something that is not a function or class says how to call the grader;
    - tests/test_partN.py has one test per step, named after it.
"""

import importlib
import types
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from graders.core import REGISTRY, REPO_ROOT, GraderFailure, NotImplementedYet, load_impl
from graders.fixtures import UNCHECKED_ON_META
from utils.authoring.build import snake_case


@dataclass(frozen=True)
class Case:
    """One implementation of a step and what its grader must say: nothing (`says` is None), or a failure matching
    the regular expression `says`."""

    step: str
    implementation: Callable
    says: str | None = None
    unchecked_on_meta: bool = False

    @property
    def id(self) -> str:
        return f"{self.step}-{getattr(self.implementation, '__name__', type(self.implementation).__name__)}"


class Catalogue:
    """A part's other ways to write its steps, each registered once: `correct` and `mistake` decorate a def or class
    and return it unchanged, or, given the implementation as well, register it and return it."""

    def __init__(self):
        self.cases: list[Case] = []

    def correct(self, step: str, implementation: Callable | None = None, unchecked_on_meta: bool = False):
        """`step`'s grader must pass this implementation; with `unchecked_on_meta`, its meta-device check must say
        that it could not judge it (graders.fixtures.UNCHECKED_ON_META), and without, that it could."""
        return self._register(step, None, implementation, unchecked_on_meta)

    def mistake(self, step: str, says: str | tuple[str, ...], implementation: Callable | None = None):
        """`step`'s grader must fail this implementation with a message matching the regular expression `says`
        (each of them, proven one by one, when `says` is a tuple)."""
        return self._register(step, says, implementation)

    def _register(self, step, says, implementation, unchecked_on_meta=False):
        def register(impl):
            self.cases += [
                Case(step, impl, s, unchecked_on_meta) for s in (says if isinstance(says, tuple) else (says,))
            ]
            return impl

        return register if implementation is None else register(implementation)


def with_own(function: Callable, **earlier: Callable) -> Callable:
    """`function` as it runs in a student's file whose earlier steps are `earlier`: the names it calls rebound."""
    rebound = types.FunctionType(function.__code__, {**function.__globals__, **earlier}, function.__name__)
    rebound.__defaults__ = function.__defaults__
    return rebound


def registry(part: int) -> dict[str, Callable]:
    """Part `part`'s graders by step, in the order they are defined."""
    importlib.import_module(f"graders.part{part}")
    return REGISTRY[f"graders.part{part}"]


def proofs_cases(part: int) -> list[Case]:
    """Part `part`'s catalogue: every other implementation registered in tests/variants_partN.py, in order."""
    return importlib.import_module(f"tests.variants_part{part}").catalogue.cases


def proofs(part: int) -> dict[str, Callable]:
    """The test functions proving Part `part`'s graders; a proof module does `globals().update(proofs(N))`."""
    steps = registry(part)
    reference = importlib.import_module(f"solutions.part{part}")
    cases = [Case(step, getattr(reference, step)) for step in steps]
    cases += proofs_cases(part)
    correct = [c for c in cases if c.says is None]
    mistakes = [c for c in cases if c.says is not None]
    assert {c.step for c in cases} <= set(steps), f"Part {part}'s catalogue names a step no grader registers"

    @pytest.mark.parametrize("case", correct, ids=[c.id for c in correct])
    def test_grader_accepts_correct_implementation(case):
        UNCHECKED_ON_META.clear()
        steps[case.step](case.implementation)
        if case.unchecked_on_meta:
            assert UNCHECKED_ON_META, f"{case.id}: registered as beyond the meta check, but it was judged there"
        else:
            assert not UNCHECKED_ON_META, (
                f"{case.id}: the meta check could not judge it ({UNCHECKED_ON_META}); register it with "
                "unchecked_on_meta=True if that is expected"
            )

    @pytest.mark.parametrize("case", mistakes, ids=[c.id for c in mistakes])
    @pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
    def test_grader_names_the_mistake(case):
        with pytest.raises(GraderFailure, match=case.says) as failure:
            steps[case.step](case.implementation)
        assert not isinstance(failure.value, NotImplementedYet)
        assert str(failure.value).startswith(f"{case.step}: "), "the failure must name its step first"

    @pytest.mark.parametrize("step", steps)
    def test_every_step_is_proven(step):
        assert sum(c.step == step for c in correct) >= 2, f"{step}: proven on the reference alone; add another"
        assert any(c.step == step for c in mistakes), f"{step}: no mistake is shown to be caught"

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
