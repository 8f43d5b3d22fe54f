# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. Measuring bias
#
# Every later chapter of this course reports a handful of numbers about a model and the groups
# it serves. This chapter defines each of them exactly, on predictions that **we construct**, so
# that each metric's behaviour is visible: we turn one dial at a time (how biased the labels are,
# how much a "model" leans on group membership, how confident it is) and watch the metric move.
#
# ```{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. compute per-group accuracy, its variance and the worst-group accuracy, and say what the
#    variance hides;
# 2. compute directional bias amplification BiasAmp$_{A\to T}$ {cite:p}`wang2021directional`
#    and the pruning paper's BA {cite:p}`iofinova2023pruned`, and predict their sign;
# 3. measure systematic bias: threshold calibration bias, uncertainty, expected calibration
#    error with a reliability diagram, and label interrelation;
# 4. compute the Bias Transfer Score {cite:p}`ranjit2023variation` and judge how much to trust it;
# 5. recognise the pitfalls: ties, tiny groups and base rates.
# ```

# %% tags=["colab-setup"]
# Colab setup: installs fairlib from this course's repository, inside Colab only (a no-op
# elsewhere). Never `pip install fairlib`: that name on PyPI is an unrelated project.
import sys

if "google.colab" in sys.modules:
    import subprocess

    REPO = "https://github.com/fairlib-course/bias-in-vision"
    subprocess.run(["git", "clone", "--depth", "1", REPO, "/content/course"], check=False)
    # the [colab] extra: the fetchers' and Chapter 4's dependencies, which Colab may not preinstall
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "/content/course[colab]"], check=True)
    sys.path.insert(0, "/content/course")  # makes data_scripts importable

# %% tags=["parameters"]
import os

PROFILE = os.environ.get("FAIRLIB_PROFILE", "quick")
SEED = 0

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

import fairlib
from fairlib import metrics as M
from fairlib import sweep
from fairlib import synthetic as S
from fairlib.notebook import glue, interactive
from fairlib.plan import plan
from fairlib.plotting import reliability_diagram
from fairlib.synthetic import (
    simulate_association_scores,
    simulate_group_predictions,  # noqa: F401 (for exercise ex-tiny)
    simulate_multilabel,
    simulate_predictions,
)

# Only sizes differ between the profiles: this chapter's data are constructed in both
# (fairlib.synthetic.SETTINGS).
cfg = fairlib.select(S.SETTINGS, PROFILE)
rng = fairlib.seed_everything(SEED)
NOTE = fairlib.profile_note(PROFILE)
print(f"profile={PROFILE}: {cfg}")
print(plan("01_measuring_bias", PROFILE).summary())  # runs and time, computed from the code

# %% [markdown]
# ## The idea
#
# A *bias metric* compares what a model predicts for one group with what it predicts for
# another, or with what the labels say. Two families recur in this course:
#
# - **Category bias**: differences *between groups*, e.g. accuracy per group, or whether the
#   model exaggerates an association between a group and a label (bias amplification).
# - **Systematic bias**: errors that are *not tied to one group* but make category bias likely:
#   under-predicting rare labels, over-confidence, uncertainty, outputs that move together
#   {cite:p}`iofinova2023pruned`.
#
# All data in this chapter are constructed by `fairlib.synthetic` (see its docstrings for the
# exact generative process): two groups $a\in\{0,1\}$, a binary label $t$ and a toy scoring model
#
# $$x = (2t-1)\,s + \ell\,(2a-1) + o + \varepsilon,\qquad \varepsilon\sim\mathcal N(0,1),
# \qquad \hat t = [x>0],$$
#
# whose *signal* $s$ sets its accuracy, whose *lean* $\ell$ pushes group 1 towards positive
# predictions whatever the truth, and whose *offset* $o$ shifts every score. The labels have a
# *label bias* $\varepsilon$: $P(t=1\mid a=1) = r+\varepsilon$ and $P(t=1\mid a=0) = r-\varepsilon$
# around a base rate $r$.

# %% [markdown]
# ## Per-group accuracy and its variance
#
# The simplest category-bias measure is accuracy per group,
# $\mathrm{acc}_g = \frac{1}{n_g}\sum_{i: a_i = g}[\hat t_i = t_i]$. The adversarial-invariance
# paper {cite:p}`teru2019reducing` summarises five of them by their **sample variance in
# percentage points**,
#
# $$\mathrm{Var} = \frac{1}{G-1}\sum_{g}\bigl(100\,\mathrm{acc}_g - \overline{100\,\mathrm{acc}}\bigr)^2 ,$$
#
# (`fairlib.metrics.accuracy_variance`), where every group counts once, whatever its size.
# A worked example with two groups of three:

