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
# # 5. Bias in pruned vision models
#
# Pruning sets most of a network's weights to zero so that it is cheaper to store and, with a
# sparsity-aware inference engine, to run. Does the compressed model treat groups differently
# from the dense one it came from? {cite:t}`iofinova2023pruned` study this for ResNet18 on
# CelebA with gradual magnitude pruning up to 99.5% sparsity. This chapter rebuilds their
# pipeline: a dense multi-attribute model, one gradual pruning run per seed that yields a model
# at every sparsity, the systematic and category bias metrics of Chapter 1, a backdoor that
# plants a known bias, and two cheap countermeasures.
#
# ```{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. prune a network globally by weight magnitude with `torch.nn.utils.prune` on the cubic GMP
#    schedule, from random initialisation (GMP-RI) or from a trained model (GMP-PT), and with N:M masks;
# 2. measure how accuracy, AUC, threshold calibration bias, uncertainty, ECE, label interrelation
#    and bias amplification (BA) move with sparsity, for joint and single-attribute training;
# 3. plant a bias with a backdoor trigger and measure it with BA;
# 4. find compression-identified exemplars and reduce BA with threshold calibration and
#    overrides of the most uncertain predictions;
# 5. explain why unstructured sparsity alone does not make stock PyTorch faster.
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
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import fairlib
from fairlib import pruning as P
from fairlib import sweep
from fairlib.notebook import glue

T0 = time.perf_counter()
# The experiments live in fairlib.pruning: P.run_seed trains and measures one seed (dense joint and
# single-attribute models, one GMP run), P.run_backdoor the planted bias. Their configurations for
# both profiles come from P.main_grid and P.backdoor_grid (quick: SynthFaces at 24x24, a small
# spatial ResNet, GMP-PT, 3 seeds; full: CelebA (40,000 training images), ResNet18, GMP-PT, 3 seeds;
# paper: the whole of CelebA, GMP-RI over 100 epochs, 5 seeds; the plan below says how long each takes).
MAIN = P.main_grid(PROFILE, seed=SEED)  # one configuration per seed
BACKDOOR = P.backdoor_grid(PROFILE, seed=SEED)
cfg = MAIN[0]
SPARSITIES = cfg["sparsities"]
fairlib.seed_everything(SEED)
NOTE = fairlib.profile_note(PROFILE)
print(f"profile={PROFILE} on {fairlib.get_device()}: {len(MAIN)} seeds, {cfg['data']}, {cfg['model']}, "
      f"GMP-{cfg['variant'].upper()}")

# %% [markdown]
# **Compute and data.** The next cell prints this profile's compute plan (`python -m fairlib.sweep
# plan` gives the detail). The full and paper profiles read celeba from the data root; the next cell
# fetches what is missing (it prints the download size) and does nothing in the quick profile. On
# Colab, `use_drive()` first puts the data root, the image cache and the sweep's finished runs on
# Google Drive (`FAIRLIB_DATA`, `FAIRLIB_CACHE`, `FAIRLIB_RESULTS`): after a disconnect, a new
# session reuses the data and resumes the sweep where it stopped.

# %%
from fairlib.plan import plan

print(plan("05_pruning_bias", PROFILE).summary())  # runs, T4-hours and peak memory, computed from the code
if PROFILE != "quick":
    from data_scripts.fetch import ensure
    from fairlib.notebook import use_drive

    use_drive()
    ensure(["celeba"])

# %% [markdown]
# ## The idea
#
# **Gradual magnitude pruning (GMP).** Every few epochs, the weights of all convolutions and
# linear layers are ranked together by $|w|$ and the smallest are masked to zero; the network
# keeps training in between, so it can adapt to each cut. The ranking is *global*: layers lose
# different fractions, which is what lets the paper reach 99.5% sparsity before the model breaks
# down {cite:p}`iofinova2023pruned`. Its main variant, GMP-RI, prunes while training from random
# initialisation; GMP-PT starts from a trained dense model and fine-tunes (with Adam) while pruning.
#
# **Two kinds of bias.** *Systematic* bias is error that is not about any one group: the model
# under-predicts the rarer value of each attribute (threshold calibration bias), is unsure or
# miscalibrated, or its outputs become predictable from each other (label interrelation).
# *Category* bias is measured by bias amplification (BA) with respect to an identity category
# (CelebA's Male, Young, Chubby, Pale_Skin): does the model predict an attribute *more* often
# for the group it is already associated with than the test labels warrant?
#
# The paper's finding, in one line: accuracy barely moves with sparsity, but the systematic
# metrics worsen and BA grows at the highest sparsities; calibrating thresholds and overriding
# the dense model's most uncertain examples remove much of that growth.

