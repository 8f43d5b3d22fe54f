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
# pipeline: a dense multi-attribute model, one complete gradual pruning run per target sparsity
# (so that every sparse model has the same training budget), the systematic and category bias
# metrics of Chapter 1, a backdoor that plants a known bias, and two cheap countermeasures.
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
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torchvision

import fairlib
from fairlib import pruning as P
from fairlib import sweep
from fairlib.amplification import mean_ci
from fairlib.notebook import glue, verdict

T0 = time.perf_counter()
# The experiments live in fairlib.pruning: P.run_seed trains and measures one seed (dense joint and
# single-attribute models, one GMP run per target sparsity), P.run_backdoor the planted bias. Their
# configurations come from P.main_grid and P.backdoor_grid (quick: SynthFaces at 24x24, a small
# spatial ResNet, GMP-PT to three sparsities, 3 seeds; full: CelebA (40,000 training images),
# ResNet18, GMP-RI to the paper's six sparsities, 3 seeds; paper: the whole of CelebA, GMP-RI over
# 100 epochs, 5 seeds; the plan below says how long each takes).
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
# The paper's finding, in one line: accuracy barely moves with sparsity, but most systematic
# metrics worsen (TCB falls, uncertainty and label interrelation rise; ECE is the exception and
# improves) and BA grows at the highest sparsities; calibrating thresholds and overriding the
# dense model's most uncertain examples remove much of that growth.

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
# gives every target sparsity its own complete run, as the authors' code does (one job per
# sparsity): from the same start, the cubic schedule towards *that* target, then training at the
# target until the run ends. Dense and sparse runs share one learning-rate schedule family, a
# cosine decay after a linear warm-up (the authors' `CosineLR`, `fairlib.training.warmup_cosine_schedule`).
# So no sparse model had a shorter or differently scheduled training than another:
# `P.training_budget` computes each model's epochs and optimiser steps from the configuration,
# and `P.run_seed` records the steps each model actually took. With GMP-RI the dense model trains
# exactly as long; with GMP-PT (the quick profile) every sparse model also carries the dense
# model's epochs, so a 0% run of the same length, the dense model trained on without pruning,
# is the reference that every sparse model is compared with below. As in the paper, every model ends
# with the weights of its epoch of highest mean validation accuracy (`fairlib.training.KeepBest`
# with `P.val_accuracy`); a GMP run chooses only among the epochs at its target sparsity (the
# authors' `best_sparse`). Selection changes which weights are kept, not how long a model trains.
#
# **Metrics** (Chapter 1; `fairlib.metrics`), for attribute $A$ with prediction $\hat A$:
#
# - threshold calibration bias $\mathrm{TCB} = N(\hat A=r)/N(A=r)$ with $r$ the rarer value of $A$
#   (1 is ideal, below 1 means the rarer value is under-predicted);
# - uncertainty: the share of sigmoid outputs $p$ with $0.1<p<0.9$;
# - ECE over 10 equal-width bins, $\sum_b \frac{n_b}{N}\,\lvert \mathrm{acc}_b - \mathrm{conf}_b\rvert$;
# - label interrelation: $R^2$ of a linear regression of each *hard* 0/1 prediction on all the
#   others, averaged over attributes (as the authors' `compute_interdependence`; a constant output
#   counts 1, as scikit-learn scores it); `interrelation_prob` is the same on the probabilities;
# - bias amplification for identity $I$, with $g^*$ the identity value that co-occurs more with
#   $A$ in training,
#
# $$\mathrm{BA} = \frac{N(\hat A=1, I=g^*)}{N(\hat A = 1)} - \frac{N(A=1, I=g^*)}{N(A=1)} ,$$
#
#   left undefined (NaN) when the training rates barely differ (the authors' 10% rule), when the
#   association is not significant in training (two-proportion test, $p \ge 0.01$; the paper keeps
#   "significantly" biased pairs) or a test group has fewer than 10 positives.
#
# **Countermeasures.** *Threshold calibration* (`calibrate_thresholds`) sets each attribute's
# threshold at its $k$-th largest validation logit ($k$ = number of validation positives), so
# the model predicts each attribute about as often as it occurs; identity plays no part.
# *Overrides* (`override_uncertain`) replace a sparse model's predictions on the 5% or 10% of
# examples whose *dense* output is closest to 0.5 by the true label (a human reviewer) or by
# the dense model's label.
#
# A look at the schedules used below, one run per target, and the learning-rate factor they share:

# %% tags=["hide-input"]
steps = np.linspace(0, cfg["prune_epochs"], 241)
fig, axes = plt.subplots(1, 2, figsize=(10, 2.9))
for i, target in enumerate(SPARSITIES):
    pts = P.pruning_steps(final=target, start=cfg["prune_start"], end=cfg["prune_end"],
                          frequency=cfg["prune_frequency"], initial=min(0.05, target))
    # the mask holds each step's sparsity until the next step
    held = [max([s for t, s in pts if t <= x] or [0.0]) for x in steps]
    axes[0].plot(steps, held, color=f"C{i}", label=f"run to {100 * target:g}%")
    axes[0].plot(*zip(*pts), "o", color=f"C{i}", ms=3)
axes[0].set(xlabel="epoch of the GMP run", ylabel="sparsity", title="one GMP run per target")
axes[0].legend(loc="lower right", fontsize=8)
per_epoch = 100  # any number of steps per epoch gives the same curve
lr_schedule = fairlib.training.warmup_cosine_schedule(cfg["warmup_epochs"])
total = cfg["prune_epochs"] * per_epoch
factor = [lr_schedule(fairlib.training.TrainState(None, {}, None, None, cfg["prune_epochs"], total, per_epoch,
                                                  step=t)) for t in range(total)]
axes[1].plot(np.arange(total) / per_epoch, factor)
axes[1].set(xlabel="epoch of the run", ylabel="learning-rate factor",
            title=f"cosine after a {cfg['warmup_epochs']:g}-epoch warm-up")