# %%
example = pd.DataFrame(
    {"group": ["a", "a", "a", "b", "b", "b"], "target": [1, 0, 0, 1, 0, 1], "pred": [1, 1, 0, 1, 0, 1]}
)
acc = M.group_accuracy(example.target, example.pred, groups=example.group)
var = M.accuracy_variance(example.target, example.pred, groups=example.group)
print(acc.to_string(), f"\nvariance = {var:.2f} pp²  (by hand: (100 - 66.67)² / 2 = 555.56)")

# %% [markdown]
# **Dialling it up.** Five groups whose true accuracies spread further and further apart. The
# variance grows with the *square* of the spread, and the worst-group accuracy falls. But the
# variance has a floor that is not bias at all: with $n_g$ test examples per group, sampling noise
# alone gives each accuracy a variance of about $p(1-p)/n_g$, i.e.
# $10^4\,p(1-p)/n_g$ pp². Small groups make the metric noisy.

# %%
# 474 per group is the paper's test split; every (spread, size, repeat) is one run of the sweep
var_runs = sweep.run(S.run_group_accuracy, S.group_accuracy_grid(PROFILE),
                     store=sweep.default_store("01_measuring_bias", "group_accuracy"), progress=False)
var_runs["sizes"] = var_runs.per_group.map({474: "474 per group", 20: "20 per group"})
summary = var_runs.groupby(["sizes", "spread"])[["variance", "worst"]].agg(["mean", "std"])
floor_474 = 1e4 * 0.88 * 0.12 / 474
glue("floor_474", floor_474)
glue("blind_var_20", summary.loc["20 per group"][("variance", "mean")].iloc[0])

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for label, color in (("474 per group", "C0"), ("20 per group", "C3")):
    s = summary.loc[label]
    axes[0].errorbar(100 * s.index, s[("variance", "mean")], yerr=s[("variance", "std")], color=color,
                     label=label, capsize=2)
    axes[1].errorbar(100 * s.index, 100 * s[("worst", "mean")], yerr=100 * s[("worst", "std")], color=color,
                     label=label, capsize=2)
axes[0].axhline(1e4 * 0.88 * 0.12 / 20, color="C3", ls=":", lw=1)
axes[0].axhline(1e4 * 0.88 * 0.12 / 474, color="C0", ls=":", lw=1)
axes[0].set(xlabel="true accuracy spread ± (pp)", ylabel="accuracy variance (pp²)", title="variance")
axes[1].set(xlabel="true accuracy spread ± (pp)", ylabel="worst-group accuracy (%)", title="worst group")
axes[0].legend()
fig.suptitle(f"Per-group accuracy on constructed predictions ({NOTE}); dotted: noise floor")
fig.tight_layout()
plt.show()

# %% [markdown]
# With no true difference at all, groups of 20 already show an average variance of
# {glue:text}`blind_var_20:.1f` pp², while groups of 474 have a noise floor of about
# {glue:text}`floor_474:.2f` pp². Keep these floors in mind when we compare with the paper below.
#
# ```{admonition} Pitfall: what the variance hides
# :class: warning
# The variance is symmetric in the groups and blind to their sizes: a model that is 10 points
# worse on one small group and a model that is 2.5 points worse on four groups can have similar
# variances. Always report the worst-group accuracy (and the largest gap) beside it.
# ```

# %% [markdown]
# ## Directional bias amplification, BiasAmp$_{A\to T}$
#
# A model *amplifies* bias when it predicts a label for a group at a higher rate than the labels
# themselves do. Wang and Russakovsky's directional measure {cite:p}`wang2021directional`, as
# used in the controlled study of {cite:t}`hall2022systematic` (Eq. 1–3), is
#
# $$\mathrm{BiasAmp}_{A\to T} = \frac{1}{|A||T|}\sum_{a\in A,\,t\in T} y_{at}\,\Delta_{at} - (1-y_{at})\,\Delta_{at},$$
#
# $$\Delta_{at} = P(\hat T_t = 1\mid A_a = 1) - P(T_t=1\mid A_a=1),\qquad
# y_{at} = \bigl[P(T_t=1, A_a=1) > P(T_t=1)\,P(A_a=1)\bigr].$$
#
# $y_{at}$ says in which direction the labels are biased; $\Delta_{at}$ says how far the
# predictions moved; the sign flips $\Delta_{at}$ so that moving *with* the existing bias counts
# as positive. `fairlib.metrics.bias_amplification` decides $y_{at}$ from exact integer counts
# ($n_{at}N > n_a n_t$) so that floating-point rounding can never flip it, and
# `bias_amplification_table` shows every term. A worked example: group 0 is 3/4 positive, group 1
# is 1/4 positive, and the model predicts each group's majority label.