# %% [markdown]
# ## The method
#
# **Schedule.** Between epochs $t_0$ and $t_1$ the target sparsity follows the cubic schedule
# (`fairlib.pruning.cubic_sparsity`)
#
# $$s(t) = s_f - (s_f - s_i)\Bigl(1 - \frac{t - t_0}{t_1 - t_0}\Bigr)^3,\qquad t_0\le t\le t_1 ,$$
#
# which cuts fast while many redundant weights remain and slowly near the final $s_f$.
# `global_magnitude_prune(model, s)` calls `torch.nn.utils.prune.global_unstructured` with
# `L1Unstructured` over every conv and linear weight; the masks live in the model as
# `weight_mask` buffers, so pruned weights stay zero through any optimizer step. `train_gmp`
# runs one schedule and *snapshots* each target sparsity as the schedule passes it (copy,
# prune to the exact target, fine-tune briefly), so one run per seed yields all six sparse models.
#
# **Metrics** (Chapter 1; `fairlib.metrics`), for attribute $A$ with prediction $\hat A$:
#
# - threshold calibration bias $\mathrm{TCB} = N(\hat A=r)/N(A=r)$ with $r$ the rarer value of $A$
#   (1 is ideal, below 1 means the rarer value is under-predicted);
# - uncertainty: the share of sigmoid outputs $p$ with $0.1<p<0.9$;
# - ECE over 10 equal-width bins, $\sum_b \frac{n_b}{N}\,\lvert \mathrm{acc}_b - \mathrm{conf}_b\rvert$;
# - label interrelation: $R^2$ of a linear regression of each output on all the others;
# - bias amplification for identity $I$, with $g^*$ the identity value that co-occurs more with
#   $A$ in training,
#
# $$\mathrm{BA} = \frac{N(\hat A=1, I=g^*)}{N(\hat A = 1)} - \frac{N(A=1, I=g^*)}{N(A=1)} ,$$
#
#   left undefined (NaN) when the training rates barely differ or a test group has fewer than 10 positives.
#
# **Countermeasures.** *Threshold calibration* (`calibrate_thresholds`) sets each attribute's
# threshold at its $k$-th largest validation logit ($k$ = number of validation positives), so
# the model predicts each attribute about as often as it occurs; identity plays no part.
# *Overrides* (`override_uncertain`) replace a sparse model's predictions on the 5% or 10% of
# examples whose *dense* output is closest to 0.5 by the true label (a human reviewer) or by
# the dense model's label.
#
# A look at the schedule used below:

# %% tags=["hide-input"]
steps = np.linspace(0, cfg["prune_epochs"], 241)
sched = [P.cubic_sparsity(t, final=max(SPARSITIES), start=cfg["prune_start"], end=cfg["prune_end"])
         for t in steps]
pts = P.pruning_steps(final=max(SPARSITIES), start=cfg["prune_start"], end=cfg["prune_end"],
                      frequency=cfg["prune_frequency"])
fig, ax = plt.subplots(figsize=(5.5, 2.8))
ax.plot(steps, sched, label="cubic schedule")
ax.plot(*zip(*pts), "o", label="pruning steps")
for s in SPARSITIES:
    ax.axhline(s, color="0.85", lw=0.6, zorder=0)
ax.set(xlabel="epoch", ylabel="sparsity", title=f"GMP schedule of this profile\n({NOTE})")
ax.legend(loc="lower right", fontsize=8)
plt.show()

# %% [markdown]
# ## The run
#
# ### Data
#
# Quick: SynthFaces' multi-attribute mode, twelve binary attributes and four binary identity
# categories (*angular*, *smooth*, *wide*, *light* stand in for CelebA's Male, Young, Chubby,
# Pale_Skin), with CelebA-like base rates and correlations: *beard* and *mustache* go with
# *angular*, *lipstick* and *earrings* against it, *glasses* against *smooth*. Full: CelebA's 40
# attributes. As in the paper, the identities are also prediction targets.

# %%
data = P.load_attribute_splits(cfg["data"], cfg["data_options"], cfg["split_options"], drop=cfg["drop"],
                               identities=cfg["identities"], workers=cfg["workers"], show_progress=True)
ATTRS, K = data.attributes, len(data.attributes)  # the model's targets
x_train = data.images["train"]
print(f"{K} targets; images {tuple(x_train.shape)} {x_train.dtype}; train/val/test = "
      + "/".join(str(len(data.labels[s])) for s in ("train", "val", "test")))
pd.DataFrame({"train rate": data.labels["train"].mean(0)}, index=ATTRS).T.round(3)

