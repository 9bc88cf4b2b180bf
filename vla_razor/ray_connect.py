"""Joining (or starting) a Ray cluster from a driver: the one place both Ray paths (the suite's episodes,
``evaluation.scale_out``; a study's units, ``workflows.unit_dispatch``) connect.

Two things every driver needs:

- the rendering settings its tasks' env workers need on any node (``FORWARDED_ENV``);
- its own stop handling kept. ``ray.init`` installs Ray's fatal-signal handler for SIGTERM, which aborts
  the process (exit 134) without unwinding: a driver stopped by a scheduler would leave no chance to stop
  its tasks cleanly (a training's checkpoint, exit 75). The Python handlers in place before the call
  (``preemption.stop_on_preemption``'s, Ctrl-C's) are put back.

The caller passes the ``ray`` module it imported (Ray is optional: imported only when a run asks for it).
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from vla_razor.preemption import PREEMPTION_SIGNALS

# Rendering settings a unit's env workers need on any node (set before they start).
FORWARDED_ENV = ("MUJOCO_GL", "PYOPENGL_PLATFORM")
_KEPT_SIGNALS = (signal.SIGINT, *PREEMPTION_SIGNALS)


def connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at ``address`` (None: start one on this machine) unless this process already has;
    True when this call connected, so the caller shuts the connection down when done."""
    if ray.is_initialized():
        return False
    on_main_thread = threading.current_thread() is threading.main_thread()
    handlers = {sig: signal.getsignal(sig) for sig in _KEPT_SIGNALS} if on_main_thread else {}
    env_vars = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": env_vars} if env_vars else None,
        )
    finally:
        for sig, handler in handlers.items():
            if handler is not None:  # None: set outside Python; nothing to put back
                signal.signal(sig, handler)
    return True
