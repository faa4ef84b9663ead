"""`ddpm-course`: the course's commands for students and instructors.

ddpm-course reference part1 [--quick]     train the reference on color gradients, save samples (1-2 minutes on a CPU)
ddpm-course reference part3 [...]         the FashionMNIST pipeline: train, sample, score (see --help)
ddpm-course reference part4 [...]         faster samplers and guidance: train, ladder, sweep (see --help)
ddpm-course reference part5 [...]         the ODE view and flow matching: two moons, train, ladder (see --help)
ddpm-course run part1|part3|part4|part5 [--impl IMPL ...]   the same runs with your code (default: exercises/)
ddpm-course grade PART [IMPL] [--sandbox] run the graders of one part on IMPL (default: exercises/); contained with --sandbox
ddpm-course grade-class PART FOLDER [...] grade a folder of submissions: a table of steps per student (--help)
ddpm-course build [--check] [--force]     regenerate the exercise stubs and notebooks from their sources
ddpm-course bench [...]                   throughput and sample-quality benchmark (Part 3)

IMPL is exercises, solutions, a folder of partN.py files or notebooks, one .py file or notebook (the part its name
says), or partK=PATH to take Part K from PATH and every other part from the reference (repeatable):
ddpm-course run part3 --impl part1=part1_gradients.ipynb     your notebook's Part 1, the reference Parts 2 and 3
"""

import argparse
import importlib
import os
import sys

# The scores' matrix square roots are 128 x 128: one BLAS thread does them in milliseconds, while a thread per core
# fighting a busy machine (or torch's own threads) takes seconds. Set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import traceback

PROGRAMS = {
    "part1": "ddpm_course.part1",
    "part3": "ddpm_course.fashion",
    "part4": "ddpm_course.guidance",
    "part5": "ddpm_course.flow",
}


RUNS = {"reference": "run a part with the reference implementation", "run": "run a part with your implementation"}


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # piped on Windows, output is cp1252, which has no ✓ or ✗: "?" instead
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in RUNS:
        return run_program(argv[0], argv[1:])
    parser = argparse.ArgumentParser(
        prog="ddpm-course",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, what in RUNS.items():
        commands.add_parser(name, help=f"{what} (part1, part3, part4 or part5; see `ddpm-course {name} --help`)")
    grade = commands.add_parser("grade", help="grade one part", description="Run every grader of one part.")
    grade.add_argument("part", type=int, choices=[1, 2, 3, 4, 5])
    grade.add_argument(
        "impl",
        nargs="?",
        default="exercises",
        help="exercises (default), solutions, a folder, a .py file, a notebook, or partN=PATH",
    )
    grade.add_argument(
        "--sandbox",
        action="store_true",
        help="grade the file as grade-class does, contained in a process of its own: for code you did not write",
    )
    commands.add_parser("grade-class", help="grade a class's submissions", add_help=False)
    commands.add_parser("build", help="regenerate stubs and notebooks", add_help=False)
    commands.add_parser("bench", help="benchmark (Part 3)", add_help=False)
    args, rest = parser.parse_known_args(argv)

    if args.command == "build":
        from utils.authoring.build import main as build_main

        return build_main(rest)
    if args.command == "grade-class":
        return importlib.import_module("graders.grade_class").main(rest)
    if args.command == "bench":
        return importlib.import_module("ddpm_course.benchmark").main(rest) or 0
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.sandbox:
        return importlib.import_module("graders.grade_class").grade_file(args.part, args.impl)
    from graders.run import grade_part

    return grade_part(args.part, args.impl)


def run_program(command: str, argv: list[str]) -> int:
    """`ddpm-course run|reference PART ...`: the part's program, told its own name, so its --help is right."""
    if not argv or argv[0] not in PROGRAMS:
        parser = argparse.ArgumentParser(
            prog=f"ddpm-course {command}",
            description=f"{RUNS[command][0].upper()}{RUNS[command][1:]}: train, sample and write figures.",
            epilog=f"`ddpm-course {command} PART --help` lists the options of one part.",
        )
        parser.add_argument("part", choices=sorted(PROGRAMS), help="which part's run")
        parser.parse_args(argv[:1])  # --help, a missing or an unknown part: argparse says so and exits
    part, rest = argv[0], argv[1:]
    if command == "reference" and any(a == "--impl" or a.startswith("--impl=") for a in rest):
        print(f"ddpm-course reference runs the reference; use `ddpm-course run {part} --impl ...`", file=sys.stderr)
        return 2
    program = importlib.import_module(PROGRAMS[part])
    default = "solutions" if command == "reference" else "exercises"
    from ddpm_course.impl import ImplError

    try:
        return program.main(rest, default=default, prog=f"ddpm-course {command} {part}") or 0
    except ImplError as e:  # a part that cannot load, or a stub: one line, not a traceback
        print(f"stopped: {e}", file=sys.stderr)
        return 2
    except NotImplementedError as e:  # a stub the check before the run could not see: say which, not a traceback
        raised = traceback.extract_tb(e.__traceback__)[-1]
        print(
            f"stopped: `{raised.name}` ({raised.filename}, line {raised.lineno}) is still the untouched stub"
            f"{': ' + str(e) if str(e) else ''}. Fill it in (`ddpm-course grade N` shows what is left), or take "
            "that part from the reference (--impl partN=solutions)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
