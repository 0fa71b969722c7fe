"""Fig 6: pre-clip gradient norm vs step (LM compare runs)."""

from opo_theory.figures.runs import line_figure


def main(rerun: bool = False):
    return line_figure("fig6-gradnorm", [("grad/norm", "pre-clip grad norm (5-step average)", 5, True)],
                       "Gradient norm", rerun)


if __name__ == "__main__":
    main()
