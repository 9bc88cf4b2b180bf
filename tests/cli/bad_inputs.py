"""Several bad command lines through ``vla_razor.cli.main``, one after another in one process, for the tests
that each ends in a one-line error (tests/cli/test_cli.py).

    python -m tests.cli.bad_inputs CASES.json RESULTS.json

CASES.json is a list of argument lists; RESULTS.json gets, per case, how ``main`` ended: ``exit``, the
``SystemExit`` code (the line a user sees as stderr's last, or the exit status; null where ``main``
returned), and ``stderr``, what the case wrote to stderr before it (hydra's own errors). A fresh process per
case would pay torch's and the simulator's imports each time (about 8 s on 2 cores); hydra composes each
case's config anew, so the cases do not see one another. Anything but ``SystemExit`` is a bug and keeps
its traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

from vla_razor.cli import main


def run_case(argv: list[str]) -> dict[str, Any]:
    stderr = io.StringIO()
    code: str | int | None = None
    try:
        with contextlib.redirect_stderr(stderr):
            main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, str | int) else repr(exc.code)
    return {"exit": code, "stderr": stderr.getvalue()}


if __name__ == "__main__":
    cases_file, results_file = map(Path, sys.argv[1:3])
    results_file.write_text(json.dumps([run_case(argv) for argv in json.loads(cases_file.read_text())]))