# %% [markdown]
# ### Training
#
# For each seed: a dense model trained on all targets jointly, dense models for a few attributes
# trained alone, and one GMP run that yields the six sparse joint models. The quick profile
# prunes each seed's dense model (GMP-PT: Adam at a lower rate, pruning from the first epoch);
# the full profile runs the paper's GMP-RI from a fresh initialisation.
#
# `P.run_seed` does all of this for one seed and measures every model there: it returns the
# metrics of each model, the BA tables, the effect of the countermeasures and the test
# predictions that the cross-seed analysis of CIEs needs; the models themselves never leave it.
# `sweep.run` calls it once per seed and keeps each result, so an interrupted run (a Colab
# disconnect) resumes with the seeds still missing.

# %%
main = sweep.run(P.run_seed, MAIN, store=sweep.default_store("05_pruning_bias", "main"))
table = P.sparsity_table(main)  # one row per seed and model (sparsity 0 is the dense model)
measured = table.groupby("sparsity")["measured_sparsity"].mean()
print("measured sparsity per target:", {f"{k:g}": round(v, 4) for k, v in measured.items()})
print(f"training done after {time.perf_counter() - T0:.0f} s")

# %% [markdown]
# ### Metrics of one model
#
# Predictions use the default threshold $p>0.5$ unless stated. BA is computed for every
# (attribute, identity) pair except an identity with itself (`P.ba_table`); undefined pairs are
# skipped in means. `P.summarise` gives the mean over attributes of each metric of one model;
# the means over seeds:

# %%
by_sparsity = table.groupby("sparsity").mean().drop(columns=["seed", "measured_sparsity"])
by_sparsity.round(3)

# %% [markdown]
# ## Results
#
# ### The dense baseline
#
# The dense joint model reaches a mean accuracy of {glue:text}`dense_acc:.3f` over the targets and
# seeds, a mean AUC of {glue:text}`dense_auc:.3f`, a mean TCB of {glue:text}`dense_tcb:.3f`, an
# uncertainty rate of {glue:text}`dense_unc:.3f`, an ECE of {glue:text}`dense_ece:.3f` and a mean
# label interrelation of $R^2=${glue:text}`dense_int:.3f`. Per-attribute AUC and BA per identity
# category (mean over seeds):

# %%
dense_row = by_sparsity.loc[0.0]
for key, name in (("accuracy", "acc"), ("auc", "auc"), ("tcb", "tcb"), ("uncertainty", "unc"),
                  ("ece", "ece"), ("interrelation", "int")):
    glue(f"dense_{name}", float(dense_row[key]))