# %%
g = [0, 0, 0, 0, 1, 1, 1, 1]
t = [1, 1, 1, 0, 1, 0, 0, 0]
p = [1, 1, 1, 1, 0, 0, 0, 0]
table = M.bias_amplification_table(t, p, groups=g)
display(table)
worked = M.bias_amplification(t, p, groups=g)
glue("worked_biasamp", worked)

# %% [markdown]
# Each of the four terms moves 1/4 towards the existing bias, so BiasAmp$_{A\to T}$ =
# {glue:text}`worked_biasamp:.2f`: the model has turned a 75/25 association into a 100/0 one.
#
# **Dialling it up.** Now $n$ constructed examples with label bias $\varepsilon$ and a model that
# leans on the group by $\ell$:

# %%
# every (label bias, lean, repeat) is one run of the sweep
amp_runs = sweep.run(S.run_biasamp, S.biasamp_grid(PROFILE), store=sweep.default_store("01_measuring_bias", "biasamp"),
                     progress=False)
amp = amp_runs.groupby(["label_bias", "lean"])["biasamp"].agg(["mean", "std"]).reset_index()
blind = amp[(amp.label_bias == 0.2) & np.isclose(amp.lean, 0)]["mean"].iloc[0]
blind_acc = (simulate_predictions(cfg["n"], label_bias=0.2, seed=SEED).eval("target == pred")).mean()
glue("blind_amp", blind)
glue("blind_acc", 100 * blind_acc)
glue("blind_theory", (1 - blind_acc) * (1 - 2 * 0.7))

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
for eps, d in amp[amp.label_bias > 0].groupby("label_bias"):
    axes[0].plot(d.lean, d["mean"], marker=".", label=f"label bias ε = {eps}")
    axes[0].fill_between(d.lean, d["mean"] - d["std"], d["mean"] + d["std"], alpha=0.2)
zero = amp_runs[amp_runs.label_bias == 0]
axes[1].scatter(zero.lean, zero.biasamp, s=8, alpha=0.5, color="C7", label="one sample each")
for ax in axes:
    ax.axhline(0, color="grey", lw=1)
    ax.axvline(0, color="grey", lw=1, ls=":")
    ax.set_xlabel("model's lean on the group, ℓ")
axes[0].set(ylabel="BiasAmp$_{A→T}$", title="ε > 0: mean ± sd over samples")
axes[1].set(title="ε = 0: the direction y_at is sampling noise")
axes[0].legend(fontsize=8)
axes[1].legend(fontsize=8)
fig.suptitle(f"BiasAmp of constructed predictions ({NOTE})")
fig.tight_layout()
plt.show()

# %% [markdown]
# Two things to notice. First, with no label bias ($\varepsilon=0$, right panel) each sample
# still tilts slightly one way, $y_{at}$ follows that tilt, and BiasAmp jumps between $+|x|$ and
# $-|x|$ from sample to sample: with a negligible label bias the *sign* of the metric is noise.
# Take the direction from a split with a clear bias (`reference=`) or report the spread.
# Second, a **group-blind model is not at zero**: at $\ell=0$ and $\varepsilon=0.2$, BiasAmp is {glue:text}`blind_amp:.3f`. An imperfect
# classifier (here {glue:text}`blind_acc:.1f`% accurate) makes errors in both directions, which
# pulls each group's positive rate towards 1/2. With a true positive rate $p_a$ and symmetric
# errors, $\Delta_{a1} = (1-\mathrm{acc})(1-2p_a)$, here about {glue:text}`blind_theory:.3f`:
# negative amplification, i.e. *dampening*, by accuracy alone. Hall et al. see the mirror image of
# this on CIFAR-100, where group membership itself is not always recognised
# {cite:p}`hall2022systematic`.
#
# Try the dials yourself (in Colab or Jupyter the slider below is live; the book shows the
# static sweep above instead):

# %%
if interactive():
    from functools import partial

    import ipywidgets as widgets

    widgets.interact(partial(S.explore_biasamp, n=cfg["n"], seed=SEED), label_bias=(0.0, 0.45, 0.05),
                     lean=(-2.0, 2.0, 0.1), signal=(0.0, 3.0, 0.25))
else:
    print("Static build: see the sweep above; run the notebook to get the sliders.")

