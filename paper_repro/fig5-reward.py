"""Fig 5: training reward vs step for each objective (LM compare runs)."""

from opo_theory.figures.runs import line_figure


def main(rerun: bool = False):
    return line_figure("fig5-reward", [("reward/mean", "mean reward (5-step moving average)", 5, False)],
                       "Training reward", rerun)


if __name__ == "__main__":
    main()
