"""Fig 1: the OPO projection geometry on a 3-outcome distribution (H_0, u* = w~/mu, lambda*, v*, chi² ball)."""

from __future__ import annotations

import numpy as np

from opo_theory.figures.style import new_figure, save_figure

NAME = "fig1-geometry"
CONFIG = {"pi_k": [0.5, 0.3, 0.2], "advantage": [1.5, -0.3, -1.2], "alpha": 0.3, "mu": 1.0,
          "coordinates": "isometric x_i = sqrt(pi_k(i)) v_i, so <f,g>_{pi_k} is the Euclidean dot"}


def escort_weights(pi_k: np.ndarray, advantage: np.ndarray, alpha: float) -> np.ndarray:
    """Def 3.1: w~_alpha = pi_k^(alpha-1) P*^(1-alpha) with P* ∝ exp(A)."""
    p_star = np.exp(advantage - advantage.max())
    p_star /= p_star.sum()
    return pi_k ** (alpha - 1.0) * p_star ** (1.0 - alpha)


def projection_geometry(pi_k, advantage, alpha, mu) -> dict:
    """Thm 3.5: u* = w~/mu, lambda* = E_{pi_k}[w~], v* = (w~ - lambda*)/mu (all in v-coordinates)."""
    w = escort_weights(pi_k, advantage, alpha)
    lam = float(pi_k @ w)
    u_star = w / mu
    v_star = (w - lam) / mu
    return {"w_tilde": w, "lambda_star": lam, "u_star": u_star, "v_star": v_star,
            "chi2_radius2": float(pi_k @ v_star**2)}


def main(rerun: bool = False):
    pi_k = np.array(CONFIG["pi_k"])
    geo = projection_geometry(pi_k, np.array(CONFIG["advantage"]), CONFIG["alpha"], CONFIG["mu"])
    s = np.sqrt(pi_k)
    normal = s                               # the constant function 1 in isometric coordinates
    u, v = s * geo["u_star"], s * geo["v_star"]
    assert abs(normal @ v) < 1e-12 and np.allclose(u - v, geo["lambda_star"] / CONFIG["mu"] * normal)

    fig, axes = new_figure(1, 1, width=5.5, height=5.0, subplot_kw={"projection": "3d"})
    ax = axes[0, 0]
    e1 = np.array([s[1], -s[0], 0.0]); e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    span = 1.3 * max(np.linalg.norm(u), 0.5)
    a, b = np.meshgrid(np.linspace(-span, span, 2), np.linspace(-span, span, 2))
    plane = a[..., None] * e1 + b[..., None] * e2
    ax.plot_surface(plane[..., 0], plane[..., 1], plane[..., 2], alpha=0.25, color="#1f77b4")
    radius = np.sqrt(geo["chi2_radius2"])
    theta = np.linspace(0, 2 * np.pi, 200)
    ring = radius * (np.cos(theta)[:, None] * e1 + np.sin(theta)[:, None] * e2)
    ax.plot(*ring.T, color="#2ca02c", lw=1.2, label=r"$\chi^2$ ball $\|v\|^2=\|v^*\|^2$")
    ax.quiver(0, 0, 0, *(0.6 * normal), color="k", arrow_length_ratio=0.1, label=r"normal $\mathbf{1}$")
    ax.quiver(0, 0, 0, *u, color="#ff7f0e", arrow_length_ratio=0.08, label=r"$u^*=\tilde w/\mu$")
    ax.quiver(0, 0, 0, *v, color="#d62728", arrow_length_ratio=0.08, label=r"$v^*=P_{H_0}u^*$")
    ax.plot(*np.stack([u, v]).T, ls="--", color="#9467bd",
            label=rf"drop $\lambda^*/\mu={geo['lambda_star'] / CONFIG['mu']:.3f}$")
    ax.set_xlabel(r"$\sqrt{\pi_1}v_1$"); ax.set_ylabel(r"$\sqrt{\pi_2}v_2$"); ax.set_zlabel(r"$\sqrt{\pi_3}v_3$")
    ax.set_title(r"$H_0=\{E_{\pi_k}[v]=0\}$: $v^*$ is the orthogonal projection of $u^*$")
    ax.legend(loc="upper left", fontsize=7)
    ax.view_init(elev=40, azim=-5)         # the plane H_0 seen nearly face-on
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):   # mplot3d turns labels with the axis (x read upside down here)
        axis.set_rotate_label(False)
    ax.xaxis.label.set_rotation(0); ax.yaxis.label.set_rotation(0); ax.zaxis.label.set_rotation(90)
    ax.xaxis.labelpad = 12
    ax.set_box_aspect((1, 1, 1))
    data = {k: (val.tolist() if isinstance(val, np.ndarray) else val) for k, val in geo.items()}
    data["u_isometric"], data["v_isometric"] = u.tolist(), v.tolist()
    return save_figure(fig, NAME, data, CONFIG)


if __name__ == "__main__":
    main()
