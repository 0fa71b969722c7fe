"""Every claim of the OPO paper, each with a check returning an honest verdict.

Names are loaded on first use (PEP 562), so importing the package (the CLI's parser, one claim's
check) does not load every check module and sympy.
"""

from importlib import import_module

_HOMES = {"CLAIMS": "index", "catalogue": "index", "check": "index", "check_all": "index",
          "get_claim": "index", "VERDICTS": "verdict", "Claim": "verdict", "Verdict": "verdict"}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'opo_theory.claims' has no attribute {name!r}")
    return getattr(import_module(f"opo_theory.claims.{_HOMES[name]}"), name)