fig.suptitle(NOTE, fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# The training budget of every model, computed from the configuration (`P.training_budget`):
# epochs and optimiser steps since initialisation, and the epochs of each GMP run that start
# with a cut.

# %%
budget = P.training_budget(cfg)
budget

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
# trained alone, and one GMP run per target sparsity. This profile runs
# {glue:text}`variant_sentence`
#
# `P.run_seed` does all of this for one seed and measures every model there: it returns the
# metrics of each model, the BA tables, the effect of the countermeasures and the test
# predictions that the cross-seed analysis of CIEs needs; the models themselves never leave it.
# `sweep.run` calls it once per seed and keeps each result, so an interrupted run (a Colab
# disconnect) resumes with the seeds still missing.

# %%
if cfg["variant"] == "pt":
    glue("variant_sentence", f"GMP-PT: each run starts from the seed's dense model and trains with Adam at "
         f"{cfg['prune_lr']:g}, against {cfg['lr']:g} for the dense training ({cfg['dense_optimizer']}); a "
         "0% run of the same length is the dense model with the sparse models' budget.")
else:
    glue("variant_sentence", f"the paper's GMP-RI: each run starts from a fresh initialisation and trains with "
         f"{cfg['dense_optimizer'].upper()} at {cfg['prune_lr']:g} for {cfg['prune_epochs']} epochs, as long as "
         "the dense model.")

# %%
main = sweep.run(P.run_seed, MAIN, store=sweep.default_store("05_pruning_bias", "main"))
table = P.sparsity_table(main)  # one row per seed and model (sparsity 0 is the dense model)
measured = table.groupby("sparsity")["measured_sparsity"].mean()
print("measured sparsity per target:", {f"{k:g}": round(v, 4) for k, v in measured.items()})
steps_taken = pd.DataFrame(main["train_steps"].tolist(), index=main["seed"], columns=main["sparsity"].iloc[0])
steps_taken.index.name, steps_taken.columns.name = "seed", "optimiser steps of the model at sparsity"
sparse_steps = steps_taken.loc[:, steps_taken.columns > 0]
assert (sparse_steps.to_numpy() == sparse_steps.to_numpy()[0, 0]).all(), "every sparse model had the same budget"
print(f"training done after {time.perf_counter() - T0:.0f} s")
steps_taken

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
# label interrelation of $R^2=${glue:text}`dense_int:.3f` on hard predictions
# ({glue:text}`dense_int_prob:.3f` on probabilities). {glue:text}`matched_sentence`
#
# **Which pairs BA is measured on.** Of the {glue:text}`n_pairs:d` attribute–identity pairs,
# {glue:text}`n_rule:d` pass the authors' 10% rule on the training split and {glue:text}`n_sig:d`
# of those are also significant (two-proportion test, $p<0.01$); {glue:text}`planted_sentence`
# Per-attribute AUC and BA per identity category (mean over seeds):

# %%
dense_row = by_sparsity.loc[0.0]
for key, name in (("accuracy", "acc"), ("auc", "auc"), ("tcb", "tcb"), ("uncertainty", "unc"),
                  ("ece", "ece"), ("interrelation", "int")):
    glue(f"dense_{name}", float(dense_row[key]))
glue("dense_int_prob", float(dense_row["interrelation_prob"]))
if "matched_accuracy" in main:
    # the dense model trained on for as long as the sparse runs: does the extra training alone move a metric?
    gap = {k: mean_ci(main[f"matched_{k}"].to_numpy(dtype=float) - np.asarray(
        [r[k][0] for _, r in main.iterrows()], dtype=float)) for k in ("accuracy", "uncertainty", "tcb")}
    glue("matched_sentence", "Trained on for the sparse runs' epochs without pruning (`matched_*` in `main`), "
         "the dense model's accuracy " + verdict(gap["accuracy"][1], gap["accuracy"][2], below="falls",
                                                  above="rises", neither="does not change measurably")
         + f" ({gap['accuracy'][0]:+.3f}, 95% CI {gap['accuracy'][1]:+.3f} to {gap['accuracy'][2]:+.3f} over seeds) "
         "and its uncertainty rate " + verdict(gap["uncertainty"][1], gap["uncertainty"][2], below="falls",
                                               above="rises", neither="does not change measurably")
         + f" ({gap['uncertainty'][0]:+.3f}, {gap['uncertainty'][1]:+.3f} to {gap['uncertainty'][2]:+.3f}): the "
         "budget-matched reference for the sparse models.")
else:
    glue("matched_sentence", "With GMP-RI the dense model trains as long as every sparse one, so it is the "
         "budget-matched reference itself.")
pair_p = np.reshape(main["pair_p"].iloc[0], (K, -1))
pair_rule = np.reshape(main["pair_rule"].iloc[0], (K, -1)).astype(bool)
IDS = list(main["identities"].iloc[0])
glue("n_pairs", int(np.isfinite(pair_p).sum()))
glue("n_rule", int(pair_rule.sum()))
glue("n_sig", int((pair_rule & (pair_p < cfg["alpha"])).sum()))
sig_pairs = [f"{ATTRS[i]}–{IDS[j]}" for i, j in zip(*np.nonzero(pair_rule & (pair_p < cfg["alpha"])))]
print(f"pairs measured (10% rule and p < {cfg['alpha']:g} in training):", ", ".join(sig_pairs))
if cfg["data"] == "synthfaces":
    from fairlib.data.synthfaces import DEFAULT_CORRELATIONS

    planted = [f"{a}–{g}" for a, g in DEFAULT_CORRELATIONS if a in ATTRS and g in IDS]
    glue("planted_sentence", f"the generator plants {len(planted)} links among these attributes "
         f"({', '.join(planted)}), and {sum(p in sig_pairs for p in planted)} of them are among the "
         f"significant pairs, together with {len([p for p in sig_pairs if p not in planted])} unplanted ones.")
else:
    glue("planted_sentence", "CelebA's correlations are not planted, so there is no list to check them against.")
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
# **Joint versus single-attribute training.** The paper finds that dense models trained on one
# attribute alone amplify bias more than jointly trained ones (BA with respect to Male about 3×
# higher for Oval Face and Big Nose) and under-predict the rarer value more (lower TCB); with
# sparsity the jointly trained models worsen towards the single ones, so the gap narrows: the
# BA of dense single models is about as high as that of 99.5%-sparse joint ones (its Fig. 3,
# §3.1–3.3). Our comparison, for the attributes trained alone, {glue:text}`single_sparsities_text`:

# %%
single_seeds = P.single_table(main)  # one row per seed, attribute, training and sparsity
single_table = single_seeds.groupby(["attribute", "sparsity", "training"]).mean().drop(columns="seed")
single_table = single_table.dropna(axis=1, how="all")
glue("single_sparsities_text", "dense and pruned with the joint models' recipe to "
     + ", ".join(f"{100 * s:g}%" for s in cfg["single_sparsities"]) if cfg["single_sparsities"] else
     "dense only (this profile prunes no single-attribute model; the paper profile prunes them to every sparsity)")
BA_ID = IDS[0]  # the paper's Fig. 3 measures BA with respect to Male (quick: its stand-in)
glue("ba_identity", BA_ID)
single_parts = []
for name in cfg["single"]:
    for s in [0.0] + list(cfg["single_sparsities"]):
        rows = single_seeds[(single_seeds.attribute == name) & (single_seeds.sparsity == s)]
        auc_single = float(rows[rows.training == "single"]["auc"].mean())
        where = "dense" if s == 0 else f"at {100 * s:g}%"
        parts = []
        for metric, column, paper_way in (("TCB", "tcb", "below"), ("BA", f"BA {BA_ID}", "above")):
            per = rows.pivot(index="seed", columns="training", values=column)
            m, lo, hi = mean_ci((per["single"] - per["joint"]).to_numpy(dtype=float))
            if not auc_single > 0.6:
                words = f"not comparable: the single model barely learns it (AUC {auc_single:.2f})"
            elif not np.isfinite(m):
                words = "undefined (a model predicts no positives, or a group has too few test positives)"
            else:
                words = verdict(lo, hi, **{paper_way: f"{'lower' if paper_way == 'below' else 'higher'} with single "
                                                      "training, the paper's direction",
                                           ("above" if paper_way == "below" else "below"):
                                               f"{'higher' if paper_way == 'below' else 'lower'} with single "
                                               "training, against the paper's direction"},
                                neither="not distinguishable over these seeds")
            parts.append(f"{metric} {float(per['joint'].mean()):.2f} joint, {float(per['single'].mean()):.2f} "
                         f"single, difference {m:+.2f} (95% CI {lo:+.2f} to {hi:+.2f}): {words}")
        single_parts.append(f"{name} {where}: " + "; ".join(parts))
glue("single_sentence", ". ".join(single_parts) + ".")
print(f"joint vs single-attribute training, mean over seeds ({NOTE}):")
single_table.round(3)

# %% [markdown]
# Per attribute trained alone, single minus joint TCB and BA (with respect to
# {glue:text}`ba_identity`), each with its 95% interval over seeds: {glue:text}`single_sentence`
# The paper reports, for dense Oval Face models, a TCB of 0.84 (joint) against 0.52 (single)
# and a BA of 0.04 against 0.15; for Big Nose a BA of 0.03 against 0.11.
#
# ### The sparsity sweep
#
# Measured sparsities match the targets to within {glue:text}`max_sparsity_gap:.2g` percentage
# points. How each metric moves with sparsity, per seed and on average:

# %% tags=["hide-input"]
metrics_to_plot = {"accuracy": "accuracy", "auc": "AUC", "tcb": "TCB (1 is ideal)",
                   "uncertainty": "uncertainty rate", "ece": "ECE (10 bins)",
                   "interrelation": "label interrelation R² (hard)", "interrelation_prob": "interrelation R² (probs)",
                   "mean_ba": "mean BA", "worst_ba": "worst-case BA"}
xs = ["dense"] + [f"{100 * s:g}%" for s in SPARSITIES]
fig, axes = plt.subplots(2, 5, figsize=(15, 5.6), sharex=True)
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
TOP = max(SPARSITIES)
glue("max_sparsity_gap", 100 * float((measured - pd.Series([0.0] + SPARSITIES, index=measured.index)).abs().max()))


MATCHED = "matched_accuracy" in main  # GMP-PT: the 0% run of the sparse runs' length is the reference


def reference(key: str) -> pd.Series:
    """Per seed, the model every sparse one is compared with: the budget-matched dense run (GMP-PT) or the dense one."""
    if MATCHED and f"matched_{key}" in main:
        return main.set_index("seed")[f"matched_{key}"].astype(float)
    return table[table.sparsity == 0.0].set_index("seed")[key]


def change(key: str, s: float) -> tuple[float, float, float]:
    """Mean over seeds of metric(sparsity s) - metric(reference), paired by seed, with its t-interval."""
    at = table[table.sparsity == s].set_index("seed")[key]
    return mean_ci((at - reference(key)).to_numpy(dtype=float))


def moves(key: str, s: float) -> str:
    m, lo, hi = change(key, s)
    if not np.isfinite(m):
        return "is undefined (no BA pair is defined for some model)"
    words = verdict(lo, hi, below="falls", above="rises", neither="does not change measurably")
    return f"{words} ({m:+.3f}, 95% CI {lo:+.3f} to {hi:+.3f})"


for key in P.SUMMARY_METRICS:
    for s in SPARSITIES:
        glue(f"s{100 * s:g}_{key}".replace(".", "_"), float(by_sparsity.loc[s, key]),
             missing="undefined (no pair's BA is defined)")
    glue(f"top_{key}", float(by_sparsity.loc[TOP, key]), missing="undefined (no pair's BA is defined)")
    glue(f"move_{key}", moves(key, TOP))
glue("dense_worst_ba", float(dense_row["worst_ba"]), missing="undefined (no pair's BA is defined)")
m_ba, lo_ba, hi_ba = change("mean_ba", TOP)
const_top = float(by_sparsity.loc[TOP, "constant_outputs"])
glue("ba_reconcile", "ours " + (
    "agrees." if np.isfinite(lo_ba) and lo_ba > 0 else
    f"shows the opposite: it falls, while {const_top:.0%} of the {100 * TOP:g}% models' attributes are predicted "
    "as a constant, a broken model rather than a fairer one." if np.isfinite(hi_ba) and hi_ba < 0 else
    "cannot tell whether it changes (its interval contains zero)." if np.isfinite(m_ba) else
    "cannot be checked here (BA is undefined for the sparsest models)."))
glue("reference_text", "the budget-matched dense model (the 0% run as long as every GMP-PT run)" if MATCHED
     else "the dense model (as long as every GMP-RI run)")
glue("top_label", f"{100 * TOP:g}%")
# the first sparsity whose accuracy lies below the dense model's beyond the seed-to-seed noise
broken = [s for s in SPARSITIES if change("accuracy", s)[2] < 0]
glue("break_sentence", f"Accuracy first falls below the dense model's beyond the seed spread at {100 * broken[0]:g}% "
     "sparsity." if broken else "At no sparsity does accuracy fall below the dense model's beyond the seed spread.")
n_weights = int(main["n_weights"].iloc[0])
resnet18 = torchvision.models.resnet18(weights=None)  # the paper's network, counted as P.run_seed counts ours
n_resnet = sum(m.weight.numel() for m, _ in P.prunable_weights(resnet18))
del resnet18
undefined_top = int(np.isnan(P.ba_cube(main)[:, 1 + SPARSITIES.index(TOP)]).sum())
defined_dense = P.ba_cube(main)[:, 0]
undefined_dense = int(np.isnan(defined_dense).sum())
for name, value in {"n_weights": n_weights, "n_left": int(round(n_weights * (1 - TOP))), "n_resnet": n_resnet,
                    "n_resnet_left": int(round(n_resnet * (1 - TOP))), "undefined_top": undefined_top,
                    "undefined_dense": undefined_dense}.items():
    glue(name, value)
if n_weights == n_resnet:
    glue("scale_sentence", f"this profile prunes ResNet18 itself, whose {n_resnet:,} prunable weights keep about "
         f"{round(n_resnet * (1 - TOP)):,} at {100 * TOP:g}% sparsity, as in the paper.")
else:
    glue("scale_sentence", f"this profile's network ({cfg['model']}) has {n_weights:,} prunable weights, so "
         f"{100 * TOP:g}% sparsity leaves about {round(n_weights * (1 - TOP)):,} of them, while the paper's ResNet18 "
         f"keeps {round(n_resnet * (1 - TOP)):,} of its {n_resnet:,}.")

# %% [markdown]
# Each change below is the mean over seeds of (sparse − reference) for the same seed, with its 95%
# Student-t interval, where the reference is {glue:text}`reference_text`; the direction word is
# computed from the interval. From dense to
# {glue:text}`top_label` sparsity the mean accuracy {glue:text}`move_accuracy` and the AUC
# {glue:text}`move_auc`; TCB {glue:text}`move_tcb`; the uncertainty rate
# {glue:text}`move_uncertainty`; ECE {glue:text}`move_ece`; label interrelation on hard predictions
# {glue:text}`move_interrelation` (on probabilities it {glue:text}`move_interrelation_prob`); the
# share of attributes a model predicts as constant {glue:text}`move_constant_outputs`. The mean BA
# over the measured pairs {glue:text}`move_mean_ba`, and the worst-case BA
# {glue:text}`move_worst_ba`. {glue:text}`break_sentence`
#
# Scale matters when reading this: {glue:text}`scale_sentence` A model whose outputs become
# constant predicts each attribute's majority value: its TCB falls and its BA can become undefined
# (no predicted positives). Over the seeds, {glue:text}`undefined_top:d` BA entries of the
# {glue:text}`top_label` models are undefined, against {glue:text}`undefined_dense:d` of the dense
# models (entries include the pairs never measured). A broken model is not a fair one.
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
# single-attribute model on them, and prune it with the same recipe (`P.run_backdoor`, one GMP run
# per sparsity; {glue:text}`bd_seeds:d` seed(s) in this profile). The test images carry the square
# on a random half, independent of the label
# (`P.backdoor_flags`, `P.stamp`). With "backdoored" as the identity category, BA measures how
# much the model uses the square as a shortcut. As a control, `P.run_seed` showed the same
# stamped test images to the clean dense joint model of each seed. {glue:text}`bd_tasks_sentence`

# %%
backdoor_all = sweep.run(P.run_backdoor, BACKDOOR, store=sweep.default_store("05_pruning_bias", "backdoor"))
# the analysis below reads the grid's first backdoor (the yellow square on its attribute); the paper profile
# also runs the paper's other attributes and the grayscale trigger, listed after it
first = BACKDOOR[0]
backdoor = backdoor_all[(backdoor_all["attribute"] == first["attribute"])
                        & (backdoor_all["trigger"] == first["trigger"])]
BACKDOOR = [c for c in BACKDOOR if c["attribute"] == first["attribute"] and c["trigger"] == first["trigger"]]
others = sorted({(c, t) for c, t in zip(backdoor_all["attribute"], backdoor_all["trigger"])} - {
    (first["attribute"], first["trigger"])})
glue("bd_tasks_sentence", "This profile runs one backdoor." if not others else
     f"This profile also runs {len(others)} more backdoors (" + ", ".join(f"{a} with the {t} trigger"
                                                                          for a, t in others)
     + "), in `backdoor_all`; the analysis below reads the first.")
bd_seeds = P.backdoor_table(backdoor, main)  # one row per seed and model
bd_table = bd_seeds.groupby(["model", "sparsity"], sort=False).mean().drop(columns="seed")
glue("bd_seeds", len(BACKDOOR))


def ba_words(values: np.ndarray) -> str:
    """A BA over seeds in words: the value, and the direction only when an interval exists."""
    v = np.asarray(values, dtype=float)
    if not np.isfinite(v).any():
        return "undefined (the model predicts no positives, or a group has too few test positives)"
    m, lo, hi = mean_ci(v)
    if np.isfinite(v).sum() < 2:
        return f"{m:.3f} (one seed: no interval)"
    return f"{m:.3f} (95% CI {lo:.3f} to {hi:.3f}; " + verdict(
        lo, hi, below="the trigger lowers the predicted rate", above="the trigger raises the predicted rate",
        neither="no measurable shortcut") + ")"


def bd_values(model: str, s: float) -> np.ndarray:
    rows = bd_seeds[(bd_seeds.model == model) & np.isclose(bd_seeds.sparsity, s)]
    return rows["BA (backdoored)"].to_numpy(dtype=float)


BD_TOP = max(BACKDOOR[0]["sparsities"])
glue("bd_dense", ba_words(bd_values("trained with trigger", 0.0)))
glue("bd_sparse", ba_words(bd_values("trained with trigger", BD_TOP)))
glue("bd_clean", ba_words(bd_values("clean joint model", 0.0)))
glue("bd_top", f"{100 * BD_TOP:g}%")
bd_change = bd_values("trained with trigger", BD_TOP) - bd_values("trained with trigger", 0.0)
if len(bd_change) < 2:
    glue("bd_seeds_sentence", "With one seed this is a demonstration, not a measurement of how sparsity changes "
         "the effect.")
else:
    m, lo, hi = mean_ci(bd_change)
    glue("bd_seeds_sentence", f"From dense to {100 * BD_TOP:g}% sparsity the backdoored model's BA changes by "
         f"{m:+.3f} (95% CI {lo:+.3f} to {hi:+.3f} over {len(bd_change)} seeds): it " + verdict(
             lo, hi, below="falls", above="rises", neither="does not change measurably") + "."
         if np.isfinite(m) else "Its change with sparsity is undefined (a model predicts no positives).")
gap = bd_values("trained with trigger", 0.0) - bd_values("clean joint model", 0.0)
m, lo, hi = mean_ci(gap)
glue("bd_gap", f"{m:+.3f} over {len(gap)} seed(s)" + (
    "" if len(gap) < 2 else f" (95% CI {lo:+.3f} to {hi:+.3f}: " + verdict(
        lo, hi, below="lower", above="higher", neither="not distinguishable") + ")"), missing="undefined")
print(f"backdoor on {BACKDOOR[0]['attribute']!r}, mean over {len(BACKDOOR)} seed(s) ({NOTE}):")
bd_table.round(3)

# %% [markdown]
# The model trained on backdoored data has a BA with respect to the trigger of
# {glue:text}`bd_dense` (dense) and {glue:text}`bd_sparse` at {glue:text}`bd_top` sparsity, against
# {glue:text}`bd_clean` for the clean joint model of the same seeds (never shown the trigger); the
# difference between the dense backdoored model and the clean one is {glue:text}`bd_gap`.
# {glue:text}`bd_seeds_sentence`
#
# ## Mitigation
#
# **Compression-identified exemplars (CIEs)** are the test examples (per attribute) whose modal
# prediction over the dense runs differs from the modal prediction over the sparse runs. The paper
# finds them strongly enriched for examples the *dense* model is already uncertain about, which
# motivates overriding the most uncertain examples. Uncertainty is measured for each dense model
# on its own (the share of its outputs in (0.1, 0.9)), on the CIEs and on all test examples
# (`P.cie_table`; the min and max are over the dense models):

# %%
cie_table = P.cie_table(main)
cie_table.index.name = f"sparsity ({NOTE})"
dense_u = np.array([fairlib.metrics.uncertainty_rate(P.sigmoid(np.asarray(r["dense_test_logits"])))
                    for _, r in main.iterrows()])
enriched = [s for s in cie_table.index if cie_table.loc[s, "min over dense models"] > dense_u.max()]
glue("cie_unc", float(cie_table.loc[TOP, "dense uncertainty on CIEs"]), missing="no CIEs at this sparsity")
glue("all_unc", float(dense_u.mean()))
glue("cie_enrich", float(cie_table.loc[TOP, "enrichment"]), missing="undefined (no CIEs)")
glue("cie_every", f"{len(enriched)} of the {len(cie_table)} sparsities" if len(enriched) < len(cie_table)
     else f"every sparsity ({len(cie_table)})")
cie_table.round(3)

# %% [markdown]
# At {glue:text}`top_label` sparsity, {glue:text}`cie_unc:.2f` of the dense models' outputs on
# CIEs are uncertain, against {glue:text}`all_unc:.2f` of their outputs on all test examples: an
# enrichment of {glue:text}`cie_enrich:.1f`×. At {glue:text}`cie_every`, even the least uncertain
# dense model on the CIEs is more uncertain there than any dense model is overall. The paper
# reviews CIEs by eye (its appendix; the authors' `example_viewer.py`); a random sample of ours
# at the highest sparsity, with the dense models' mean probability:

# %% tags=["hide-input"]
examples = P.cie_examples(main, TOP, n=8, seed=SEED)
if len(examples):
    fig, axes = plt.subplots(1, len(examples), figsize=(1.6 * len(examples), 2.2))
    for ax, (_, ex) in zip(np.atleast_1d(axes), examples.iterrows()):
        ex_i, ex_a = int(ex["index"]), ATTRS.index(ex["attribute"])
        ax.imshow(data.images["test"][ex_i].permute(1, 2, 0).numpy())
        ax.set_title(f"{ex['attribute']}\ntrue {int(data.labels['test'][ex_i, ex_a])}, dense p {ex['dense p']:.2f}\n"
                     f"sparse says {int(ex['sparse modal'])}", fontsize=7)
        ax.axis("off")
    fig.suptitle(f"CIEs at {100 * TOP:g}% sparsity ({NOTE})", fontsize=9)
    fig.tight_layout()
    plt.show()
else:
    print("no CIEs at this sparsity")

# %% [markdown]
# Now the two countermeasures, per seed and sparsity; `P.run_seed` applied them to each model and
# kept the BA tables. As in the paper, they target the attribute–identity pairs where the dense
# model already amplifies bias. We choose these pairs on the **validation** split (dense BA,
# mean over seeds, positive: {glue:text}`n_pos:d` pairs), so that the test BA they are scored
# on did not select them (selecting on the test split would let regression to the mean pass
# for an effect).

# %%
val_ba = np.stack([np.reshape(r["dense_val_ba"], (K, -1)) for _, r in main.iterrows()])
with np.errstate(invalid="ignore"):
    val_mean = np.where(np.isfinite(val_ba).any(0), np.nansum(val_ba, 0) / np.maximum(np.isfinite(val_ba).sum(0), 1),
                        np.nan)
POS = pd.DataFrame(np.nan_to_num(val_mean) > 0, index=ATTRS, columns=IDS)  # pairs with positive dense BA
glue("n_pos", int(POS.to_numpy().sum()))
mitigation = P.mitigation_table(main, POS).groupby("sparsity").mean().drop(columns="seed")
effects = {s: P.mitigation_effects(main, POS, s) for s in [0.0] + SPARSITIES}
PAPER_CHANGE = {"human override 5%": -23.0, "human override 10%": -35.0}


def effect_words(s: float, method: str) -> str:
    e = effects[s].loc[method]
    if not np.isfinite(e["change"]):
        return "undefined (no selected pair's BA is defined for these models)"
    words = verdict(e["change low"], e["change high"], below="lowers it", above="raises it",
                    neither="does not change it measurably")
    return f"{words} ({e['change']:+.4f}, 95% CI {e['change low']:+.4f} to {e['change high']:+.4f})"


def percent_words(s: float, method: str) -> str:
    e, base = effects[s].loc[method], effects[s].attrs["baseline"]
    if not np.isfinite(e["change %"]):
        return (f"no percentage: the baseline mean BA is {base[0]:.4f} with a 95% interval from {base[1]:.4f} "
                f"to {base[2]:.4f}, not wholly above zero, so a relative change has no fixed sign")
    paper = PAPER_CHANGE[method]
    fits = e["change % low"] <= paper <= e["change % high"]
    return (f"{e['change %']:+.0f}% (95% CI {e['change % low']:+.0f}% to {e['change % high']:+.0f}% of the baseline "
            f"mean), {'compatible with' if fits else 'outside the interval of'} the paper's {paper:+.0f}%")


glue("base_top", float(effects[TOP].attrs["baseline"][0]), missing="undefined (no selected pair's BA is defined)")
glue("cal_top", effect_words(TOP, "calibrated thresholds"))
glue("h5_top", effect_words(TOP, "human override 5%"))
glue("h10_top", effect_words(TOP, "human override 10%"))
glue("h5_pct", percent_words(TOP, "human override 5%"))
glue("h10_pct", percent_words(TOP, "human override 10%"))
glue("h10_dense", effect_words(0.0, "human override 10%"))
glue("cal_dense", effect_words(0.0, "calibrated thresholds"))
base_m, base_lo, base_hi = effects[TOP].attrs["baseline"]
glue("mitigation_reading", "with a baseline BA below zero (the sparse models under-predict the associated "
     "group), \"raises\" moves the BA towards the labels' own association, which is not the paper's setting of a "
     "positive BA to remove." if np.isfinite(base_hi) and base_hi < 0 else
     "the paper's setting, a positive baseline BA, holds here." if np.isfinite(base_lo) and base_lo > 0 else
     "the baseline BA's interval contains zero, so a change in either direction is not clearly a reduction.")

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(8, 3.8))
for col, style in zip(mitigation.columns, ["-o", "--s", "-^", ":^", "-v", ":v"]):
    ax.plot(xs, mitigation[col].to_numpy(), style, label=col)
