"""Fig 9: validation accuracy in distribution and out of distribution vs step."""

from opo_theory.figures.runs import line_figure


def main(rerun: bool = False):
    return line_figure("fig9-ood", [("val/accuracy", "greedy accuracy, held-out train level", 1, False),
                                    ("val/ood_accuracy", "greedy accuracy, OOD level", 1, False)],
                       "Validation accuracy", rerun)


if __name__ == "__main__":
    main()
