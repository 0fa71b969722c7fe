"""`opo-theory bandit <experiment>`: run one toy experiment, print compact tables (or JSON).

Curves (long per-step or per-point series, see ``is_curve``) are left out of what is printed unless
``--curves`` is given; ``--out FILE`` always writes the full result. Experiments that compare objectives (those with an
``objectives`` parameter) take ``--objectives 'opo,grpo,dpo(beta=1)'`` (or ``--set objectives=...``: a
registered name, optionally with hyperparameters in parentheses, which also labels it) and ``--set objective.NAME.KEY=VALUE`` (applied to
every listed objective named NAME). The experiments print numbers only: verdicts on them are opo_theory.claims'
(``opo-theory claims``; ``claims.toy.judge_saturation`` and ``judge_grid`` for the saturation and grid results).
"""

from __future__ import annotations

import sys
import time

# The experiment names, kept here so that parsing needs no torch (tests check they match EXPERIMENTS).
EXPERIMENT_NAMES = ("approx", "dynamics", "grid", "kl-vs-chi2", "positivity", "saturation")
CURVE_LEN = 16


# What the printed tables and values mean, per experiment: printed under the result ("reading the output"),
# for the keys it shows.
LEGEND = {
    "saturation": {
        "drop_p": "first p = sigma(z) in [0.5, p_max] where u = -dL/dc, the gradient toward the rewarded response, "
                  "falls below threshold x its p = 0.5 value; None: it never drops below that (never saturates); "
                  "rows: objectives, columns: the coordinate c (logit z, delta = log pi/pi_ref, v = pi/pi_ref - 1)",
        "min_ratio": "min of u(p) / u(0.5) over p in [0.5, p_max] (same rows and columns); below 0: the gradient "
                     "turns away from the reward",
        "below_threshold": "the objectives whose drop_p is not None, per regime and coordinate",
        "sign_change_p": "first p where u changes sign (None: never)",
    },
    "dynamics": {
        "final_regret": "best arm's mean reward minus the policy's expected reward at the last step, mean over seeds",
        "grad_norm_first10": "gradient norm, mean over the first 10 steps and the seeds",
        "grad_norm_last20": "gradient norm, mean over the last 20 steps and the seeds",
    },
    "grid": {
        "function_rate": "error contraction per step of gradient descent in v (function space), mean over seeds",
        "theory_rate": "|1 - eta mu|, the rate Thm 6.1 predicts in v (no alpha)",
        "param_rate_first_outer": "contraction per inner step of the logit-space run in the first outer iteration",
        "final_reward": "expected reward after the last outer iteration, mean over seeds",
        "alpha_share": "share of the variance over alpha x mu x seeds explained by alpha's main effect "
                       "(mu_share: by mu's); *_ci95: 95% bootstrap interval over seeds",
    },
    "approx": {
        "E_delta3": "E[Delta³] after the surrogate steps (Lemma A.1's surrogate-quality monitor)",
        "delta_inf": "max |Delta| (delta of Lemma A.1)",
        "loss_gap": "exact loss (eq 15) minus surrogate loss (eq 19)",
        "grad_cos": "cosine between the exact and the surrogate gradients",
        "lemma_holds": "Lemma A.1's pointwise bounds hold (None: delta >= 1, outside the lemma's domain)",
        "lemma_tightness": "max |v - Delta| / (½ delta² e^delta) (<= 1 when the bound holds)",
        "above_threshold": "|E[Delta³]| > 0.1",
    },
    "positivity": {
        "frac_negative": "share of instances whose closed-form update pi_k (1 + (w~ - w_bar)/mu) has a negative entry",
        "prop64_agreement": "share of instances where Prop 6.4's condition mu >= w_bar - min w~ predicts that correctly",
        "bounded_min": "smallest probability of the bounded projection (>= 0 by construction)",
        "bounded_sum_err": "max |sum pi - 1| of the bounded projection",
        "bounded_frac_zeroed": "share of entries the bounded projection sets to 0",
    },
    "kl-vs-chi2": {
        "kl_max_ratio": "largest optimal ratio pi*/pi_ref under KL, e^(A/beta)/Z",
        "chi2_max_ratio": "largest ratio of the unbounded chi² optimum 1 + (A - Abar)/mu",
        "chi2_bounded_max_ratio": "largest ratio of the bounded chi² optimum (v >= -1)",
        "chi2_bounded_zero_frac": "share of arms the bounded chi² optimum sets to 0",
        "lambda_star": "the bounded optimum's multiplier lambda*",
        "kl_min_ratio": "smallest optimal ratio under KL",
        "kl_log_ratio_slope": "slope of log(kl_max_ratio) against the advantage scale (KL grows exponentially)",
        "chi2_ratio_slope": "slope of chi2_max_ratio against the advantage scale (chi² grows linearly)",
    },
}


