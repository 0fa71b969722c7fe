"""Reproductions of published results that no one here wrote, each on the registry's own losses.

ipo_bandit       Azar et al. 2023 (arXiv 2310.12036): DPO vs IPO under deterministic preferences.
sparse           Lee, Choi & Oh 2018 (arXiv 1709.06293): regularisation error of sparse (Tsallis / chi²) vs
                 softmax (KL) regularised optima as the number of actions grows.
chipo_bandit     Huang et al. 2024 (arXiv 2407.13399): offline suboptimality vs sample size, DPO vs chiPO.
displacement     Razin et al. 2024 (arXiv 2410.08847): single-token likelihood displacement, and whether
                 OPO's and GOPO's quadratic ratio penalty displaces mass the same way.
preference       the shared machinery: tabular policies trained offline on fixed preference pairs.
"""
