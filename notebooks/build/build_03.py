from _nb import write

NAME = "03-bandit-alpha-mu.ipynb"

cells = [
("md", r"""
# 03 · Bandits: is α independent of μ? How good is the log surrogate? When is the update a policy?

Three checks of the paper's claims (decoupling, surrogate quality, Prop 6.4), on exactly enumerated K-armed bandits
(`opo_theory.bandit.experiments`):

1. **`grid`**: the paper says OPO *decouples* sampling geometry (α) from
   optimization geometry (μ): the convergence rate should depend on μ only ($|1-\eta\mu|$ per step,
   Cor 6.2) and the final reward on α only. We run α ∈ {0.3, 0.6, 0.9} × μ ∈ {0.5, 1, 2} over many
   random bandits (seeds) and measure the rate in function space, the rate in parameter (logit)
   space, and the final reward, then split their variance into α and μ main effects with bootstrap
   95% CIs over seeds.
2. **`approx`**: exact ratio loss (eq 15) vs log surrogate (eq 19) as the trust
   region grows (step size η, number of inner steps): $E[\Delta^3]$, loss gap, gradient cosine.
3. **`positivity`** (Prop 6.4): how often the closed-form update $\pi_k(1 + (\tilde w - \bar w)/\mu)$
   leaves the simplex, whether Prop 6.4's condition predicts it, and the bounded projection.

`OPO_NOTEBOOK_SMALL=1` uses small grids (8 seeds, 10 arms) so the notebook runs in seconds; the
numbers quoted in the text are printed by the cells, so they stay true in either mode.
"""),
("code", r"""
%matplotlib inline
import os

import matplotlib.pyplot as plt
import numpy as np

from opo_theory.bandit.experiments import approx, grid, positivity
from opo_theory.claims.toy import judge_grid

SMALL = os.environ.get("OPO_NOTEBOOK_SMALL") == "1"
GRID_KW = dict(inner_sweep=(5, 50, 300), **(dict(seeds=8, arms=10, outer=10, n_boot=50) if SMALL else {}))   # defaults: 32 seeds, 20 arms, 30 outer, 200 boot; sweep (5, 50)
APPROX_KW = dict(arms=20, seeds=4) if SMALL else dict()                              # defaults: 50 arms, 8 seeds
POS_KW = dict(instances=200) if SMALL else dict()                                    # default: 2000 instances
print("small mode:", SMALL)
"""),
("md", r"""
## 1. The α × μ grid
"""),
("code", r"""
from opo_theory.bandit.progress import reporting

with reporting():        # the notebook's longest cell (its runs of 5, 50 and 300 inner steps): one line per run
    g = judge_grid(grid(**GRID_KW))
cfg = g["config"]
alphas, mus = cfg["alphas"], cfg["mus"]
print({k: v for k, v in cfg.items()})
"""),
("code", r"""
def heatmap(ax, data, title, fmt="{:.3f}"):
    data = np.asarray(data)
    im = ax.imshow(data, cmap="viridis", origin="lower", aspect="auto")
    ax.set_xticks(range(len(mus)), [f"μ={m}" for m in mus])
    ax.set_yticks(range(len(alphas)), [f"α={a}" for a in alphas])
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            light = im.norm(data[i, j]) > 0.6 if np.ptp(data) > 0 else False      # dark text on light cells
            ax.text(j, i, fmt.format(data[i, j]), ha="center", va="center", color="k" if light else "w", fontsize=9)
    ax.set_title(title, fontsize=10)
    plt.colorbar(im, ax=ax, fraction=0.046)

fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
heatmap(axes[0], g["function_rate"], "function-space rate per inner step")
heatmap(axes[1], g["param_rate_first_outer"], "parameter-space rate (1st outer iteration)")
heatmap(axes[2], g["final_reward"], f"final reward after {cfg['outer']} outer iterations")
fig.tight_layout(); plt.show()
"""),
("md", r"""
### Function-space rate vs theory $|1-\eta\mu|$

In function space ($v$ coordinates) the inner gradient descent on the surrogate should contract the
error by exactly $|1 - \eta\mu|$ per step, whatever α is.
"""),
("code", r"""
f_rate = np.asarray(g["function_rate"])
theory = np.asarray(g["theory_rate"])
p_rate = np.asarray(g["param_rate_first_outer"])
fig, ax = plt.subplots(figsize=(5, 3.6))
for rate, style, label in ((f_rate, "o", "function space"), (p_rate, "s--", "parameter space")):
    mid = rate.mean(0)       # the alpha rows (the heatmaps above) agree closely: their spread as error bars
    ax.errorbar(mus, mid, yerr=np.maximum(0, [mid - rate.min(0), rate.max(0) - mid]), fmt=style, ms=6, capsize=3,
                label=f"{label} (range over α = {', '.join(map(str, alphas))})")
ax.plot(mus, theory[0], "k-", lw=1, label="|1 − ημ|")
ax.set_xlabel("μ"); ax.set_ylabel("contraction factor per inner step")
ax.set_title(f"η = {cfg['eta']}"); ax.legend(fontsize=7); fig.tight_layout(); plt.show()
print(f"max |function-space rate - |1 - eta mu|| over all runs: {g['function_rate_max_dev']:.2e}")
print("parameter-space rate (rows alpha, cols mu):\n", np.round(p_rate, 4))
print("1 - parameter-space rate, divided by eta*mu:\n", np.round((1 - p_rate) / (cfg["eta"] * np.asarray(mus)), 4))
print("1/arms =", 1 / cfg["arms"])
"""),
("code", r"""
from IPython.display import Markdown, display

step_scale = (1 - p_rate) / (cfg["eta"] * np.asarray(mus))
display(Markdown(
    f"**Reading** (computed). In function space the rate equals $|1-\\eta\\mu|$ to within "
    f"{g['function_rate_max_dev']:.1e} in every cell, whatever α: Cor 6.2 as stated. In **parameter space** (the "
    f"logits, which a real optimizer updates) the rate is "
    f"{'slower than' if (p_rate > theory).all() else 'not everywhere slower than'} $|1-\\eta\\mu|$: "
    f"$(1 - \\text{{rate}})/(\\eta\\mu)$ lies in [{step_scale.min():.3f}, {step_scale.max():.3f}] against "
    f"$1/K$ = {1 / cfg['arms']:.3f} for K = {cfg['arms']} arms, i.e. the softmax Jacobian rescales the effective step "
    f"size. Across the α rows the rate moves by at most {np.ptp(p_rate, axis=0).max():.2g}; across the μ columns by "
    f"up to {np.ptp(p_rate, axis=1).max():.2g} (variance shares below)."))
"""),
("code", r"""
curves = np.asarray(g["reward_curves"])           # [outer + 1, alphas, mus]
fig, axes = plt.subplots(1, len(alphas), figsize=(12, 3.2), sharey=True)
for i, a in enumerate(alphas):
    for j, m in enumerate(mus):
        axes[i].plot(curves[:, i, j], label=f"μ={m}")
    axes[i].set_title(f"α = {a}"); axes[i].set_xlabel("outer iteration")
axes[0].set_ylabel("expected reward (mean over seeds)"); axes[0].legend(fontsize=8)
fig.tight_layout(); plt.show()
"""),
("md", r"""
### Variance shares: how much of the spread is α, how much μ?

`independence[metric]` gives the share of the total variance (over α × μ × seeds) explained by the
α main effect and by the μ main effect, with 95% bootstrap CIs over seeds. "Rate depends on μ only"
predicts μ-share ≈ 1 for the rate; "final accuracy depends on α only" predicts a large α-share and
μ-share ≈ 0 for the reward. Whatever is left is seed-to-seed (bandit instance) variance and
interaction.
"""),
("code", r"""
ind = g["independence"]
print(f"{'metric':14s} {'alpha share':>12s} {'95% CI':>22s} {'mu share':>10s} {'95% CI':>22s}")
for metric, s in ind.items():
    ci_a = f"[{s['alpha_ci95'][0]:.4f}, {s['alpha_ci95'][1]:.4f}]"
    ci_m = f"[{s['mu_ci95'][0]:.4f}, {s['mu_ci95'][1]:.4f}]"
    print(f"{metric:14s} {s['alpha_share']:12.4f} {ci_a:>22s} {s['mu_share']:10.4f} {ci_m:>22s}")

fig, ax = plt.subplots(figsize=(6, 3.4))
x = np.arange(len(ind))
for k, (key, color) in enumerate((("alpha", "C0"), ("mu", "C1"))):
    vals = np.array([s[f"{key}_share"] for s in ind.values()])
    lo = vals - np.array([s[f"{key}_ci95"][0] for s in ind.values()])
    hi = np.array([s[f"{key}_ci95"][1] for s in ind.values()]) - vals
    ax.bar(x + (k - 0.5) * 0.35, vals, 0.35, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)],
           capsize=4, color=color, label=f"{key} share")
ax.set_xticks(x, list(ind)); ax.set_ylabel("share of variance"); ax.set_ylim(0, 1.05)
ax.legend(); fig.tight_layout(); plt.show()

rew = ind["final_reward"]
print(f"final reward: unexplained by the alpha and mu main effects: {1 - rew['alpha_share'] - rew['mu_share']:.3f} "
      "(seed-to-seed variance + interaction)")
"""),
("code", r"""
rate = ind["param_rate"]
summ = g["summary"]
by_alpha = np.asarray(g["final_reward"]).mean(1)            # mean over mu of each alpha row
ci = lambda c: f"[{c[0]:.2f}, {c[1]:.2f}]"
display(Markdown(
    f"**Reading** (computed). Rate: μ explains {rate['mu_share']:.2f} {ci(rate['mu_ci95'])} of the parameter-space "
    f"rate's variance, α {rate['alpha_share']:.2f} {ci(rate['alpha_ci95'])}. Final reward: μ explains "
    f"{rew['mu_share']:.2f} {ci(rew['mu_ci95'])}, α {rew['alpha_share']:.2f} {ci(rew['alpha_ci95'])}, the rest "
    f"({1 - rew['alpha_share'] - rew['mu_share']:.2f}) is variance between bandit instances plus interaction; the "
    f"highest final reward is at α = {alphas[int(np.argmax(by_alpha))]} (mean over μ). Rule: {summ['rule']}. "
    f"Verdict for these settings: **{summ['verdict']}** (holds for {', '.join(map(str, summ['holds_for_inner'])) or 'no'} "
    f"inner steps per outer iteration). This is an exact-gradient, fixed-budget toy; in parameter space the "
    "α-independence of the curvature is only approximate (notebook 01, `parameter-transfer`)."))
"""),
("md", r"""
## 2. Exact loss vs log surrogate as the trust region grows

After `inner` surrogate steps of size η from the anchor, `approx()` compares the exact OPO loss
(eq 15) and the surrogate (eq 19) at the reached policy: $E[\Delta^3]$ (the quantity the paper
suggests monitoring, threshold 0.1), the loss gap, and the cosine between the two gradients.
Large η·inner leaves the region where $v\approx\Delta$ (the surrogate's $\Delta^2$ penalty does not keep the
policy in a trust region in parameter space); the reading below says how far the runs went.
"""),
("code", r"""
ap = approx(**APPROX_KW)
rows = ap["rows"]
etas, inners = ap["config"]["etas"], ap["config"]["inner_steps"]
print(ap["config"])
print(f"\n{'eta':>6s} {'inner':>5s} {'E[D^3]':>11s} {'delta_inf':>11s} {'loss_gap':>11s} {'grad_cos':>9s} {'lemma ok':>9s}")
for r in rows:
    print(f"{r['eta']:6g} {r['inner']:5d} {r['E_delta3']:11.3g} {r['delta_inf']:11.3g} {r['loss_gap']:11.3g} "
          f"{r['grad_cos']:9.3f} {str(r['lemma_holds']):>9s}")
print("\nfirst (eta, inner) with |E[Delta^3]| > 0.1:", ap["first_above_0.1"])
"""),
("code", r"""
fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
for inner in inners:
    sel = [r for r in rows if r["inner"] == inner]
    eta = [r["eta"] for r in sel]
    axes[0].loglog(eta, [abs(r["E_delta3"]) for r in sel], "o-", label=f"{inner}")
    axes[1].loglog(eta, [abs(r["loss_gap"]) for r in sel], "o-", label=f"{inner}")
    axes[2].semilogx(eta, [r["grad_cos"] for r in sel], "o-", label=f"{inner}")
axes[0].axhline(0.1, color="k", ls=":", lw=1); axes[0].text(etas[0], 0.13, "paper's 0.1 threshold", fontsize=8)
axes[0].set_title("|E[Δ³]|"); axes[1].set_title("|exact − surrogate loss|"); axes[2].set_title("cos(∇ exact, ∇ surrogate)")
cos = [r["grad_cos"] for r in rows if np.isfinite(r["grad_cos"])]
axes[2].set_ylim(min(-0.05, min(cos, default=0) - 0.05), 1.05)       # every point inside the axes
for ax in axes:
    ax.set_xlabel("η (step size)")
axes[1].legend(fontsize=8, title="inner steps", title_fontsize=8)          # one legend: the same three lines
fig.tight_layout(); plt.show()
"""),
("code", r"""
# Is |E[Delta^3]| < 0.1 a reliable "the surrogate is fine" signal?
misleading = [r for r in rows if abs(r["E_delta3"]) <= 0.1 and np.isfinite(r["grad_cos"]) and r["grad_cos"] < 0.9]
print(f"{len(misleading)} of {len(rows)} settings have |E[Delta^3]| <= 0.1 but gradient cosine < 0.9:")
for r in misleading:
    print(f"  eta={r['eta']:g}, inner={r['inner']}: E[D^3]={r['E_delta3']:.3g}, delta_inf={r['delta_inf']:.3g}, grad_cos={r['grad_cos']:.3f}")
"""),
("code", r"""
finite = [r for r in rows if np.isfinite(r["grad_cos"])]
small = min(rows, key=lambda r: r["eta"] * r["inner"])
worst = min(finite, key=lambda r: r["grad_cos"])
in_domain = [r for r in rows if r["lemma_holds"] is not None]
display(Markdown(
    f"**Reading** (computed). At the smallest trust region (η = {small['eta']:g}, {small['inner']} inner step(s)) "
    f"the gradient cosine is {small['grad_cos']:.4f}. Lemma A.1's pointwise bound holds in "
    f"{sum(r['lemma_holds'] for r in in_domain)} of the {len(in_domain)} settings where it applies (δ < 1). The "
    f"lowest cosine is {worst['grad_cos']:.3f} (η = {worst['eta']:g}, {worst['inner']} inner steps); the largest "
    f"$\\|\\Delta\\|_\\infty$ reached is {max(r['delta_inf'] for r in rows):.3g}; "
    f"{len(rows) - len(finite)} of {len(rows)} settings give no finite cosine. {len(misleading)} setting(s) keep "
    f"$|E[\\Delta^3]| \\le 0.1$ while the cosine is below 0.9 (listed above)"
    + (": there $E[\\Delta^3]$, a signed third moment in which positive and negative log-ratios cancel, is a poor "
       "monitor, and $\\|\\Delta\\|_\\infty$ or $E[\\Delta^2]$ would be safer." if misleading else ".")))
"""),
("md", r"""
## 3. Positivity of the closed-form update (Prop 6.4)
"""),
("code", r"""
pos = positivity(**POS_KW)
print(pos["config"])
print(f"\n{'adv scale':>9s} {'mu':>5s} {'frac negative':>13s} {'Prop 6.4 agrees':>15s} {'bounded min':>11s} "
      f"{'bounded sum err':>15s} {'frac zeroed':>11s}")
for r in pos["table"]:
    print(f"{r['scale']:9g} {r['mu']:5g} {r['frac_negative']:13.3f} {r['prop64_agreement']:15.3f} "
          f"{r['bounded_min']:11.2e} {r['bounded_sum_err']:15.1e} {r['bounded_frac_zeroed']:11.3f}")
print("\nProp 6.4's condition predicts negativity exactly in every cell:", pos["all_agree"])
print("bounded projection never negative:", pos["bounded_never_negative"])
"""),
("code", r"""
scales, pmus = pos["config"]["advantage_scales"], pos["config"]["mus"]
frac = np.array([[next(r["frac_negative"] for r in pos["table"] if r["scale"] == s and r["mu"] == m)
                  for m in pmus] for s in scales])
fig, ax = plt.subplots(figsize=(6, 3.8))
im = ax.imshow(frac, origin="lower", cmap="magma", vmin=0, vmax=1, aspect="auto")
ax.set_xticks(range(len(pmus)), [str(m) for m in pmus]); ax.set_yticks(range(len(scales)), [str(s) for s in scales])
for i in range(len(scales)):
    for j in range(len(pmus)):
        ax.text(j, i, f"{frac[i, j]:.2f}", ha="center", va="center", color="w" if frac[i, j] < 0.6 else "k", fontsize=8)
ax.set_xlabel("μ"); ax.set_ylabel("advantage scale")
ax.set_title("fraction of instances where the closed form leaves the simplex", fontsize=10)
plt.colorbar(im, ax=ax); fig.tight_layout(); plt.show()
"""),
("code", r"""
table = pos["table"]
at = lambda scale, mu: next(r["frac_negative"] for r in table if r["scale"] == scale and r["mu"] == mu)
display(Markdown(
    f"**Reading** (computed). Prop 6.4's condition $\\mu \\ge \\bar w - \\min\\tilde w$ predicts whether "
    f"$\\pi_{{k+1}}$ has a negative entry in {min(r['prop64_agreement'] for r in table):.1%} of the instances of the "
    f"worst cell ({'exactly, in every cell' if pos['all_agree'] else 'not exactly everywhere'}). The condition is "
    f"not automatic: at μ = 1 the closed form leaves the simplex in {at(1.0, 1.0):.0%} of instances at unit "
    f"advantage scale and {at(2.0, 1.0):.0%} at scale 2; at μ = 0.5 (GOPO's) in {at(1.0, 0.5):.0%} at unit scale. "
    f"The bounded projection (GOPO's $v \\ge -1$ with re-solved $\\lambda^*$): smallest probability "
    f"{min(r['bounded_min'] for r in table):.2g}, largest |sum − 1| {max(r['bounded_sum_err'] for r in table):.1e} "
    f"({'never negative' if pos['bounded_never_negative'] else 'NEGATIVE somewhere'}), at the price of zeroing up "
    f"to {max(r['bounded_frac_zeroed'] for r in table):.0%} of the actions."))
"""),
]

if __name__ == "__main__":
    print(write(NAME, cells))