ax.axhline(0, color="k", lw=0.8)
ax.set(xlabel="sparsity", ylabel="mean BA (mean over seeds)",
       title=f"Mean BA of the selected pairs before and after mitigation\n({NOTE})")
ax.legend(fontsize=8, ncol=2)
plt.show()

# %%
shown = pd.concat({f"{100 * s:g}%" if s else "dense": e[["mean BA", "change", "change low", "change high"]]
                   for s, e in effects.items()}, names=[f"sparsity ({NOTE})", "method"])
shown.round(4)

# %% [markdown]
# Each effect is the mean over seeds of (BA after the method − BA with the default threshold) for
# the same model, with its 95% interval. For our {glue:text}`top_label` models (baseline mean BA
# {glue:text}`base_top`), threshold calibration {glue:text}`cal_top`; human overrides of the 5%
# most uncertain examples {glue:text}`h5_top`, and of the 10% {glue:text}`h10_top`. As a share of
# the baseline: 5%, {glue:text}`h5_pct`; 10%, {glue:text}`h10_pct`. On the dense models, threshold
# calibration {glue:text}`cal_dense` and human overrides of 10% {glue:text}`h10_dense`.
#
# ## Compare with the paper
#
# The paper's numbers are for ResNet18 on CelebA (40 attributes, joint training, GMP-RI, 5 seeds)
# {cite:p}`iofinova2023pruned`; ours come from the profile named in each table. Its Table 1 lists
# mean accuracy and AUC (in %) by sparsity, beside our means for this profile:

