"""The registry objectives and the diagnostics inside other engines (TRL's trainers, verl's registries).

Thin adapters: no loss is defined here. Each submodule imports its engine when it is imported itself;
this package imports nothing, so ``import opo_theory`` never needs TRL or verl.
"""
