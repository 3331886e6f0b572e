"""`python -m planner`: the CLI (planner/cli.py), with the two ways a run can end that are no user mistake said in
one line instead of a traceback: the planner's packages are missing (a python outside the project's .venv), and the
reader of the output went away (`plan ... | head`)."""

import os
import sys

EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE, what a shell shows for a program stopped by a closed pipe


def _missing_packages(error: ModuleNotFoundError) -> int:
    print(f"python -m planner needs the planner's packages ({error.name} is missing in {sys.executable}). Run "
          "scripts/plan [STACK | FILE] [--json], which installs them into .venv on first use, or "
          ".venv/bin/python -m planner ... after that (or pip install -r requirements-planner.txt).", file=sys.stderr)
    return 2


def _run() -> int:
    try:
        from planner.cli import main

        code = main()
        sys.stdout.flush()
        return code
    except ModuleNotFoundError as error:  # rich, for one, is imported only when tables are printed
        if error.name and error.name.split(".")[0] not in ("planner", "checker"):
            return _missing_packages(error)
        raise
    except BrokenPipeError:
        # The reader stopped reading: nothing to say. Point stdout at /dev/null so the flush at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE_CLOSED


sys.exit(_run())
