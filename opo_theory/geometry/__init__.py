"""Symbolic (sympy) geometry of policy optimization: coordinates, mirror maps and Bregman
divergences, f- and alpha-divergences, the escort family, and objectives as expressions."""

from opo_theory.geometry.bregman import MIRROR_MAPS, bregman, bregman_generator, tsallis_psi
from opo_theory.geometry.coordinates import (
    DELTA,
    T,
    V,
    Z,
    binary_delta_of_logit,
    categorical_logprob_jacobian,
    in_coordinate,
)
from opo_theory.geometry.escort import escort_density, escort_weight
from opo_theory.geometry.fdivergence import F_GENERATORS, amari_alpha_generator, f_divergence

__all__ = [
    "T", "V", "DELTA", "Z", "in_coordinate", "binary_delta_of_logit", "categorical_logprob_jacobian",
    "MIRROR_MAPS", "bregman", "bregman_generator", "tsallis_psi",
    "F_GENERATORS", "amari_alpha_generator", "f_divergence",
    "escort_density", "escort_weight",
]