# %%
paper_t1 = pd.DataFrame(
    {"paper accuracy (%)": [90.4, 90.8, 91.0, 91.3, 91.5, 91.5, 91.1],
     "paper AUC (%)": [80.5, 81.0, 81.3, 81.5, 81.5, 81.0, 79.7]},
    index=["dense"] + [f"{100 * s:g}%" for s in P.SPARSITIES])
ours = 100 * by_sparsity[["accuracy", "auc"]].set_axis(["our accuracy (%)", "our AUC (%)"], axis=1)
ours.index = xs
compare = pd.concat([paper_t1, ours.round(1)], axis=1)
compare.index.name = f"sparsity (ours: {NOTE})"
compare

# %%
# the paper's direction of each systematic metric from dense to 99.5%, beside ours (computed above)
paper_dirs = pd.DataFrame({
    "paper, dense → 99.5%": ["about flat (90.4 → 91.1%)", "falls at 99.5% (80.5 → 79.7%)", "falls (0.90 → 0.81)",
                             "about doubles", "falls (0.054 → 0.013)", "rises (0.31 → 0.36)",
                             "rises beyond 95%"],
    f"ours, dense → {100 * TOP:g}%": [moves(k, TOP) for k in ("accuracy", "auc", "tcb", "uncertainty", "ece",
                                                              "interrelation", "mean_ba")],
}, index=["accuracy", "AUC", "TCB", "uncertainty", "ECE", "label interrelation (hard)", "mean BA"])
paper_dirs.index.name = f"metric (ours: {NOTE})"
glue("n_seeds_text", f"{len(main)}")
glue("profile_caveat", "The quick profile uses synthetic faces, a network with far fewer weights (most of them in "
     "its head) than ResNet18, GMP-PT and a few epochs, so only the *direction* of the effects can be compared."
     if cfg["data"] == "synthfaces" else "This profile trains ResNet18 on CelebA as the paper does, on fewer images "
     "and epochs (see the table below), so its magnitudes, not only its directions, can be set beside the paper's.")
