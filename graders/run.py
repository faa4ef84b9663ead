"""Run every grader of one part on an implementation, outside pytest: `ddpm-course grade PART [IMPL]`.

Works from an installed course as well as from a clone: it needs the graders and the implementation, not the tests.
"""

import importlib

from ddpm_course.impl import ImplError, choose_sources, load_part
from graders.core import REGISTRY, GraderFailure, NotImplementedYet


def grade_part(part: int, spec: str = "exercises") -> int:
    """Print one line per step of Part `part` for the implementation `spec` (any --impl value: see ddpm_course.impl);
    return 0 if every step passes."""
    importlib.import_module(f"graders.part{part}")
    try:
        source = choose_sources(spec, [part])[part]
        print(source)
        module = load_part(source)
    except ImplError as e:  # a file that does not import is the first thing to fix, said in one line
        print(f"could not load: {e}")
        return 2
    spec = source.shown()
    results = {}
    for step, check in REGISTRY[f"graders.part{part}"].items():
        if not hasattr(module, step):
            print(f"\N{BALLOT X} {step}: {spec} defines no `{step}`")
            results[step] = "missing"
            continue
        try:
            check(getattr(module, step))
            results[step] = "pass"
        except NotImplementedYet as e:
            print(f"\N{BALLOT X} {e}")
            results[step] = "not implemented"
        except GraderFailure as e:
            print(f"\N{BALLOT X} {e}")
            results[step] = "fail"
    passed = sum(r == "pass" for r in results.values())
    print(f"\nPart {part}, {spec}: {passed} of {len(results)} steps pass")
    return 0 if passed == len(results) else 1
