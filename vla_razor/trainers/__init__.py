"""Trainers: behaviour cloning (bc), PPO (ppo), rejection-sampling fine-tuning (rft).

They share the rollout collector (``rollout.py``), checkpointing (``checkpoint.py``) and logging
(``logging.py``); each trainer module reads top to bottom as one loop.
"""
