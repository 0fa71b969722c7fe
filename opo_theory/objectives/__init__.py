"""Every loss of the toolkit, defined once in torch; bandits, the LM trainer and figures call these.

``available()`` lists the registry; ``get(name)`` returns an ObjectiveSpec whose call
``spec(batch, config)`` gives ``(loss, metrics)``.
"""

from opo_theory.objectives import clipped, field, opo, pairwise  # noqa: F401  (fill the registry)
from opo_theory.objectives.batch import PolicyBatch
from opo_theory.objectives.reduce import AGGREGATIONS, aggregate, seq_logratio
from opo_theory.objectives.registry import (
           DRIVE_KEY,
           REG_KEY,
           ObjectiveSpec,
           available,
           get,
           register,
)
from opo_theory.objectives.sampling import GEOMETRIES

__all__ = ["PolicyBatch", "ObjectiveSpec", "available", "get", "register", "DRIVE_KEY", "REG_KEY",
           "AGGREGATIONS", "aggregate", "seq_logratio", "GEOMETRIES"]