def configure(name: str, p) -> None:
    p.add_argument("experiment", choices=EXPERIMENT_NAMES)
    p.add_argument("--json", action="store_true", help="print the result as JSON (curves only with --curves)")
    p.add_argument("--curves", action="store_true", help="include the curves (long per-step/per-point lists)")
    p.add_argument("--out", help="also write the full JSON result, curves included, to this file (atomically)")
    p.add_argument("--set", dest="settings", action="append", nargs="+", metavar="KEY=VALUE",
                   help="override experiment parameters (several after one --set, or --set repeated); "
                        "objective.NAME.KEY=VALUE sets a hyperparameter of objective NAME; see --list-settings")
    p.add_argument("--objectives", metavar="LIST",
                   help="objectives to compare (dynamics): comma list of NAME or NAME(KEY=VALUE,...); "
                        "the experiment comes first: bandit dynamics --objectives ...")
    p.add_argument("--list-settings", action="store_true", help="print the parameters and defaults")
    p.set_defaults(func=run)


def parse_objectives(text: str | None, overrides: list[str]) -> dict[str, dict] | None:
    """``--objectives`` and the ``objective.NAME.KEY=VALUE`` overrides -> {label: hyperparameters}, checked
    against the registry (None when neither is given: the experiment's own set)."""
    from opo_theory.objectives import get
    from opo_theory.settings import parse_overrides, parse_spec, split_top_level
    from opo_theory.validation import show

    if text is None:
        if overrides:
            raise ValueError(f"{show(overrides[0])} needs --objectives naming the objectives to compare")
        return None
    out: dict[str, dict] = {}
    for item in split_top_level(text):
        name, pairs = parse_spec(item, f"--objectives item {show(item)}")
        spec = get(name)
        defaults = dict(spec.make_config().__dict__)
        hyper = parse_overrides(pairs, defaults, f"objective {name}", once=True)
        if item in out:
            raise ValueError(f"--objectives lists {show(item)} more than once")
        out[item] = hyper
    if not out:
        raise ValueError(f"--objectives must name at least one objective, got {show(text)}")
    for pair in overrides:
        key = pair.split("=", 1)[0]
        name = key.removeprefix("objective.").rpartition(".")[0]
        targets = [label for label in out if label.partition("(")[0].strip() == name]
        if not targets:
            raise ValueError(f"--set {show(pair)}: objective {show(name)} is not in --objectives ({', '.join(out)})")
        spec = get(name)
        defaults = {f"objective.{name}.{k}": v for k, v in spec.make_config().__dict__.items()}
        for label in targets:
            out[label].update({k.rpartition(".")[2]: v for k, v in
                               parse_overrides([pair], defaults, f"objective {name}").items()})
    for label, hyper in out.items():
        get(label.partition("(")[0].strip()).make_config(**hyper)       # ranges, before any work
    return out


def run(args) -> int:
    import inspect

    from opo_theory.bandit.experiments import EXPERIMENTS
    from opo_theory.io import dumps_json, write_json_atomic
    from opo_theory.settings import flatten, function_defaults, parse_overrides, show_value
    from opo_theory.validation import require_output_file, show

    fn = EXPERIMENTS[args.experiment]
    takes_objectives = "objectives" in inspect.signature(fn).parameters
    defaults = {k: v for k, v in function_defaults(fn).items() if k != "objectives"}
    if args.list_settings:
        for k, v in defaults.items():
            print(f"{k} = {show_value(v)}")
        if takes_objectives:
            print("objectives: --objectives 'NAME,NAME(KEY=VALUE,...)' and --set objective.NAME.KEY=VALUE "
                  "(opo-theory objectives lists them)")
        return 0
    pairs = flatten(args.settings)
    objective_pairs = [p for p in pairs if p.startswith("objective.")]
    objectives_text = args.objectives
    for pair in [p for p in pairs if p.startswith("objectives=")]:     # same as --objectives LIST
        objectives_text = pair.split("=", 1)[1]
        pairs.remove(pair)
    if not takes_objectives and (objectives_text is not None or objective_pairs):
        given = show(objective_pairs[0]) if objective_pairs else "--objectives"
        comparing = [n for n, f in EXPERIMENTS.items() if "objectives" in inspect.signature(f).parameters]
        raise ValueError(f"{given}: bandit {args.experiment} compares no objectives (those that do: "
                         f"{', '.join(comparing)})")
    kwargs = parse_overrides([p for p in pairs if p not in objective_pairs], defaults, f"bandit {args.experiment}")
    if takes_objectives:
        chosen = parse_objectives(objectives_text, objective_pairs)
        if chosen is not None:
            kwargs["objectives"] = chosen
    if args.out is not None:     # checked before the experiment runs, so a bad path costs nothing
        require_output_file("--out", args.out)
    start = time.perf_counter()
    given = "".join(f" {k}={show_value(v)}" for k, v in kwargs.items() if k != "objectives")
    print(f"bandit {args.experiment}: running{' with' + given if given else ''} (measured durations: README, "
          "Command line)", file=sys.stderr, flush=True)
    from opo_theory.bandit.progress import reporting

    with reporting():
        result = fn(**kwargs)
    result["seconds"] = round(time.perf_counter() - start, 3)
    print(f"bandit {args.experiment}: done in {result['seconds']:.1f} s", file=sys.stderr, flush=True)
    if args.out:
        write_json_atomic(args.out, result)
    shown = result if args.curves else without_curves(result)
    print(dumps_json(shown, indent=1) if args.json else render(shown) + legend(args.experiment, shown))
    return 0