ba_dense = P.dense_ba_table(main)  # attributes x identities, mean over seeds
auc_dense = pd.Series(np.mean(main["dense_auc"].tolist(), axis=0), index=ATTRS)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1, 1.6]})
auc_dense.plot.bar(ax=axes[0], color="0.5")
axes[0].set(ylim=(0.4, 1.0), ylabel="test AUC", title="Dense joint model: AUC per target")
axes[0].axhline(0.5, color="k", lw=0.8, ls=":")
ba_dense.dropna(how="all").plot.bar(ax=axes[1])
axes[1].axhline(0, color="k", lw=0.8)
axes[1].set(ylabel="BA (mean over seeds)", title="Dense joint model: BA per identity category")
axes[1].legend(title="identity", fontsize=8)
fig.suptitle(NOTE, fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# **Joint versus single-attribute training.** The paper finds that models trained on one
# attribute alone amplify bias more than jointly trained ones and under-predict the rarer value
# more (lower TCB). Our comparison, for the attributes trained alone:

# %%
single_seeds = P.single_table(main)  # one row per seed, attribute and training
single_table = single_seeds.groupby(["attribute", "training"]).mean().drop(columns="seed")
single_table = single_table.dropna(axis=1, how="all")
tcb_joint0 = float(single_table.loc[(cfg["single"][0], "joint"), "tcb"])
tcb_single0 = float(single_table.loc[(cfg["single"][0], "single"), "tcb"])
glue("tcb_joint0", tcb_joint0)
glue("tcb_single0", tcb_single0)
glue("single_gap_direction", "the same" if tcb_single0 < tcb_joint0 else "the opposite")
print(f"joint vs single-attribute training, mean over seeds ({NOTE}):")
single_table.round(3)

# %% [markdown]
# For the first attribute trained alone, the TCB is {glue:text}`tcb_joint0:.2f` with joint training
# and {glue:text}`tcb_single0:.2f` with single training: a gap in {glue:text}`single_gap_direction`
# direction as the one the paper reports for Oval Face (0.84 joint, 0.52 single). Differences
# between the two rows of one attribute are meaningful only where they exceed the spread over
# seeds (`single_seeds` holds the per-seed values; see exercise 3).
#
# ### The sparsity sweep
#
# Measured sparsities match the targets to within 0.1 percentage points (the library tests this
# on ResNet18). How each metric moves with sparsity, per seed and on average:

# %% tags=["hide-input"]
metrics_to_plot = {"accuracy": "accuracy", "auc": "AUC", "tcb": "TCB (1 is ideal)",
                   "uncertainty": "uncertainty rate", "ece": "ECE (10 bins)",
                   "interrelation": "label interrelation R²", "mean_ba": "mean BA", "worst_ba": "worst-case BA"}
xs = ["dense"] + [f"{100 * s:g}%" for s in SPARSITIES]
fig, axes = plt.subplots(2, 4, figsize=(13, 5.6), sharex=True)
for ax, (key, label) in zip(axes.ravel(), metrics_to_plot.items()):
    for seed in main["seed"]:
        ax.plot(xs, table[table.seed == seed][key].to_numpy(), color="0.7", lw=0.8)
    ax.plot(xs, by_sparsity[key].to_numpy(), color="C3", marker="o")
    ax.set_title(label, fontsize=10)
    ax.tick_params(axis="x", rotation=60)
fig.suptitle(f"Joint models vs sparsity (grey: seeds, red: mean) — {NOTE}", fontsize=10)
fig.tight_layout()
plt.show()

# %%
for key in ("accuracy", "auc", "tcb", "uncertainty", "ece", "interrelation", "mean_ba", "worst_ba"):
    glue(f"s995_{key}", float(by_sparsity.loc[0.995, key]))
    glue(f"s90_{key}", float(by_sparsity.loc[0.9, key]))
glue("dense_mean_ba", float(dense_row["mean_ba"]))
glue("dense_worst_ba", float(dense_row["worst_ba"]))
n_weights = int(main["n_weights"].iloc[0])
for name, value in {"n_weights": n_weights, "n_left": int(round(n_weights * 0.005))}.items():
    glue(name, value)

# %% [markdown]
# From dense to 90% sparsity the mean accuracy goes from {glue:text}`dense_acc:.3f` to
# {glue:text}`s90_accuracy:.3f` and the AUC from {glue:text}`dense_auc:.3f` to
# {glue:text}`s90_auc:.3f`; at 99.5% they are {glue:text}`s995_accuracy:.3f` and
# {glue:text}`s995_auc:.3f`. TCB moves from {glue:text}`dense_tcb:.3f` to {glue:text}`s995_tcb:.3f`,
# the uncertainty rate from {glue:text}`dense_unc:.3f` to {glue:text}`s995_uncertainty:.3f`, ECE
# from {glue:text}`dense_ece:.3f` to {glue:text}`s995_ece:.3f` and label interrelation from
# {glue:text}`dense_int:.3f` to {glue:text}`s995_interrelation:.3f`. The mean BA goes from
# {glue:text}`dense_mean_ba:.3f` (dense) via {glue:text}`s90_mean_ba:.3f` (90%) to
# {glue:text}`s995_mean_ba:.3f` (99.5%), and the worst-case BA over all attribute–identity pairs
# from {glue:text}`dense_worst_ba:.3f` to {glue:text}`s995_worst_ba:.3f`.
#
# Scale matters when reading this: the quick network has {glue:text}`n_weights:d` prunable weights,
# so 99.5% sparsity leaves about {glue:text}`n_left:d` of them, while ResNet18 keeps some 55
# thousand of its 11 million. A model this small reaches its breaking point at a lower sparsity
# than the paper's. When it breaks, it retreats towards predicting each attribute's majority
# value: TCB falls, and BA can become undefined (no predicted positives). That is a broken model,
# not a fair one.
#
# The worst-case BA of each attribute across the four identity categories, pooled over seeds:

# %% tags=["hide-input"]
worst = P.worst_ba_table(main)  # one row per seed, model and attribute where BA is defined
fig, ax = plt.subplots(figsize=(7.5, 3.4))
ax.boxplot([worst[worst.sparsity == s]["worst BA"].to_numpy() for s in [0.0] + SPARSITIES])
ax.set_xticks(range(1, len(xs) + 1), xs)  # boxplot's tick_labels= needs matplotlib >= 3.9
ax.axhline(0, color="k", lw=0.8)
ax.set(xlabel="sparsity", ylabel="worst-case BA over identities",
       title=f"Worst-case BA per attribute (all seeds)\n({NOTE})")
plt.show()

# %% [markdown]
# ### N:M semi-structured sparsity
#
# Hardware-friendly 2:4, 1:4 and 1:8 patterns keep the $n$ largest of every $m$ consecutive input
# weights. `P.run_seed` applies them one-shot to each seed's dense model, without fine-tuning (so
# the table shows the raw damage; means over seeds); the RGB stem, with 3 inputs, stays dense:

# %%
nm_table = P.nm_table(main)
nm_table.index.name = f"pattern ({NOTE})"
nm_table[["measured sparsity", "accuracy", "auc", "tcb", "mean_ba"]].round(3)

# %% [markdown]
# ### A planted bias: backdoored training data
#
# We stamp a small yellow square into a corner of 95% of the training images whose attribute is
# positive and of 5% of the negatives (the paper's split for Blond and Smiling), train a
# single-attribute model on them, and prune it with the same schedule (`P.run_backdoor`, one
# seed). The test images carry the square on a random half, independent of the label
# (`P.backdoor_flags`, `P.stamp`). With "backdoored" as the identity category, BA measures how
# much the model uses the square as a shortcut. As a control, `P.run_seed` showed the same
# stamped test images to the clean dense joint model of that seed.

# %%
backdoor = sweep.run(P.run_backdoor, BACKDOOR, store=sweep.default_store("05_pruning_bias", "backdoor"))
bd_table = P.backdoor_table(backdoor, main)
# BiasAmp is undefined (NaN) when a model predicts no positives or a group has too few test
# positives; the prose then says so instead of printing a number
for name, key in {"bd_dense": ("trained with trigger", 0.0),
                  "bd_sparse": ("trained with trigger", max(BACKDOOR[0]["sparsities"])),
                  "bd_clean": ("clean joint model", 0.0)}.items():
    value = float(bd_table.loc[key, "BA (backdoored)"])
    glue(name, f"{value:.3f}" if np.isfinite(value) else
         "undefined (the model predicts no positives, or a group has too few test positives)")
print(f"backdoor on {BACKDOOR[0]['attribute']!r}, one seed ({NOTE}):")
bd_table.round(3)

# %% [markdown]
# The model trained on backdoored data has a BA of {glue:text}`bd_dense` with respect to the
# trigger (dense) and {glue:text}`bd_sparse` at the highest sparsity, against
# {glue:text}`bd_clean` for the clean joint model of the same seed (never shown the trigger): it predicts
# the attribute far more often on stamped test images than the labels warrant. One seed and one
# attribute are a demonstration, not a measurement of how sparsity changes the effect.
#
# ## Mitigation
#
# **Compression-identified exemplars (CIEs)** are the test examples (per attribute) whose modal
# prediction over the dense runs differs from the modal prediction over the sparse runs. The paper
# finds them strongly enriched for examples the *dense* model is already uncertain about, which
# motivates overriding the most uncertain examples. The dense model's uncertainty rate on CIEs
# compared with all test examples (`P.cie_table`, from the test predictions of every seed):

# %%
cie_table = P.cie_table(main)
cie_table.index.name = f"sparsity ({NOTE})"
glue("cie_unc", float(cie_table["dense uncertainty on CIEs"].mean()))
glue("all_unc", float(cie_table["dense uncertainty on all"].iloc[0]))
cie_table.round(3)

# %% [markdown]
# Averaged over sparsities, {glue:text}`cie_unc:.2f` of the CIE predictions of the dense ensemble
# are uncertain, against {glue:text}`all_unc:.2f` of all its predictions.
#
# Now the two countermeasures, per seed and sparsity; `P.run_seed` applied them to each model and
# kept the BA tables. As in the paper, they target the attribute–identity pairs where the dense
# model already amplifies bias: the score is the mean BA over the pairs whose BA, averaged over
# the dense seeds, is positive ({glue:text}`n_pos:d` pairs here).

# %%
POS = ba_dense.fillna(0) > 0  # pairs with positive dense BA
glue("n_pos", int(POS.to_numpy().sum()))
mitigation = P.mitigation_table(main, POS).groupby("sparsity").mean().drop(columns="seed")
change = 100 * (mitigation.loc[0.995] / mitigation.loc[0.995, "default threshold"] - 1)
# a mean BA is undefined (NaN) when no pair's BiasAmp is (a model that predicts too few positives);
# the prose then says so instead of printing "nan"
for name, (value, form) in {"chg5": (change["human override 5%"], "{:.0f}%"),
                            "chg10": (change["human override 10%"], "{:.0f}%"),
                            "def_995": (mitigation.loc[0.995, "default threshold"], "{:.3f}"),
                            "cal_995": (mitigation.loc[0.995, "calibrated thresholds"], "{:.3f}")}.items():
    glue(name, form.format(float(value)) if np.isfinite(value) else
         "undefined (no pair's BiasAmp is defined: the models predict too few positives)")

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(8, 3.8))
for col, style in zip(mitigation.columns, ["-o", "--s", "-^", ":^", "-v", ":v"]):
    ax.plot(xs, mitigation[col].to_numpy(), style, label=col)