# %% [markdown]
# ```{admonition} Pitfalls of BiasAmp
# :class: warning
# - **Base rates.** $y_{at}$ is decided by a strict inequality. A perfectly balanced split
#   ($n_{at}N = n_a n_t$) counts as "no positive association", so *any* shift is scored as
#   $-\Delta$. Deciding this from rounded floats would flip the sign at random, which is why
#   fairlib compares integer counts.
# - **Which split decides $y_{at}$.** Hall et al. measure both terms on the test set; pass
#   `reference=(train_targets, train_groups)` to take the direction from the training labels.
# - **Averages hide terms.** The mean over $|A||T|$ pairs can be small while one pair is large:
#   look at `bias_amplification_table`.
# ```

# %% [markdown]
# ## Bias amplification with a test-set baseline (BA)
#
# The pruning study {cite:p}`iofinova2023pruned` asks a narrower question about one binary
# attribute (e.g. *Smiling*) and one binary identity category $I$ (e.g. *Male*): among the
# examples predicted positive, is the share belonging to the associated identity larger than
# among the truly positive ones?
#
# $$\mathrm{BA} = \frac{N(\hat y = 1, I = g^*)}{N(\hat y = 1)} - \frac{N(y=1, I=g^*)}{N(y=1)},$$
#
# where $g^*$ is the identity value with the higher positive rate in the *training* labels.
# Because the baseline is the test labels, BA separates what the model does from what the test
# data contain. It is not computed (NaN) when the attribute has fewer than 10 test positives in
# either identity group, or when the training rates differ by less than 10% relative.

