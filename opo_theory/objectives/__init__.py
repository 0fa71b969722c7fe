"""Every loss of the toolkit, defined once in torch; bandits, the LM trainer and figures call these."""

from opo_theory.objectives.batch import PolicyBatch
from opo_theory.objectives.registry import DRIVE_KEY, REG_KEY, ObjectiveSpec, available, get, register

# Importing the definition modules fills the registry.
# (Each module below calls ``register``; keep this list in sync when adding a module.)

__all__ = ["PolicyBatch", "ObjectiveSpec", "available", "get", "register", "DRIVE_KEY", "REG_KEY"]