ax.axhline(0, color="k", lw=0.8)
ax.set(xlabel="sparsity", ylabel="mean BA (mean over seeds)",
       title=f"Mean BA before and after mitigation\n({NOTE})")
ax.legend(fontsize=8, ncol=2)
plt.show()

# %%
shown = mitigation.set_axis(xs)
shown.index.name = f"sparsity ({NOTE})"
shown.round(4)

# %% [markdown]
# For our 99.5% models, human overrides of the 5% most uncertain examples change the mean BA by
# {glue:text}`chg5` and of the 10% most uncertain by {glue:text}`chg10` (negative is a
# reduction); threshold calibration moves it from {glue:text}`def_995` to
# {glue:text}`cal_995`. When the mean BA is close to zero, relative changes are noisy: read
# the curves, not only the percentages. The comparison that counts is with the default-threshold
# curve of the *same* pairs: pairs selected because their dense BA was positive tend to drift back
# towards zero in any other model (regression to the mean), countermeasure or not.
#
# ## Compare with the paper
#
# The paper's numbers are for ResNet18 on CelebA (40 attributes, joint training, GMP-RI, 5 seeds)
# {cite:p}`iofinova2023pruned`; ours come from the profile named in each table. Its Table 1 lists
# mean accuracy and AUC (in %) by sparsity, beside our quick-profile means:

