"""A toy checkpoint in OpenVLA's format (remote code + config auto_map), for tests and benchmarks.

The modules here are written to be copied into a checkpoint directory and imported by transformers'
``trust_remote_code`` machinery; only ``build.py`` depends on the rest of vla_razor.
"""
