"""Fig 8: policy entropy vs step (LM compare runs; geometric mean and log-space band over seeds)."""

from opo_theory.figures.runs import line_figure


def main(rerun: bool = False):
    return line_figure("fig8-entropy", [("entropy/mean", "mean token entropy (5-step average)", 5, False)],
                       "Entropy", rerun)


if __name__ == "__main__":
    main()
