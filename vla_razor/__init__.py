"""vla-razor: fine-tune vision-language-action policies and measure what they forget.

Layers (data flows one way, nothing imports upward):
``envs`` (robosuite behind gymnasium) -> ``vla_razor.policies`` (VLA backbones, action tokens) ->
``vla_razor.trainers`` (BC, PPO, RFT) -> ``vla_razor.evaluation`` (held-out suite, KL, study).
"""

__version__ = "0.1.0"