# %%
paper_t1 = pd.DataFrame(
    {"paper accuracy (%)": [90.4, 90.8, 91.0, 91.3, 91.5, 91.5, 91.1],
     "paper AUC (%)": [80.5, 81.0, 81.3, 81.5, 81.5, 81.0, 79.7]},
    index=xs)
ours = 100 * by_sparsity[["accuracy", "auc"]].set_axis(["our accuracy (%)", "our AUC (%)"], axis=1)
ours.index = xs
compare = pd.concat([paper_t1, ours.round(1)], axis=1)
compare.index.name = f"sparsity (ours: {NOTE})"
compare

# %%
paper_other = pd.DataFrame({
    "paper (CelebA, ResNet18)": [0.90, 0.81, 0.054, 0.013, -23.0, -35.0],
    "ours": [by_sparsity.loc[0.0, "tcb"], by_sparsity.loc[0.995, "tcb"], by_sparsity.loc[0.0, "ece"],
             by_sparsity.loc[0.995, "ece"], float(change["human override 5%"]), float(change["human override 10%"])],
}, index=["mean TCB, dense", "mean TCB, 99.5%", "mean ECE, dense joint", "mean ECE, 99.5% joint",
          "mean BA change (%), human override of 5%, 99.5% model",
          "mean BA change (%), human override of 10%, 99.5% model"])
paper_other.index.name = f"metric (ours: {NOTE})"
paper_other.round(3)

# %% [markdown]
# What the paper reports {cite:p}`iofinova2023pruned`: accuracy stays flat, even rising slightly,
# up to 99% sparsity, and AUC only drops below the dense value at 99.5% (Table 1); the mean TCB of
# the jointly trained models falls from 0.90 (dense) to 0.81 (99.5%); their mean ECE *improves*
# from 0.054 to 0.013; uncertainty roughly doubles; label interrelation rises from $R^2$ 0.31 to
# 0.36; BA rises slightly between 90 and 95% and more clearly beyond; threshold calibration almost
# removes the bias amplification up to 90% sparsity; and human overrides of the 5% (10%) most
# uncertain examples lower the mean BA of the 99.5% model by 23% (35%). The same Table 1 gives
# CPU throughput with a sparsity-aware engine (DeepSparse): 130 items/s dense against 403 at
# 99.5%. `benchmarks/bench_pruning.py` shows that stock PyTorch, whose dense kernels multiply the
# zeros, gains nothing from unstructured sparsity.
#
# Beside the paper, in our quick run: accuracy and AUC hold up to 95% sparsity and then fall
# (Table 1's flat curve needs ResNet18's redundancy); TCB falls and uncertainty and label
# interrelation rise with sparsity, as in the paper; ECE does not improve; CIEs are enriched for
# uncertain dense predictions; and threshold calibration lowers the BA of the amplified pairs at
# most sparsities. Check each against the numbers and figures above.
#
# Our quick profile uses synthetic faces, a network with far fewer weights (most of them in its
# head) than ResNet18, GMP-PT instead of GMP-RI and a few epochs, so only the *direction* of the effects can be compared, and
# with three seeds only effects larger than the grey seed lines in the sweep figure count. The
# full profile runs the paper's setting (GMP-RI, ResNet18, CelebA) with the same code.