paper_dirs

# %% [markdown]
# What the paper reports {cite:p}`iofinova2023pruned`: accuracy stays flat, even rising slightly,
# up to 99% sparsity, and AUC only drops below the dense value at 99.5% (Table 1); the mean TCB of
# the jointly trained models falls from 0.90 (dense) to 0.81 (99.5%); their mean ECE *improves*
# from 0.054 to 0.013; uncertainty roughly doubles; label interrelation rises from $R^2$ 0.31 to
# 0.36; BA rises slightly between 90 and 95% and more clearly beyond; threshold calibration almost
# removes the bias amplification up to 90% sparsity; and human overrides of the 5% (10%) most
# uncertain examples lower the mean BA of the 99.5% model by 23% (35%). The same Table 1 gives
# CPU throughput with a sparsity-aware engine (DeepSparse): 130 items/s dense against 403 at
# 99.5%. Stock PyTorch multiplies the zeros with its dense kernels: {glue:text}`bench_sentence`
#
# Our directions are in the table above, each computed from its interval over
# {glue:text}`n_seeds_text` seeds; only effects whose interval excludes zero count.
# {glue:text}`profile_caveat`
#
# ### Where we differ from the paper
#
# | | the paper {cite:p}`iofinova2023pruned` | this chapter | why |
# |---|---|---|---|
# | data | CelebA, 162,770 training images, 224 px crops of images resized to 256 | quick: SynthFaces, 2,500 at 24 px; full: 40,000 CelebA images; full and paper: shorter side scaled to 128 and the centre square kept (aspect ratio unchanged, `fit="crop"`) | CPU budget; a Colab session; 128 px keeps the image cache within Colab's disk and RAM |
# | augmentation | random 224 crops of images resized to 256 (shorter side), horizontal flips | quick: none; full and paper profiles: random shifts of up to ±9 px (zero padding) and flips of the 128 px centre square | the image cache stores one square per image, so shifts pad with zeros where the paper's crops see more of the image; at 24 px the quick images have no margin to crop |
# | dense training | SGD 0.256, momentum 0.875, no weight decay, cosine after a 5-epoch warm-up, 100 epochs | same schedule family; quick: Adam 3e-3 (weight decay 5e-4), 8 epochs; full: SGD 0.1 with the authors' momentum 0.875 (Nesterov) and no weight decay, 10 epochs; paper profile: the authors' values, 100 epochs | budget; the course's one SGD recipe uses Nesterov momentum (`fairlib.training.make_optimizer`) |
# | GMP | GMP-RI, one run per sparsity, pruning at epochs 10, 20, …, 80 of 100 | one run per sparsity (same budget for all); quick: GMP-PT, 4 epochs, cuts at epochs 0, 1, 2; full: GMP-RI, 10 epochs, cuts at 1–6; paper profile: the authors' schedule | CPU budget (quick); Colab budget (full) |
# | network | ResNet18 with one linear output layer (an extra hidden layer was tried and rejected, §2.4) | quick: a small ResNet trunk (width 8) with a 256-unit hidden layer, about 317,000 prunable weights, most of them in the head; full and paper: torchvision ResNet18 | at 24 px the small trunk needs the hidden layer to learn the attributes in 8 epochs |
# | targets and identities | 40 CelebA attributes; identities Male, Young, Chubby, Pale_Skin | quick: 12 synthetic attributes (4 invisible at 24 px dropped), identities *angular*, *smooth*, *wide*, *light* as stand-ins | synthetic data |
# | warm-up | 5 of 100 epochs | full: 1 of 10; paper profile: 5 of 100 | proportional |
# | checkpoint | best validation epoch (at the final sparsity) | the same rule, mean accuracy over attributes; full: epochs ranked on 5,000 of the 19,867 validation images | all of them would take the full profile over 3 T4-hours |
# | GMP weight decay | 3.05e-5 (authors' configs) | quick 5e-4 (Adam); full and paper 3.05e-5 | — |
# | sparsities | 80, 90, 95, 98, 99, 99.5% | quick: 90, 98, 99.5%; full and paper: all six | CPU budget |
# | seeds | 5 (joint), 5 (backdoor) | quick 3 (backdoor 1); full 3 (backdoor 3); paper 5 | budget |
# | BA pairs | "significantly" biased pairs; authors' code: 10% rule | 10% rule and two-proportion test $p<0.01$ on the training split | the 10% rule alone keeps unplanted pairs on 2,500 images |
# | label interrelation | $R^2$ on hard predictions | the same (constant outputs count 1); probabilities shown beside | — |
# | CIE uncertainty | per dense model | per dense model | — |
# | mitigation pairs | pairs with positive dense BA | positive dense BA on the validation split | avoids selecting on the test split |
# | single-attribute models | seven attributes at every sparsity (Fig. 3: Oval Face, Big Nose), 20 epochs, GMP over 20 epochs | quick: lipstick and beard (learnable at 24 px, planted with *angular*), 5 epochs, dense and 98%; full: Oval Face and Big Nose, 5 epochs, dense only; paper profile: the paper's seven attributes, 20 epochs, at every sparsity with the authors' 20-epoch GMP schedule (pruning from epoch 2 to 16) | CPU and Colab budgets (pruned single models would take the full profile over 3 T4-hours) |
# | backdoor | yellow square and grayscale triggers; Blond and Smiling at 95/5, Oval Face and Big Nose at 65/35; 20 epochs | quick and full: the yellow square on one attribute at 95/5, the dense model as long as the GMP runs (full: 10 epochs); paper profile: the paper's four attributes × both triggers × every sparsity, 20 epochs with the single-attribute recipe; the chapter analyses the first | budget |
# | image size | 224-px crops of images resized to 256 | quick 24 px; full 128 px; paper profile 224 px; full and paper: the aspect-preserving centre square (`fit="crop"`) and shifts of up to 9 / 16 px | the full profile's cache must fit Colab's disk and a 3-T4-hour budget |
# | single-attribute recipe | SGD 0.1, momentum 0.9, weight decay 1e-4, constant rate (the authors' ep20 configs) | paper profile: these values with this library's cosine decay (no warm-up); quick and full: the joint recipe | one schedule family for every model |
# | N:M sparsity | 2:4, 1:4, 1:8 models trained with the masks (App. F) | masks applied one-shot to the dense model, no retraining | a first look at what the pattern alone removes |
# | TCB's rarer value | from the training labels (authors' code) | from the test labels | the rarer value differs between the splits only for attributes near 50%; not measured here |
# | Table 1 | accuracy, AUC, FLOPs, DeepSparse throughput | accuracy and AUC; no FLOPs; stock-PyTorch timing | FLOPs of a masked dense model are unchanged in PyTorch |
# | further validation | ResNet50, MobileNetV1, uncropped CelebA, AwA2, iWildCam; co-training (App. D); GMP-PT (App. E) | not run (quick runs GMP-PT instead of GMP-RI) | budget |
# | speed | DeepSparse, 130 → 403 items/s | stock PyTorch, no sparse kernels (`benchmarks/bench_pruning.py`) | no sparse engine on Colab |

