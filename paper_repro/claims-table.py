"""Claims table: the verdict of every checked claim, with whose statement it is (markdown + JSON)."""

from __future__ import annotations

import dataclasses

from opo_theory.claims import check_all
from opo_theory.claims.cli import markdown_table
from opo_theory.figures.style import out_dir, save_data
from opo_theory.io import write_text_atomic

NAME = "claims-table"


def main(rerun: bool = False):
    results = check_all()
    md = write_text_atomic(out_dir() / f"{NAME}.md", markdown_table(results))
    data = [dataclasses.asdict(r) for r in results]
    return [md, save_data(NAME, {"claims": data}, {"n_claims": len(data)})]


if __name__ == "__main__":
    main()
