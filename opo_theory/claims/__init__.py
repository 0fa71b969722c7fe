"""Every claim of the OPO paper, each with a check returning an honest verdict."""

from opo_theory.claims.catalogue import CLAIMS, catalogue, check, check_all, get_claim
from opo_theory.claims.verdict import VERDICTS, Claim, Verdict

__all__ = ["CLAIMS", "Claim", "Verdict", "VERDICTS", "catalogue", "check", "check_all", "get_claim"]