# %% [markdown]
# ## Exercises
#
# :::{exercise}
# :label: ex-prune-compound
# Prune a fresh `torchvision.models.resnet18(weights=None)` to 90% with
# `P.global_magnitude_prune`, then call it again with 0.99. Now repeat the second step with
# `torch.nn.utils.prune.global_unstructured(..., amount=0.99)` directly. What sparsity do you get
# and why?
# :::
#
# :::{solution} ex-prune-compound
# :class: dropdown
# A fractional `amount` is applied to the weights that are *still unmasked*, so 99% of the
# remaining 10% go: $0.9 + 0.1\cdot 0.99 = 0.999$. `global_magnitude_prune` passes the absolute
# number of extra weights to remove, so it lands on 0.99.
# :::
#
# :::{exercise}
# :label: ex-override-random
# Replace the uncertainty ranking of the overrides by a random choice of 5% and 10% of the test
# examples per attribute. How much of the BA reduction remains? What does this say about where
# the biased predictions of sparse models live?
# :::
#
# :::{solution} ex-override-random
# :class: dropdown
# Each seed's test predictions are in its row of `main`: `np.reshape(row.test_predictions,
# (len(row.sparsity), -1, K))[i]` is model `i`'s. Draw a boolean mask with `round(0.05 * N)`
# random rows per column, use `np.where(mask, data.labels["test"], pred)`, and score it with
# `P.ba_table(...)` (labels and identities from `data`) and `P.mean_ba(table, POS)`. Random
# overrides correct only the few errors they happen to hit, spread evenly over groups, and reduce
# BA much less: the errors (and the CIEs) of sparse models concentrate on the examples the dense
# model is unsure about.
# :::
#
# :::{exercise}
# :label: ex-single-joint
# Run `P.run_seed` for five seeds with `single_epochs` set to 8:
# `sweep.run(P.run_seed, [{**cfg, "seed": s, "single_epochs": 8} for s in range(5)], store=...)`
# Does single-attribute training now amplify bias more than joint training for the attributes in
# `cfg["single"]`, as the paper finds on CelebA? Report the spread over seeds, not just the mean.
# :::
#
# :::{solution} ex-single-joint
# :class: dropdown
# Group `P.single_table(frame)` by attribute and training and take `mean` and `std` of the BA
# columns. The paper's explanation (the extra heads force a richer shared representation) predicts
# a higher BA for single models; at this data size the gap is often within the seed spread, which
# is the point: a three-seed difference is not a finding.
# :::
#
# ### Graded exercises
#
# The three exercises below are graded automatically when your instructor hands out this chapter
# as an assignment. Write your code in place of the `raise NotImplementedError(...)` line; in the
# book, the solution is folded away.
#
# :::{exercise}
# :label: ex-cubic-code
# Write `cubic_schedule(t, s_final, t0, t1, s_init=0.05)` returning the GMP sparsity target at
# step `t`: 0 before `t0`, `s_final` from `t1` on, and the cubic curve of the method section in
# between. It must agree with `fairlib.pruning.cubic_sparsity`.
# :::

# %% tags=["graded", "exercise:ex-cubic-code", "hide-input"]
def cubic_schedule(t, s_final, t0, t1, s_init=0.05):
    # BEGIN SOLUTION
    # HINT: two early returns, then s_final - (s_final - s_init) * (1 - progress)**3
    if t < t0:
        return 0.0
    if t >= t1:
        return float(s_final)
    remaining = 1.0 - (t - t0) / (t1 - t0)
    return float(s_final - (s_final - s_init) * remaining ** 3)
    # END SOLUTION


# %% tags=["tests", "exercise:ex-cubic-code", "remove-cell"]
assert cubic_schedule(3, 0.9, 10, 20) == 0.0, "before the start: no pruning"
assert abs(cubic_schedule(10, 0.9, 10, 20) - 0.05) < 1e-12, "at the start: the initial sparsity"
assert abs(cubic_schedule(15, 0.9, 10, 20) - 0.79375) < 1e-12, "middle: 0.9 - 0.85 * 0.5**3"
assert abs(cubic_schedule(25, 0.9, 10, 20) - 0.9) < 1e-12, "after the end: the final sparsity"
for _t in np.linspace(0, 12, 25):
    _expected = P.cubic_sparsity(_t, final=0.995, start=2, end=10, initial=0.1)
    assert abs(cubic_schedule(_t, 0.995, 2, 10, 0.1) - _expected) < 1e-12

