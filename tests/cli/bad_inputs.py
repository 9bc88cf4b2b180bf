"""Several bad command lines through ``vla_razor.cli.main``, one after another in one process, for the test
that each ends in a one-line error (tests/cli/test_cli.py).

    python -m tests.cli.bad_inputs CASES.json RESULTS.json

CASES.json is a list of argument lists; RESULTS.json gets, per case, what ``main`` ended with: the
``SystemExit`` code (the line a user sees on stderr, or the exit status), or null where it returned. A fresh
process per case would pay torch's and the simulator's imports each time (about 8 s on 2 cores); hydra
composes each case's config anew, so the cases do not see one another. Anything but ``SystemExit`` is a
bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vla_razor.cli import main


def run_cases(cases: list[list[str]]) -> list[str | int | None]:
    ends: list[str | int | None] = []
    for argv in cases:
        try:
            main(list(argv))
        except SystemExit as exc:
            ends.append(exc.code if isinstance(exc.code, str | int) else repr(exc.code))
        else:
            ends.append(None)
    return ends


if __name__ == "__main__":
    cases_file, results_file = map(Path, sys.argv[1:3])
    results_file.write_text(json.dumps(run_cases(json.loads(cases_file.read_text()))))
