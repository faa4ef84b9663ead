"""`ddpm-course`: the course's commands for students and instructors.

ddpm-course reference part1 [--quick]     train the reference on color gradients, save samples (1-2 minutes on a CPU)
ddpm-course reference part3 [...]         the FashionMNIST pipeline: train, sample, score (see --help)
ddpm-course reference part4 [...]         faster samplers and guidance: train, ladder, sweep (see --help)
ddpm-course run part1|part3|part4 --impl SPEC   the same runs with your code: --impl exercises, a file or a folder
ddpm-course grade PART [IMPL]             run the graders of one part on IMPL (exercises, solutions, a .py, a notebook)
ddpm-course grade-class PART FOLDER [...] grade a folder of submissions: a table of steps per student (--help)
ddpm-course build [--check] [--force]     regenerate the exercise stubs and notebooks from their sources
ddpm-course bench [...]                   throughput and sample-quality benchmark (Part 3)
"""

import argparse
import importlib
import sys

PROGRAMS = {"part1": "utils.programs.part1", "part3": "utils.programs.fashion", "part4": "utils.programs.guidance"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="ddpm-course",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n")[1],
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, what in (
        ("reference", "run a part with the reference implementation"),
        ("run", "run a part with the implementation --impl names (default: exercises)"),
    ):
        command = commands.add_parser(name, help=what, add_help=False)
        command.add_argument("part", choices=sorted(PROGRAMS))
    grade = commands.add_parser("grade", help="grade one part")
    grade.add_argument("part", type=int, choices=[1, 2, 3, 4])
    grade.add_argument("impl", nargs="?", default="exercises", help="exercises, solutions, or a .py / .ipynb path")
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
        return importlib.import_module("utils.programs.benchmark").main(rest) or 0
    if args.command == "grade":
        from graders.run import grade_part

        return grade_part(args.part, args.impl)
    program = importlib.import_module(PROGRAMS[args.part])
    if args.command == "reference":
        rest = ["--impl", "solutions", *rest]
    elif "--impl" not in rest:
        rest = ["--impl", "exercises", *rest]
    try:
        return program.main(rest) or 0
    except NotImplementedError as e:  # a stub the run needs: say which, not a traceback
        print(
            f"stopped: {e or 'a step is not written yet'}. Fill it in (`ddpm-course grade N` shows what is left), "
            f"or run the reference: ddpm-course reference {args.part}",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