def legend(experiment: str, shown: dict) -> str:
    """'reading the output:' and one line per LEGEND entry of ``experiment`` whose key the output shows."""
    keys = set()
    def collect(value) -> None:
        if isinstance(value, dict):
            keys.update(value)
            for v in value.values():
                collect(v)
        elif isinstance(value, list):
            for v in value:
                collect(v)
    collect(shown)
    lines = [f"  {key}: {text}" for key, text in LEGEND.get(experiment, {}).items() if key in keys]
    return "\n\nreading the output:\n" + "\n".join(lines) if lines else ""


def _numeric_shape(value) -> tuple[int, int] | None:
    """(nesting depth, number of numbers) of a nested list of numbers (None entries allowed), else None."""
    if not isinstance(value, list):
        return (0, 1) if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)) else None
    depth, count = 1, 0
    for v in value:
        shape = _numeric_shape(v)
        if shape is None:
            return None
        depth, count = max(depth, shape[0] + 1), count + shape[1]
    return depth, count


def is_curve(value) -> bool:
    """A per-step or per-point series: a list of more than CURVE_LEN numbers, a nested list deeper than a
    grid (3 levels), or a grid of more than CURVE_LEN² numbers."""
    shape = _numeric_shape(value) if isinstance(value, list) else None
    return shape is not None and (shape[0] > 2 or shape[1] > CURVE_LEN ** shape[0])


def without_curves(value):
    """``value`` with every curve removed (and the dicts left empty by that)."""
    if isinstance(value, dict):
        kept = {k: v if k == "config" else without_curves(v) for k, v in value.items() if not is_curve(v)}
        return {k: v for k, v in kept.items() if v != {} or value[k] == {}}
    if isinstance(value, list):
        return [without_curves(v) for v in value]
    return value


def fmt(value) -> str:
    """A cell: floats to 4 significant digits, lists inline."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        digits = 4                    # more where 4 would round onto 0 or ±1 (0.999999999 is not 1)
        while float(f"{value:.{digits}g}") in (0.0, 1.0, -1.0) and float(f"{value:.{digits}g}") != value and digits < 17:
            digits += 1
        return f"{value:.{digits}g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(f"{c:>{w}}" if i else f"{c:<{w}}" for i, (c, w) in enumerate(zip(cells, widths)))
    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def is_grid(value, config: dict) -> bool:
    """A [len(alphas)][len(mus)] nested list of numbers (the alpha x mu grid)."""
    a, m = config.get("alphas"), config.get("mus")
    return (isinstance(a, list) and isinstance(m, list) and isinstance(value, list) and len(value) == len(a)
            and all(isinstance(row, list) and len(row) == len(m) and all(isinstance(x, (int, float)) for x in row)
                    for row in value))


def is_records(value) -> bool:
    """A non-empty dict of non-empty dicts of plain values (rows named by the outer keys)."""
    return (isinstance(value, dict) and bool(value) and all(isinstance(v, dict) and v for v in value.values())
            and all(not isinstance(x, dict) for v in value.values() for x in v.values()))


def render(result: dict, config: dict | None = None, indent: str = "") -> str:
    """Compact text: config on one line, lists of records and dicts of records as tables, alpha x mu grids
    with alpha rows and mu columns, other values as ``key: value``."""
    if config is None:
        config = result.get("config") if isinstance(result.get("config"), dict) else {}
    out = []
    for key, value in result.items():
        if key == "config" and not indent:
            out.append("config: " + "; ".join(f"{k}={fmt(v)}" for k, v in value.items()))
        elif is_grid(value, config):
            rows = [[fmt(a), *map(fmt, row)] for a, row in zip(config["alphas"], value)]
            out += [f"{indent}{key} (rows alpha, columns mu):",
                    *(f"{indent}  {r}" for r in table(["alpha \\ mu", *map(fmt, config["mus"])], rows))]
        elif isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            cols = list(dict.fromkeys(k for r in value for k in r))
            out += [f"{indent}{key}:", *(f"{indent}  {r}" for r in table(cols, [[fmt(r.get(c)) for c in cols]
                                                                                for r in value]))]
        elif is_records(value):
            cols = list(dict.fromkeys(k for v in value.values() for k in v))
            rows = [[str(name), *(fmt(v.get(c)) for c in cols)] for name, v in value.items()]
            out += [f"{indent}{key}:", *(f"{indent}  {r}" for r in table(["", *cols], rows))]
        elif isinstance(value, dict) and value:
            out += [f"{indent}{key}:", render(value, config, indent + "  ")]
        else:
            out.append(f"{indent}{key}: {fmt(value)}")
    return "\n".join(out)