# %%
leans = np.sort(amp_runs.lean.unique())
rows = []
for lean in leans:
    for r in range(cfg["repeats"] // 4):
        train = simulate_predictions(cfg["n"], label_bias=0.1, base_rate=0.3, seed=SEED + 500 + r)
        test = simulate_predictions(cfg["n"], label_bias=0.1, base_rate=0.3, lean=lean, seed=SEED + r)
        rows.append({"lean": lean,
                     "BA": M.attribute_bias_amplification(test.target, test.pred, identity=test.group,
                                                         train_true=train.target, train_identity=train.group),
                     "BiasAmp": M.bias_amplification(test.target, test.pred, groups=test.group)})
ba = pd.DataFrame(rows).groupby("lean").mean()
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(ba.index, ba.BA, marker=".", label="BA (pruning paper)")
ax.plot(ba.index, ba.BiasAmp, marker=".", label="BiasAmp$_{A→T}$")
ax.axhline(0, color="grey", lw=1)
ax.set(xlabel="model's lean on the identity, ℓ", ylabel="amplification",
       title=f"Two amplification measures, base rate 0.3 ({NOTE})")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# Both measures rise with the lean, but on different scales: BA is a difference of *shares among
# positives*, BiasAmp an average of changes in *rates within groups*. Neither is "the" bias
# amplification; a chapter must say which it reports.
#
# **Pitfall: tiny groups.** Hold the model fixed and group-blind ($\ell = 0$) and shrink one
# identity group. BA's spread across repeated samples explodes, and below the minimum count the
# metric refuses to answer.

# %%
rows = []
for share in (0.5, 0.1, 0.03):
    vals = []
    for r in range(cfg["repeats"]):
        train = simulate_predictions(cfg["n"], label_bias=0.1, base_rate=0.3, group_share=share, seed=SEED + 900 + r)
        test = simulate_predictions(cfg["n"] // 4, label_bias=0.1, base_rate=0.3, group_share=share, seed=SEED + r)
        vals.append(M.attribute_bias_amplification(test.target, test.pred, identity=test.group,
                                                    train_true=train.target, train_identity=train.group))
    vals = np.array(vals)
    rows.append({"identity share": share, "test size": cfg["n"] // 4, "BA mean": np.nanmean(vals),
                 "BA std": np.nanstd(vals), "share NaN (too few positives)": np.isnan(vals).mean()})
tiny = pd.DataFrame(rows).set_index("identity share")
tiny.style.format(precision=3).set_caption(f"BA of a group-blind model vs identity-group size ({NOTE})")

# %% [markdown]
# ## Threshold calibration bias (TCB)
#
# Most attributes are imbalanced (on CelebA about 80/20 on average). A model trained with a
# logistic loss tends to *under-predict the rarer value* at the default threshold. TCB measures
# that as a ratio {cite:p}`iofinova2023pruned`:
#
# $$\mathrm{TCB} = \begin{cases} N(\hat y=1)/N(y=1) & \text{if } \overline{y} < 0.5,\\
# N(\hat y=0)/N(y=0) & \text{otherwise,}\end{cases}$$
#
# 1 is ideal; below 1 the rare value is under-predicted. We dial the model's offset $o$ (a negative
# offset is what a classifier that learned a low prior does) for three base rates.

# %% tags=["hide-input"]
offsets = np.linspace(-1.0, 0.5, cfg["sweep_points"])
fig, ax = plt.subplots(figsize=(6, 3.5))
for rate in (0.1, 0.2, 0.4):
    tcb = [M.threshold_calibration_bias(*simulate_predictions(cfg["n"], base_rate=rate, offset=o, seed=SEED)[
        ["target", "pred"]].T.to_numpy()) for o in offsets]
    ax.plot(offsets, tcb, marker=".", label=f"base rate {rate}")
ax.axhline(1, color="grey", lw=1)
ax.set(xlabel="offset o of the model's score", ylabel="TCB", title=f"Threshold calibration bias ({NOTE})")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# Note that even at $o=0$ TCB is above 1 for rare attributes: symmetric errors hand the rare
# class many false positives. The rarer the attribute, the more TCB reacts to the same shift.

# %% [markdown]
# ## Uncertainty and expected calibration error
#
# The **uncertainty rate** is the share of predicted probabilities strictly inside $(0.1, 0.9)$
# {cite:p}`iofinova2023pruned`. **Expected calibration error** {cite:p}`guo2017calibration`
# checks whether confidences match accuracies. With bins $B_b = (b/n, (b+1)/n]$ (0 falls in the
# first),
#
# $$\mathrm{ECE} = \sum_b \frac{|B_b|}{N}\,\bigl|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\bigr| .$$
#
# It works for max-softmax confidence with 0/1 correctness (Hall et al. use 15 bins) and for a
# positive-class probability with 0/1 labels (the pruning paper uses 10 bins). Our toy model is
# exactly calibrated at sharpness $\kappa=1$; $\kappa>1$ makes it over-confident.

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
for kappa, color in ((1.0, "C0"), (3.0, "C3")):
    d = simulate_predictions(cfg["n"], sharpness=kappa, seed=SEED)
    reliability_diagram(M.calibration_bins(d.prob, d.target, n_bins=10), ax=axes[0], label=f"κ = {kappa}",
                        color=color)
axes[0].legend()
axes[0].set_title("reliability diagram")
kappas = np.linspace(0.25, 4, cfg["sweep_points"])
curves = {"ECE": [], "uncertainty rate": []}
for k in kappas:
    d = simulate_predictions(cfg["n"], sharpness=k, seed=SEED)
    curves["ECE"].append(M.expected_calibration_error(d.prob, d.target, n_bins=10))
    curves["uncertainty rate"].append(M.uncertainty_rate(d.prob))
axes[1].plot(kappas, curves["ECE"], marker=".")
axes[1].set(xlabel="sharpness κ (1 = calibrated)", ylabel="ECE (10 bins)", title="calibration error")
axes[2].plot(kappas, curves["uncertainty rate"], marker=".", color="C2")
axes[2].set(xlabel="sharpness κ", ylabel="share in (0.1, 0.9)", title="uncertainty rate")
fig.suptitle(f"Calibration of constructed predictions ({NOTE})")
fig.tight_layout()
plt.show()

# %% [markdown]
# Under-confidence ($\kappa<1$) and over-confidence ($\kappa>1$) both raise ECE, while the
# uncertainty rate falls monotonically as the model gets sharper: the two metrics answer different
# questions. **Pitfall: ECE is biased upwards on small samples** and depends on the number of bins.
# A perfectly calibrated model measured on few examples:

# %%
rows = []
for n_eval in (100, 1_000, 10_000):
    for bins in (10, 15):
        e = [M.expected_calibration_error(*simulate_predictions(n_eval, seed=SEED + r)[["prob", "target"]].T.to_numpy(),
                                          n_bins=bins) for r in range(cfg["repeats"])]
        rows.append({"examples": n_eval, "bins": bins, "mean ECE of a calibrated model": np.mean(e)})
pd.DataFrame(rows).pivot(index="examples", columns="bins").style.format("{:.4f}").set_caption(
    f"ECE of a perfectly calibrated toy model ({NOTE})")

# %% [markdown]
# ## Label interrelation
#
# A model that predicts many attributes from one feature layer can make its outputs move together
# even when the attributes are independent. For each attribute $k$ the pruning paper fits a linear
# regression of its output on all other outputs and reports $R^2_k$ {cite:p}`iofinova2023pruned`
# (`fairlib.metrics.label_interrelation`). We dial a factor shared by all outputs:

# %%
shared_levels = np.linspace(0, 2, cfg["sweep_points"])
r2 = [M.label_interrelation(simulate_multilabel(cfg["n"], 8, shared=s, seed=SEED)[1]).mean() for s in shared_levels]
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.plot(shared_levels, r2, marker=".")
ax.set(xlabel="weight of a factor shared by all 8 outputs", ylabel="mean R² (interrelation)",
       title=f"Label interrelation of independent labels ({NOTE})")
fig.tight_layout()
plt.show()

# %% [markdown]
# The labels stay independent throughout; only the *outputs* become predictable from each other.
# A high interrelation does not say the model uses one attribute to predict another; it suggests
# a less expressive representation.

# %% [markdown]
# ## The Bias Transfer Score
#
# {cite:t}`ranjit2023variation` score, for each object concept, how strongly a model's embedding
# associates it with one gender rather than the other, before and after fine-tuning, and compare
# the two *rankings* with Spearman's rank correlation:
#
# $$\mathrm{BTS} = \rho_{\text{Spearman}}\bigl(s^{\text{before}}, s^{\text{after}}\bigr)
# = \mathrm{corr}\bigl(\mathrm{rank}(s^{\text{before}}), \mathrm{rank}(s^{\text{after}})\bigr).$$
#
# 1 means the ranking of associations survived fine-tuning, 0 that it was reshuffled, −1 that it
# was reversed. Ties receive average ranks. Chapter 7 computes real association scores; here we
# construct them with a "retention" dial and ask how many concepts are needed to trust the score.

# %% tags=["hide-input"]
retentions = np.linspace(0, 1, cfg["sweep_points"])
fig, ax = plt.subplots(figsize=(6, 3.6))
for n_concepts, color in ((10, "C3"), (80, "C0")):
    vals = np.array([[M.bias_transfer_score(*simulate_association_scores(n_concepts, retention=q, seed=SEED + r))
                      for r in range(cfg["repeats"])] for q in retentions])
    lo, mid, hi = np.percentile(vals, [5, 50, 95], axis=1)
    ax.plot(retentions, mid, color=color, label=f"{n_concepts} concepts (median, 5–95%)")
    ax.fill_between(retentions, lo, hi, color=color, alpha=0.2)
ax.plot(retentions, 6 / np.pi * np.arcsin(retentions / 2), "k:", lw=1, label="population value")
ax.set(xlabel="retention of the association ranking", ylabel="Bias Transfer Score",
       title=f"BTS of constructed association scores ({NOTE})")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# With ten concepts a BTS of 0.5 is compatible with almost any retention: report a confidence
# interval (Chapter 7 bootstraps over concepts). The dotted line is the population value of
# Spearman's ρ for normal scores, $\frac{6}{\pi}\arcsin(\rho/2)$.

# %% [markdown]
# ## Compare with the paper
#
# Chapter 1 uses constructed predictions, so its numbers are not comparable to any paper's
# results. What *is* comparable is the arithmetic: feeding a paper's own published numbers
# through our definitions must give back the paper's summary values. The adversarial-invariance
# paper reports per-race accuracies of three gender classifiers on UTKFace and their variance
# (its Table 1, {cite:p}`teru2019reducing`):

# %%
paper = pd.DataFrame(  # the paper's Table 1 (accuracies in %), quoted, not ours
    {"SimpleCNN": [92.41, 91.56, 84.07, 90.93, 88.61],
     "SimpleCNN-WL": [89.84, 90.25, 83.64, 92.02, 88.27],
     "FaderCNN": [85.65, 86.08, 80.90, 87.66, 83.86]},
    index=[f"Class {k}" for k in range(5)])
paper_variance = {"SimpleCNN": 11.26, "SimpleCNN-WL": 10.11, "FaderCNN": 6.66}
n_per_group = 10_000  # turns each published percentage into exact counts
rows = []
for model, accs in paper.items():
    y_true, y_pred, grp = [], [], []
    for k, a in enumerate(accs):
        correct = round(a * n_per_group / 100)
        y_true += [1] * n_per_group
        y_pred += [1] * correct + [0] * (n_per_group - correct)
        grp += [k] * n_per_group
    rows.append({"model": model, "variance (paper)": paper_variance[model],
                 "variance (fairlib, from the paper's accuracies)": M.accuracy_variance(y_true, y_pred, groups=grp),
                 "worst class (paper's accuracies)": accs.min(),
                 "noise floor at 474 per class": 1e4 * (accs.mean() / 100) * (1 - accs.mean() / 100) / 474})
compare = pd.DataFrame(rows).set_index("model")
glue("fader_floor", compare.loc["FaderCNN", "noise floor at 474 per class"])
compare.style.format(precision=2).set_caption(
    "Teru & Chakraborty, Table 1 (paper's numbers) and fairlib's recomputation")

# %% [markdown]
# `accuracy_variance` reproduces the paper's three variances from its per-class accuracies, which
# confirms the definition: sample variance ($G-1$ in the denominator) in percentage points. The last
# column is our addition: with 474 test images per class, sampling noise alone contributes about
# {glue:text}`fader_floor:.1f` pp² to each variance, a sizeable part of the 6.66 the paper reports for
# its fairest model.
#
# Other published values that later chapters return to (all **the papers' numbers**, on real data):
#
# | quantity | value reported | source |
# |---|---|---|
# | TCB of dense jointly-trained ResNet18 models on CelebA (mean over attributes) | 0.90 (0.81 at 99.5% sparsity) | {cite:t}`iofinova2023pruned` |
# | ECE of jointly-trained models, dense vs 99.5% sparse | 0.054 vs 0.013 | {cite:t}`iofinova2023pruned` |
# | largest dense BA, *Double Chin* w.r.t. *Male* | 0.053 | {cite:t}`iofinova2023pruned` |
# | BiasAmp$_{A\to T}$ at ε = 0 and ε = 1/2 (Fashion-MNIST) | no amplification at either end | {cite:t}`hall2022systematic` |
#
# Our toy sweeps agree with the qualitative claims they can speak to: BiasAmp is zero when
# predictions copy the labels, and a classifier that cannot see the group (our $\ell=0$) does not
# amplify bias; it dampens it in proportion to its error rate.

# %% [markdown]
# ## Exercises
#
# :::{exercise}
# :label: ex-sign
# Before running anything: a model has accuracy 70% in both groups, with symmetric errors, and
# group 1 is 90% positive while group 0 is 50% positive. Predict the sign of BiasAmp$_{A\to T}$.
# Then check with `simulate_predictions` (choose `signal` so that Φ(signal) ≈ 0.7).
# :::
#
# :::{solution} ex-sign
# :class: dropdown
# Group 1: $\Delta_{1,1} = 0.3\,(1 - 2\cdot 0.9) = -0.24$ with $y=1$, contribution $-0.24$, and the
# $t=0$ term is $+0.24$ with $y=0$, contribution $-0.24$. Group 0 has $p=0.5$, so its $\Delta$ is 0.
# The mean is negative (about $-0.12$): errors dampen the bias. `signal=0.52`,
# `base_rate=0.7, label_bias=0.2` reproduces this.
# :::
#
# :::{exercise}
# :label: ex-tiny
# Use `simulate_group_predictions` with five groups that all have a true accuracy of 90%. How small
# must the groups be for the *expected* accuracy variance to exceed the 6.66 pp² that the paper
# reports for its FaderCNN? Derive it, then confirm by simulation.
# :::
#
# :::{solution} ex-tiny
# :class: dropdown
# Each group accuracy has variance $p(1-p)/n$, so the expected sample variance is
# $10^4\cdot 0.09/n$ pp². It exceeds 6.66 when $n < 900/6.66 \approx 135$ examples per group.
# :::
#
# :::{exercise}
# :label: ex-ece
# Show that ECE can be made arbitrarily close to zero for a *useless* classifier: a model that
# outputs the base rate for every example. Is that model fair? Which metric from this chapter
# exposes it?
# :::
#
# :::{solution} ex-ece
# :class: dropdown
# All examples fall in one bin whose confidence equals the accuracy (the base rate), so ECE is
# about 0. Its predictions are constant, so TCB is 0 (the rare value is never predicted) and the
# uncertainty rate is 1 if the base rate lies in (0.1, 0.9): calibration alone says nothing about
# usefulness or fairness.
# :::
#
# :::{exercise}
# :label: ex-ties
# Round the association scores of `simulate_association_scores(20, retention=0.8)` to one decimal
# and to integers. How does the Bias Transfer Score change, and why?
# :::
#
# :::{solution} ex-ties
# :class: dropdown
# Rounding creates ties, which get average ranks; coarse rounding merges many concepts into a few
# ranks and pulls ρ towards 0 (information is lost). With integers most scores become −1, 0 or 1.
# :::

# %% [markdown]
# ### Graded exercises
#
# The three exercises below are graded automatically when your instructor hands out this chapter
# as an assignment (see the instructor guide). Write your code in place of the
# `raise NotImplementedError(...)` line; in the book, the solution is folded away.
#
# :::{exercise}
# :label: ex-tcb-code
# Write `my_tcb(y_true, y_pred)` that returns the threshold calibration bias of two 0/1 arrays
# without calling fairlib. It must agree with `fairlib.metrics.threshold_calibration_bias`.
# :::

# %% tags=["graded", "exercise:ex-tcb-code", "hide-input"]
def my_tcb(y_true, y_pred):
    # BEGIN SOLUTION
    # HINT: find the rarer value of y_true, then divide how often it is predicted by how often it occurs
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rare = 1 if y_true.mean() < 0.5 else 0
    return float((y_pred == rare).sum() / (y_true == rare).sum())
    # END SOLUTION


# %% tags=["tests", "exercise:ex-tcb-code", "remove-cell"]
assert abs(my_tcb([1, 0, 0, 0], [1, 1, 0, 0]) - 2.0) < 1e-9, "rare positives predicted twice as often: TCB = 2"
assert abs(my_tcb([1, 1, 1, 0], [1, 1, 1, 1]) - 0.0) < 1e-9, "the rare negative is never predicted: TCB = 0"
_d = simulate_predictions(500, base_rate=0.2, offset=-0.5, seed=11)
assert abs(my_tcb(_d.target, _d.pred) - M.threshold_calibration_bias(_d.target, _d.pred)) < 1e-9

# %% [markdown]
# :::{exercise}
# :label: ex-biasamp-code
# Write `biasamp_2x2(y_true, y_pred, *, groups)` for two groups and two classes (all 0/1 arrays),
# following Eq. (1)–(3) directly with four explicit terms. Decide $y_{at}$ with integer counts.
# Like every group metric in `fairlib`, take the groups as a keyword-only argument.
# :::

# %% tags=["graded", "exercise:ex-biasamp-code", "hide-input"]
def biasamp_2x2(y_true, y_pred, *, groups):
    # BEGIN SOLUTION
    # HINT: loop over a in {0, 1} and t in {0, 1}; y_at = n_at * N > n_a * n_t
    t, p, g = (np.asarray(x) for x in (y_true, y_pred, groups))
    total, terms = len(g), []
    for a in (0, 1):
        for c in (0, 1):
            n_a, n_t, n_at = (g == a).sum(), (t == c).sum(), ((g == a) & (t == c)).sum()
            y = int(n_at * total > n_a * n_t)
            delta = (p[g == a] == c).mean() - (t[g == a] == c).mean()
            terms.append(y * delta - (1 - y) * delta)
    return float(np.mean(terms))
    # END SOLUTION


# %% tags=["tests", "exercise:ex-biasamp-code", "remove-cell"]
_worked = biasamp_2x2([1, 1, 1, 0, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0], groups=[0, 0, 0, 0, 1, 1, 1, 1])
assert abs(_worked - 0.25) < 1e-9
for _seed in range(3):
    _d = simulate_predictions(300, label_bias=0.15, lean=0.4, seed=_seed)
    _expected = M.bias_amplification(_d.target, _d.pred, groups=_d.group)
    assert abs(biasamp_2x2(_d.target, _d.pred, groups=_d.group) - _expected) < 1e-9

# %% [markdown]
# :::{exercise}
# :label: ex-floor-code
# Write `variance_noise_floor(accuracy, n_per_group)`: the expected accuracy variance (pp²) that
# sampling noise alone produces when every group has the same true accuracy.
# :::

# %% tags=["graded", "exercise:ex-floor-code", "hide-input"]
def variance_noise_floor(accuracy, n_per_group):
    # BEGIN SOLUTION
    # HINT: each group's accuracy is a binomial proportion; convert its variance to percentage points
    return 1e4 * accuracy * (1 - accuracy) / n_per_group
    # END SOLUTION


# %% tags=["tests", "exercise:ex-floor-code", "remove-cell"]
assert abs(variance_noise_floor(0.9, 100) - 9.0) < 1e-9
assert abs(variance_noise_floor(0.5, 474) - 2500 / 474) < 1e-9

# %% [markdown]
# ## Summary
#
# - Per-group accuracy, its variance, the worst group and the largest gap are the first things to
#   report; the variance has a noise floor of about $10^4 p(1-p)/n_g$ pp².
# - BiasAmp$_{A\to T}$ measures whether predictions exaggerate the label–group association,
#   averaged over all (group, class) pairs; an inaccurate group-blind model *dampens* bias.
# - BA compares shares among predicted and true positives for one attribute and one identity,
#   and refuses to answer for tiny groups.
# - TCB, uncertainty, ECE and label interrelation describe *systematic* bias that makes category
#   bias likely.
# - The Bias Transfer Score is a rank correlation: with few concepts, report its uncertainty.
#
# The full references for this chapter are in the {doc}`../book/bibliography`.
