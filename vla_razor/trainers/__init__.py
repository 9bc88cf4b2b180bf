"""Trainers: behaviour cloning (bc, bc_kl), PPO (ppo), rejection-sampling fine-tuning (rft).

One loop runs them all (``loop.py``: resume, checkpoints, KL monitor and budget, in-training evaluation,
non-finite losses, Ctrl-C); each trainer supplies its update through the small contract in ``base.py``:
``bc.py`` a gradient step on demos, ``on_policy.py`` a collect-then-update iteration whose update comes
from ``ppo.py`` or ``rft.py``. Beside them: checkpoint format (``checkpoint.py``), RNG streams
(``rng.py``), logging (``logger.py``), DDP and FSDP (``distributed.py``, ``fsdp.py``), the KL monitor
(``kl_monitor.py``).
"""