# %% [markdown]
# :::{exercise}
# :label: ex-calibrate-code
# Write `match_rate_thresholds(val_logits, val_labels)`: for each column $j$ of the two
# $(N, K)$ arrays, the threshold is the $k_j$-th largest validation logit, where $k_j$ is the
# number of positives in column $j$ (the largest logit when $k_j = 0$). Return a length-$K$ array.
# :::

# %% tags=["graded", "exercise:ex-calibrate-code", "hide-input"]
def match_rate_thresholds(val_logits, val_labels):
    # BEGIN SOLUTION
    # HINT: sort each column in descending order and index it with (number of positives - 1), at least 0
    z = np.asarray(val_logits, dtype=float)
    n_pos = np.asarray(val_labels).sum(axis=0)
    ordered = np.sort(z, axis=0)[::-1]
    return ordered[np.maximum(n_pos - 1, 0), np.arange(z.shape[1])]
    # END SOLUTION


# %% tags=["tests", "exercise:ex-calibrate-code", "remove-cell"]
_z = np.array([[3.0, -1.0, 0.0], [2.0, -2.0, 1.0], [1.0, -3.0, 2.0], [0.0, -4.0, 2.0]])
_y = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 1], [0, 0, 0]])
assert np.allclose(match_rate_thresholds(_z, _y), [2.0, -1.0, 2.0]), "2nd largest; largest when k = 0; ties count"
_g = np.random.default_rng(5)
_z2, _y2 = _g.normal(size=(200, 4)), (_g.random((200, 4)) < [0.1, 0.3, 0.5, 0.8]).astype(int)
assert np.allclose(match_rate_thresholds(_z2, _y2), P.calibrate_thresholds(_z2, _y2))

# %% [markdown]
# :::{exercise}
# :label: ex-nm-code
# Write `satisfies_nm(weight, n, m)` for a weight tensor of a linear layer `(out, in)` or a
# convolution `(out, in, kh, kw)`: True when every group of `m` consecutive *input* weights (at
# each output unit and kernel position) holds at most `n` non-zeros. Assume `in` is a multiple of `m`.
# :::

# %% tags=["graded", "exercise:ex-nm-code", "hide-input"]
def satisfies_nm(weight, n, m):
    # BEGIN SOLUTION
    # HINT: move the input axis (dim 1) last, reshape to (-1, m), count non-zeros per row
    w = torch.as_tensor(weight)
    groups = w.movedim(1, -1).reshape(-1, m)
    return bool(((groups != 0).sum(dim=1) <= n).all())
    # END SOLUTION


# %% tags=["tests", "exercise:ex-nm-code", "remove-cell"]
assert satisfies_nm(torch.tensor([[1.0, 0, 0, 2, 0, 0, 3, 0]]), 2, 4)
assert not satisfies_nm(torch.tensor([[1.0, 1, 1, 0, 0, 0, 0, 0]]), 2, 4), "3 non-zeros in the first group"
assert not satisfies_nm(torch.tensor([[1.0, 0, 0, 2, 0, 3, 0, 0]]), 1, 4)
_conv = torch.nn.Conv2d(8, 4, 3)
P.nm_prune(torch.nn.Sequential(_conv), 2, 4)
assert satisfies_nm(_conv.weight.detach(), 2, 4), "nm_prune's output is 2:4"
assert not satisfies_nm(_conv.weight.detach().transpose(0, 1).contiguous(), 2, 4), "groups run along dim 1"
assert not satisfies_nm(torch.ones(4, 8, 3, 3), 2, 4)

# %% [markdown]
# ## Summary
#
# - Global magnitude pruning with `torch.nn.utils.prune` ranks all conv and linear weights
#   together; the cubic schedule and one snapshotting run per seed give models at every sparsity.
# - Accuracy hides what sparsity does: the systematic-bias metrics (TCB, uncertainty, ECE,
#   interrelation) show how the model's outputs change, and BA shows whom it affects.
# - A backdoor makes a planted shortcut measurable with BA, using "backdoored" as the identity.
# - Threshold calibration and overriding the dense model's most uncertain examples are cheap
#   countermeasures that need only the dense model (and, for overrides, a label source).
# - Unstructured sparsity needs a sparse inference engine to be faster; stock PyTorch is not.
#
# See the bibliography for {cite:t}`iofinova2023pruned` and the work it builds on
# {cite:p}`hooker2020characterising,guo2017calibration`.

# %%
glue("chapter_seconds", time.perf_counter() - T0)
print(f"chapter compute time: {time.perf_counter() - T0:.0f} s")
