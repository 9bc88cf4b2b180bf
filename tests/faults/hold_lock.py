"""Holds a folder's lock until killed, standing for a second live command writing it.

python -m tests.faults.hold_lock DIR
"""

from __future__ import annotations

import sys
import time

from vla_razor.folder_lock import folder_lock

if __name__ == "__main__":
    with folder_lock(sys.argv[1], "results folder"):
        print("held", flush=True)
        time.sleep(600)