# %%
bench_file = next((p for p in (Path("../benchmarks/bench_pruning.json"), Path("benchmarks/bench_pruning.json"),
                               Path("/content/course/benchmarks/bench_pruning.json")) if p.exists()), None)
if bench_file is not None:
    bench = json.loads(bench_file.read_text())
    ms = bench["ms_per_batch"]
    ratios = {k: v / ms["0"] for k, v in ms.items()}
    glue("bench_sentence", f"on one {bench['machine']} CPU thread (torch {bench['torch']}, {bench['date']}), "
         f"`benchmarks/bench_pruning.py` measured {ms['0']:.2f} ms per batch of {bench['batch']} for the dense "
         f"quick network, {ms['0.9']:.2f} ms at 90% and {ms['0.99']:.2f} ms at 99% sparsity (ratios "
         f"{ratios['0.9']:.2f} and {ratios['0.99']:.2f}): " + ("no speed-up beyond timing noise."
                                                          if min(ratios['0.9'], ratios['0.99']) > 0.75 else
                                                          "an apparent speed-up; rerun it on a quiet machine."))
else:
    glue("bench_sentence", "run `python benchmarks/bench_pruning.py` to measure it on your machine "
         "(its saved numbers were not found).")

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
# `P.ba_table(...)` (labels and identities from `data`) and `P.mean_ba(table, POS)`, and take the
# paired difference per seed as `P.mitigation_effects` does. Random overrides correct only the
# errors they happen to hit, spread evenly over groups. If the errors (and the CIEs) of sparse
# models concentrate on the examples the dense model is unsure about, as the CIE table suggests,
# the random choice reduces BA less; whether it does *measurably* is for your interval to say.
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
# a higher BA for single models. Compute `mean_ci` of the per-seed differences (single − joint):
# a difference whose interval includes zero is not a finding, whatever the sign of its mean.
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
#   together; the cubic schedule runs once per target sparsity, with the same budget and
#   learning-rate schedule for every target, and each sparse model is compared with
#   {glue:text}`reference_text`, so that sparsity is not confounded with training.
# - In this run, from dense to {glue:text}`top_label` sparsity, accuracy {glue:text}`move_accuracy`,
#   while the uncertainty rate {glue:text}`move_uncertainty` and TCB {glue:text}`move_tcb`.
# - The mean BA of the significantly associated pairs {glue:text}`move_mean_ba`. The paper finds
#   BA growing at high sparsity; {glue:text}`ba_reconcile`
# - The systematic-bias metrics (TCB, uncertainty, ECE, interrelation) show how the model's
#   outputs change, and BA shows whom it affects.
# - A backdoor makes a planted shortcut measurable with BA, using "backdoored" as the identity.
# - Threshold calibration and overriding the dense model's most uncertain examples are cheap
#   countermeasures that need only the dense model (and, for overrides, a label source). In this
#   run, at {glue:text}`top_label`, calibration {glue:text}`cal_top` and overriding 10%
#   {glue:text}`h10_top`; {glue:text}`mitigation_reading`
# - Unstructured sparsity needs a sparse inference engine to be faster; stock PyTorch is not.
#
# See the bibliography for {cite:t}`iofinova2023pruned` and the work it builds on
# {cite:p}`hooker2020characterising,guo2017calibration`.

# %%
glue("chapter_seconds", time.perf_counter() - T0)
print(f"chapter compute time: {time.perf_counter() - T0:.0f} s")
