"""vla-razor's hydra configs, installed as the package data of ``vla_razor.configs``."""
