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
# # 7. Bias transfer through fine-tuning
#
# Most vision systems start from a backbone pretrained on a large dataset and fine-tune it for
# their task. The backbone's associations (which objects it places near which people) were
# learned from data the fine-tuner never sees. Do they survive fine-tuning, and does the target
# dataset add new ones? {cite:t}`ranjit2023variation` propose a framework to answer this: score
# the associations of a set of concepts before and after fine-tuning and compare the two
# *rankings* with the Bias Transfer Score.
#
# ```{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. build canonical image sets that isolate a concept, an attribute and their pairing;
# 2. compute cosine association scores from any layer of a model, with a WEAT-style effect size
#    and a permutation test;
# 3. fine-tune a backbone by linear probing and in full, and compute the Bias Transfer Score
#    with a bootstrap interval over concepts;
# 4. say which associations fine-tuning kept, introduced or removed, and why a small number of
#    concepts makes every such statement uncertain.
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
from scipy import stats

import fairlib
from fairlib import sweep
from fairlib import transfer as T
from fairlib.notebook import glue

# The settings live in T.transfer_grid, one configuration per fine-tuning run. quick: SynthFaces scenes
# (a style A/B figure beside one of 8 icons, 32x32), a small CNN pretrained on scenes with biased icon/style
# co-occurrence (~30 s on 2 CPU cores). full: ImageNet ResNet-50, COCO canonical sets (val2017), fine-tuned
# on 1,000 val2017 / 20,000 train2017 images without the canonical ones (roughly 1 GPU-hour).
grid = T.transfer_grid(PROFILE, seed=SEED)
cfg = grid[0]  # what every run shares: the data, the layer, the threshold ...
fairlib.seed_everything(SEED)
NOTE = fairlib.profile_note(PROFILE)
grid_frame = pd.DataFrame(grid)
varying = list(grid_frame.columns[grid_frame.nunique() > 1])
print(f"profile={PROFILE}, shared by every run:", {k: v for k, v in cfg.items() if k not in varying})
grid_frame[varying]  # one fine-tuning run per row


# %% [markdown]
# **Compute and data.** The next cell prints this profile's compute plan (`python -m fairlib.sweep
# plan` gives the detail). The full and paper profiles read coco from the data root; the next cell
# fetches what is missing (it prints the download size) and does nothing in the quick profile. On
# Colab, `use_drive()` first puts the data root, the image cache and the sweep's finished runs on
# Google Drive (`FAIRLIB_DATA`, `FAIRLIB_CACHE`, `FAIRLIB_RESULTS`): after a disconnect, a new
# session reuses the data and resumes the sweep where it stopped.

# %%
from fairlib.plan import plan

print(plan("07_bias_transfer", PROFILE).summary())  # runs, T4-hours and peak memory, computed from the code
if PROFILE != "quick":
    from data_scripts.fetch import ensure
    from fairlib.notebook import use_drive

    use_drive()
    ensure(["coco"])

# %% [markdown]
# ## The idea
#
# Take a model $f$ and a layer. For every **concept** $c$ (an object: surfboard, car, ...) we
# ask whether the model's representation of the concept sits closer to images of one attribute
# value $a$ (e.g. *man*) than of the other, $b$ (*woman*). That gives an association score
# $s_c(f)$ per concept. Fine-tune $f$ on a target dataset to get $f'$, score again, and compare:
#
# $$\mathrm{BTS}(f, f') = \rho_{\text{Spearman}}\bigl(\{s_c(f)\}_c,\ \{s_c(f')\}_c\bigr).$$
#
# A BTS near 1 means the ranking of the pretrained model's associations survived: the concepts
# most associated with $a$ before are still the most associated after. Near 0: the target data
# reshuffled them. The score ignores *how strong* associations are; we look at that separately
# (which associations appear, vanish or flip).
#
# Our copy of the paper is a summary and its abstract, so several details are not given there.
# The table lists what we compute and, where the summary is silent, what we chose and why.
#
# | step | the paper (summary/abstract) | what `fairlib.transfer` computes |
# |---|---|---|
# | canonical sets | images of single concepts and pairs of concepts, from COCO and OpenImages | concept alone (no person), attribute alone (person captioned *man* / *woman*, none of the concepts), concept paired with each attribute value; quick: SynthFaces icons, figure styles A/B, icon beside a figure, matched index by index |
# | representation | the model's internal features | one layer (`avgpool` / the small CNN's `pool`), globally average-pooled to $(N, D)$ |
# | association | how closely object features cluster with each gender | $s_c$ = mean cosine similarity of the concept's images to set $a$ minus that to set $b$ (our choice: cosine, as in embedding association tests) |
# | significance | not stated | WEAT-style effect size and a permutation p-value over the attribute images (our addition) |
# | BTS | Spearman rank correlation between pretraining and fine-tuned associations | `fairlib.metrics.bias_transfer_score` on $s_c$, with a percentile bootstrap interval over concepts (our addition) |
# | "new biased associations" | not defined in the summary | the absolute effect size crossing 0.5 (a "medium" effect) upwards; "vanished": downwards; "flipped": a sign change with at least 0.5 on both sides (our choice) |
#
# Gender words in COCO captions are a crude proxy written by annotators; the full profile's
# attribute sets inherit their errors and their binary framing (see the exercises).

# %% [markdown]
# ## The method
#
# **Association score.** With $X_c$ the embeddings of concept $c$'s images and $A$, $B$ those of
# the two attribute sets,
#
# $$s_c = \frac{1}{|X_c|\,|A|}\sum_{x\in X_c}\sum_{y\in A}\cos(x, y) \;-\;
#         \frac{1}{|X_c|\,|B|}\sum_{x\in X_c}\sum_{y\in B}\cos(x, y).$$
#
# $s_c > 0$: concept $c$ is closer to $a$. A constant shift of all $s_c$ (one attribute set simply
# being "closer to everything") does not change the ranking, hence not the BTS.
#
# **Effect size and test.** Let $m_c(y)$ be the mean similarity of $c$'s images to attribute
# image $y$. Then $s_c = \bar m_c(A) - \bar m_c(B)$ and, as in the word-embedding association
# test, $d_c = s_c / \operatorname{sd}_{y \in A\cup B}\, m_c(y)$ is unit-free. Under the null
# hypothesis that the model does not tell $a$ from $b$ *with respect to $c$*, the a/b labels of
# the attribute images are exchangeable, so we permute them $P$ times and report
# $p = \bigl(1 + \#\{|s_c^{\pi}| \ge |s_c|\}\bigr) / (1 + P)$.
#
# **Interval for the BTS.** The concepts are the sample: we resample them with replacement,
# recompute ρ and take percentiles (resamples in which all scores are equal have no ranking and
# are skipped). With a handful of concepts the interval is wide: Chapter 1 showed how little ten
# concepts say.

# %% [markdown]
# ## The data
#
# In the quick profile the "pretraining dataset" is a set of SynthFaces scenes: a figure whose
# style is A or B next to one of 8 icons. Each icon co-occurs with style B at its own rate,
# from 10% to 90%; the pretraining task is to name the icon. The fine-tuning targets have the
# same task but **a different co-occurrence table** (the same rates, assigned to the icons in an
# order unrelated to the pretraining one), and come in a small and a large size.
#
# `T.transfer_setup` builds what every fine-tuning run shares, once: the canonical sets, the
# pretraining data (`T.scene_transfer_data`; in the full profile COCO through
# `fairlib.data.load_dataset("coco")`), the pretrained backbone and its association scores. The
# runs below reuse it.

# %%
setup = T.transfer_setup(cfg)
sets, pretrained, before, planted, transform = setup.sets, setup.model, setup.before, setup.planted, setup.transform
glue("n_concepts", len(sets.concepts))
sets.sizes()

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 5, figsize=(9, 2.2))
c0 = list(sets.concepts)[1]
for ax, (title, img) in zip(axes, [(f"{c0} alone", sets.concepts[c0][0]),
                                   (f"{sets.names[0]} alone", sets.attribute_a[0]),
                                   (f"{sets.names[1]} alone", sets.attribute_b[0]),
                                   (f"{c0} + {sets.names[0]}", sets.paired_a[c0][0]),
                                   (f"{c0} + {sets.names[1]}", sets.paired_b[c0][0])]):
    ax.imshow(img.permute(1, 2, 0).numpy())
    ax.set_title(title, fontsize=8)
    ax.axis("off")
fig.suptitle(f"Canonical sets ({NOTE})", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The pretrained model's associations
#
# The quick profile's backbone is the small CNN of Chapter 4 (`fairlib.models.SmallCNN`),
# trained from scratch on the biased scenes; the full profile loads torchvision's ImageNet
# ResNet-50. Both came out of `T.transfer_setup` above, with their scores on the canonical sets
# (`T.score_model`).

# %%
if setup.pretrain_losses:
    print("pretraining loss per epoch:", np.round(setup.pretrain_losses, 3))
glue("n_sig_before", int((before["p_value"] < 0.05).sum()))
glue("n_strong_before", int((before["effect_size"].abs() >= cfg["threshold"]).sum()))
glue("rho_paired", stats.spearmanr(before["score"], before["paired_score"])[0])
before.round(3)

# %% tags=["hide-input"]
order = before["score"].sort_values().index
fig, ax = plt.subplots(figsize=(6.5, 3.4))
colors = np.where(before.loc[order, "p_value"] < 0.05, "C0", "0.7")
ax.barh(range(len(order)), before.loc[order, "score"], color=colors)
ax.set_yticks(range(len(order)), order)
ax.axvline(0, color="k", lw=0.8)
ax.set(xlabel=f"association score $s_c$ (> 0: closer to {sets.names[0]})",
       title=f"Pretrained model, layer {cfg['layer']} (blue: p < 0.05)\n{NOTE}")
fig.tight_layout()
plt.show()

# %% [markdown]
# {glue:text}`n_sig_before:.0f` of the {glue:text}`n_concepts:.0f` associations are significant at
# the 5% level (uncorrected), and {glue:text}`n_strong_before:.0f` have an effect size of at least
# 0.5. The column `paired_score` is a second view from the paired sets: is the bare concept closer
# to the concept shown with $a$ or with $b$? Its ranking agrees with the main score to
# Spearman ρ = {glue:text}`rho_paired:.2f` in this run; we use the main score throughout, as the
# summary of the paper describes clustering objects with each gender.
#
# Scores may share a sign: the two attribute sets need not be equally similar to *every*
# image, and ranks are what the BTS compares. In the quick profile we know which association the
# pretraining data planted, so we can check that the backbone absorbed it:

# %%
rho_planted = stats.spearmanr(before["score"], planted["pretraining"])[0] if planted is not None else np.nan
# real data (COCO) has no planted association: these values are unknown there, and glue says so
UNKNOWN = "unknown (real data has no planted association to compare with)"
glue("rho_planted", rho_planted, missing=UNKNOWN)
glue("planted_clause", "cannot be checked against a planted association for" if np.isnan(rho_planted) else
     "has learned" if rho_planted >= 0.7 else "has picked up part of" if rho_planted > 0 else "has not picked up")
print(f"Spearman ρ(pretrained scores, planted data association) = {rho_planted:.3f}")  # nan: unknown

# %% [markdown]
# In the quick profile the rank correlation between the backbone's scores and the data's planted
# association is {glue:text}`rho_planted:.2f`: a model trained only to name icons
# {glue:text}`planted_clause` which style goes with which icon, from co-occurrence alone (with
# eight concepts, a rank correlation is itself uncertain).

# %% [markdown]
# ## Fine-tuning: linear probing, then full fine-tuning on a small and a large target
#
# **Linear probing** trains only a new head; the backbone, including its batch-norm statistics,
# is frozen, so every backbone embedding and hence every association is unchanged: the BTS is 1
# by construction. This is the strongest form of transfer, and a check of the pipeline.
#
# Every fine-tuning run of this chapter is one row of a sweep: `T.run_transfer` fine-tunes a copy
# of the pretrained backbone on one target, in one mode, with one seed, scores it again and
# returns the BTS with its bootstrap interval, the scores before and after, and the counts of
# associations that appeared or vanished. The grid holds the linear probe, then full fine-tuning on
# both targets for three fine-tuning seeds.

# %%
results = sweep.run(T.run_transfer, grid, store=sweep.default_store("07_bias_transfer", "transfer"))
probe = results[results["mode"] == "linear"].iloc[0]
glue("rho_probe", probe["bts"])
print(f"linear probe on the {probe['target']} target: BTS = {probe['bts']:.3f} "
      f"[{probe['bts_low']:.3f}, {probe['bts_high']:.3f}]")

# %%
main = results[(results["mode"] == "full") & (results["seed"] == SEED)].set_index("target")
tables = {name: T.run_table(row) for name, row in main.iterrows()}  # per concept: before, after, status
for name, r in main.iterrows():
    glue(f"rho_{name}", r["bts"])
    glue(f"low_{name}", r["bts_low"])
    glue(f"high_{name}", r["bts_high"])
summary = main[["n_target", "bts", "bts_low", "bts_high"]].set_axis(["target images", "BTS", "low", "high"], axis=1)
summary.style.format({"BTS": "{:.3f}", "low": "{:.3f}", "high": "{:.3f}", "target images": "{:.0f}"}).set_caption(
    f"Bias Transfer Score after full fine-tuning, 95% bootstrap interval over concepts ({NOTE})")

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, len(tables), figsize=(10, 4), sharex=True, sharey=True)
for ax, (name, tab) in zip(np.atleast_1d(axes), tables.items()):
    ax.scatter(tab["score_before"], tab["score_after"], color="C1")
    for c, (b, a) in tab[["score_before", "score_after"]].iterrows():
        ax.annotate(c, (b, a), fontsize=7, xytext=(3, 2), textcoords="offset points")
    ax.axhline(0, color="0.8", lw=0.8)
    ax.axvline(0, color="0.8", lw=0.8)
    ax.set(xlabel="association before fine-tuning", ylabel="association after",
           title=f"{name} target: BTS = {main.loc[name, 'bts']:.2f} "
                 f"[{main.loc[name, 'bts_low']:.2f}, {main.loc[name, 'bts_high']:.2f}]")
fig.suptitle(f"Associations before and after full fine-tuning ({NOTE})", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# Fine-tuning on the small target gave a BTS of {glue:text}`rho_small:.2f` (95% interval
# {glue:text}`low_small:.2f` to {glue:text}`high_small:.2f`), on the large target
# {glue:text}`rho_large:.2f` ({glue:text}`low_large:.2f` to {glue:text}`high_large:.2f`). With
# only {glue:text}`n_concepts:.0f` concepts, overlapping intervals are the rule: read the point
# estimates as a hint and the intervals as the finding.

# %% [markdown]
# ## Which associations appeared, which vanished
#
# The BTS compares rankings; it is silent about strength. We call a concept associated when
# its effect size is at least 0.5 in absolute value and compare the two sides of fine-tuning.

# %%
changes = pd.DataFrame({name: tab["status"] for name, tab in tables.items()})
counts = changes.apply(pd.Series.value_counts).fillna(0).astype(int)
for name, r in main.iterrows():
    glue(f"introduced_{name}", int(r["introduced"]))
    glue(f"vanished_{name}", int(r["vanished"]))
changes.style.set_caption(f"Status of each concept's association, |d| ≥ {cfg['threshold']} ({NOTE})")

# %%
counts.style.set_caption(f"Concepts per status ({NOTE})")

# %% [markdown]
# The bootstrap interval treats the fine-tuned models as fixed. Fine-tuning itself is random
# (head initialisation, batch order), so the sweep repeated it with other seeds, keeping the
# pretrained backbone and the canonical sets:

# %%
repeats = results[results["mode"] == "full"].rename(columns={"seed": "fine-tuning seed", "bts": "BTS",
                                                             "rho_target_data": "ρ with target data"})
repeats = repeats[["target", "fine-tuning seed", "BTS", "introduced", "vanished", "ρ with target data"]]
glue("n_ft_seeds", repeats["fine-tuning seed"].nunique())
for name, sub in repeats.groupby("target"):
    glue(f"bts_min_{name}", sub["BTS"].min())
    glue(f"bts_max_{name}", sub["BTS"].max())
    glue(f"intro_max_{name}", int(sub["introduced"].max()))
    glue(f"follow_min_{name}", sub["ρ with target data"].min(), missing=UNKNOWN)
    glue(f"follow_max_{name}", sub["ρ with target data"].max(), missing=UNKNOWN)
repeats.pivot(index="fine-tuning seed", columns="target").style.format(precision=2).set_caption(
    f"BTS and threshold crossings over fine-tuning seeds ({NOTE})")

# %% [markdown]
# Over {glue:text}`n_ft_seeds:.0f` fine-tuning seeds the BTS ranged from {glue:text}`bts_min_small:.2f`
# to {glue:text}`bts_max_small:.2f` on the small target and from {glue:text}`bts_min_large:.2f` to
# {glue:text}`bts_max_large:.2f` on the large one; up to {glue:text}`intro_max_small:.0f` (small)
# and {glue:text}`intro_max_large:.0f` (large) associations crossed the threshold upwards. One
# fine-tuning run is not a finding: with eight concepts both the BTS and the counts of threshold
# crossings move between seeds, and the spread over seeds belongs in any comparison of targets.
# In the quick profile, the rank correlation of the fine-tuned scores with the *target* data's
# planted association ranged from {glue:text}`follow_min_small:.2f` to
# {glue:text}`follow_max_small:.2f` (small) and from {glue:text}`follow_min_large:.2f` to
# {glue:text}`follow_max_large:.2f` (large).

# %% [markdown]
# Fine-tuning on the small target introduced {glue:text}`introduced_small:.0f` and removed
# {glue:text}`vanished_small:.0f` associations; the large target introduced
# {glue:text}`introduced_large:.0f` and removed {glue:text}`vanished_large:.0f`. Where do new
# associations come from? In the quick profile we know the target data's own co-occurrence, so we
# can ask which of the two datasets the fine-tuned ranking follows. (Effect sizes are measured
# against each model's own spread of similarities, so a fine-tuned model that separates the two
# attribute sets less sharply shows fewer associations above the threshold even when its
# ranking has changed.)

# %%
follow = main[["rho_pretraining_data", "rho_target_data"]].set_axis(
    ["ρ with pretraining data", "ρ with target data"], axis=1)  # NaN for real data: unknown
mean_follow = results[results["mode"] == "full"].groupby("target")[["rho_pretraining_data", "rho_target_data"]].mean()
for name, r in follow.iterrows():
    glue(f"follow_target_{name}", r["ρ with target data"], missing=UNKNOWN)
    glue(f"follow_pre_{name}", r["ρ with pretraining data"], missing=UNKNOWN)
    known = np.isfinite([r["ρ with pretraining data"], r["ρ with target data"]]).all()
    glue(f"follower_{name}", UNKNOWN if not known else
         "pretraining" if r["ρ with pretraining data"] > r["ρ with target data"] else "target")
    m = mean_follow.loc[name]
    known = np.isfinite([m["rho_pretraining_data"], m["rho_target_data"]]).all()
    glue(f"closer_{name}", UNKNOWN if not known else
         "pretraining" if m["rho_pretraining_data"] > m["rho_target_data"] else "target")
for name, sub in repeats.groupby("target"):
    glue(f"bts_range_{name}", sub["BTS"].max() - sub["BTS"].min())
if planted is not None:
    display(follow.style.format("{:.3f}").set_caption(
        f"Spearman ρ of the fine-tuned scores with each dataset's planted association ({NOTE})"))

# %% [markdown]
# After the small target the scores follow the {glue:text}`follower_small` data more closely
# (ρ = {glue:text}`follow_pre_small:.2f` with the pretraining data, against
# {glue:text}`follow_target_small:.2f` with the target data); after the large target, ρ with the
# target data is {glue:text}`follow_target_large:.2f` and with the pretraining data
# {glue:text}`follow_pre_large:.2f`. The large target had ten times as many images *and* ten
# times as many gradient steps (same number of epochs); Exercise 2 separates the two.
#
# **Supervised vs self-supervised pretraining.** The paper's first finding compares supervised
# with self-supervised backbones. The quick profile skips it: a self-supervised pretraining run
# (e.g. a small SimCLR) would not fit the chapter's three-minute CPU budget. In the full profile
# the same code path applies to any backbone with a linear head; torchvision ships only supervised
# ImageNet weights, so a self-supervised or CLIP backbone needs an extra package and a small
# wrapper (Exercise 4).

# %% [markdown]
# ## Compare with the paper
#
# {cite:t}`ranjit2023variation` fine-tune six off-the-shelf models (ResNet variants, CLIP, MoCo,
# SimCLR) on COCO and OpenImages and report three findings in their abstract. Our copy of the paper
# has no numbers, so we compare directions only; our quick-profile numbers are about synthetic
# scenes and a small CNN, not about people.
#
# | the paper's finding (from its abstract) | what our runs show |
# |---|---|
# | (1) supervised models pretrained on large datasets such as ImageNet-21k are more likely than self-supervised ones to keep their pretraining biases, whatever the target | not tested in the quick profile (no self-supervised run); the linear probe is the extreme case of keeping them: BTS {glue:text}`rho_probe:.2f` |
# | (2) models fine-tuned on larger datasets are more likely to introduce new biased associations | small target: BTS {glue:text}`rho_small:.2f` [{glue:text}`low_small:.2f`, {glue:text}`high_small:.2f`], {glue:text}`introduced_small:.0f` associations introduced (absolute effect size crossing 0.5 upwards); large target: BTS {glue:text}`rho_large:.2f` [{glue:text}`low_large:.2f`, {glue:text}`high_large:.2f`], {glue:text}`introduced_large:.0f` introduced. Threshold crossings are few and change with the fine-tuning seed (up to {glue:text}`intro_max_small:.0f` and {glue:text}`intro_max_large:.0f` over seeds). The ranking after fine-tuning correlates with the target data's association at ρ {glue:text}`follow_min_large:.2f` to {glue:text}`follow_max_large:.2f` over seeds for the large target, {glue:text}`follow_min_small:.2f` to {glue:text}`follow_max_small:.2f` for the small one |
# | (3) biases can transfer to fine-tuned models, and the fine-tuning objective and dataset change how much | over fine-tuning seeds the BTS was {glue:text}`bts_min_small:.2f` to {glue:text}`bts_max_small:.2f` on the small target and {glue:text}`bts_min_large:.2f` to {glue:text}`bts_max_large:.2f` on the large one; the objective matters most visibly in the linear probe, which keeps the ranking entirely |
#
# Where our runs agree with the paper, they show that the mechanism needs nothing more than
# co-occurrence in the data and gradient steps on a new dataset; they do not show that the
# paper's effect sizes carry over to real backbones and real people. The full profile runs the
# same analysis on an ImageNet ResNet-50 with COCO canonical sets.

# %% [markdown]
# ## Exercises
#
# :::{exercise}
# :label: ex-bts-noise
# Re-run the chapter with `SEED = 1, 2, 3`. How much do the two BTS values move between seeds,
# compared with their bootstrap intervals? Which source of variation does the bootstrap over
# concepts *not* capture?
# :::
#
# :::{solution} ex-bts-noise
# :class: dropdown
# The bootstrap resamples concepts with the trained models held fixed, so run-to-run variation of
# training is not in the interval. The chapter's table over fine-tuning seeds covers part of it;
# `SEED` also changes the pretraining run, the co-occurrence tables and the canonical images. A
# complete analysis repeats the whole pipeline over seeds and reports both sources of variation.
# :::
#
# :::{exercise}
# :label: ex-steps
# The large target differs from the small one in data *and* in the number of gradient steps.
# Fine-tune on the small target for ten times as many epochs
# (`T.run_transfer(**{**grid[1], "epochs": 10 * grid[1]["epochs"]})`; `grid[1]` is the small target's
# first full fine-tuning run). Does the BTS fall to the large target's value?
# :::
#
# :::{solution} ex-steps
# :class: dropdown
# Expect more steps on 400 images to move the backbone further and lower the BTS. Whether it
# reaches the large target's value depends on how much the small target over-fits: its 400
# images carry a noisier sample of the co-occurrence table than 4,000 images do. Data size and
# training length both matter; the paper's finding (2) cannot separate them either without such
# a control.
# :::
#
# :::{exercise}
# :label: ex-layer
# Score the pretrained model at `"block2"` and `"block3"` as well as `"pool"`
# (`T.score_model(pretrained, sets, layer)`). Where in the network is the planted association
# strongest, and where does fine-tuning change it most?
# :::
#
# :::{solution} ex-layer
# :class: dropdown
# Expect the association to grow with depth: early layers respond to local colour and shape,
# while the style/icon association is learned where the network combines them for its task.
# Fine-tuning also tends to change late layers most. Both are expectations, not guarantees:
# compute the scores and the BTS per layer on your run before concluding.
# :::
#
# :::{exercise}
# :label: ex-ssl
# (Full profile.) Install a self-supervised or CLIP backbone (e.g. `open_clip_torch`), wrap its
# image encoder as `body` followed by a linear `fc` head in an `nn.Module`, and run the same
# analysis with `layer="body"`, `head="fc"`. Does the BTS fall below the supervised ResNet-50's,
# as the paper's finding (1) suggests?
# :::
#
# :::{solution} ex-ssl
# :class: dropdown
# The wrapper is `forward = fc(body(x))` with `fc = nn.Linear(d, 80)`; `T.fine_tune` replaces
# `fc` and trains everything (`mode="full"`). Compare the intervals, not only the point
# estimates: with a few dozen COCO concepts they are wide.
# :::
#
# :::{exercise}
# :label: ex-words
# The full profile labels a COCO image *man* or *woman* from caption words
# (`T.MAN_WORDS`, `T.WOMAN_WORDS`). List three ways this proxy can be wrong, and how each would
# bias the association scores.
# :::
#
# :::{solution} ex-words
# :class: dropdown
# Captions name what annotators *assumed* (perceived gender, not identity); a caption may name a
# person who is not the one near the object; people described without a gendered word (or as
# "person", "player", "skier") drop out, and which ones drop out depends on the scene, so the
# attribute sets are themselves biased towards contexts where annotators use gendered words.
# :::

# %% [markdown]
# ### Graded exercises
#
# The three exercises below are graded automatically when your instructor hands out this chapter
# as an assignment (see the instructor guide). Write your code in place of the
# `raise NotImplementedError(...)` line; in the book, the solution is folded away. They reuse the
# models this notebook has already trained and fine-tune nothing new.
#
# :::{exercise}
# :label: ex-bts-assoc-code
# Write `association_score(x, a, b)` for one concept: `x`, `a` and `b` are `(n, D)` arrays of
# embeddings (the concept's images and the two attribute sets); return $s_c$, the mean cosine
# similarity of the concept's images to set $a$ minus that to set $b$, without calling fairlib.
# The tests also recompute the pretrained model's score of one concept from its embeddings
# (`T.embed`).
# :::

# %% tags=["graded", "exercise:ex-bts-assoc-code", "hide-input"]
def association_score(x, a, b):
    # BEGIN SOLUTION
    # HINT: divide every row by its length; then a matrix product gives all cosine similarities at once
    def unit_rows(m):
        m = np.asarray(m, dtype=float)
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    xs, to_a, to_b = unit_rows(x), unit_rows(a), unit_rows(b)
    return float((xs @ to_a.T).mean() - (xs @ to_b.T).mean())
    # END SOLUTION


# %% tags=["tests", "exercise:ex-bts-assoc-code", "remove-cell"]
assert abs(association_score([[1.0, 0.0]], [[1.0, 0.0]], [[0.0, 1.0]]) - 1.0) < 1e-9, "cos 1 to a, cos 0 to b"
assert abs(association_score([[3.0, 0.0]], [[0.5, 0.0]], [[0.0, 2.0]]) - 1.0) < 1e-9, "lengths must not matter"
assert abs(association_score([[1.0, 1.0]], [[1.0, 0.0]], [[0.0, 1.0]])) < 1e-9, "equally close to both"
_r = np.random.default_rng(7)
_x, _a, _b = _r.normal(size=(6, 5)), _r.normal(size=(4, 5)), _r.normal(size=(9, 5))
assert abs(association_score(_x, _a, _b) - T.association_scores({"c": _x}, _a, _b).iloc[0]) < 1e-9
assert abs(association_score(_x, _a, _b) + association_score(_x, _b, _a)) < 1e-9, "swapping a and b flips the sign"
_c = list(sets.concepts)[0]
_emb = [T.embed(pretrained, imgs, cfg["layer"], transform=transform)
        for imgs in (sets.concepts[_c], sets.attribute_a, sets.attribute_b)]
assert abs(association_score(*_emb) - before.loc[_c, "score"]) < 1e-6, f"the pretrained model's score of {_c}"

# %% [markdown]
# :::{exercise}
# :label: ex-bts-rank-code
# Write `rank_correlation(before, after)`: Spearman's $\rho$ of two equally long lists of scores,
# i.e. the Pearson correlation of their ranks, with tied values sharing their average rank. Do not
# call `scipy.stats` or fairlib (pandas' `Series.rank` is allowed). It must reproduce the BTS of
# this chapter's fine-tuning runs, and ignore any increasing transformation of the scores.
# :::

# %% tags=["graded", "exercise:ex-bts-rank-code", "hide-input"]
def rank_correlation(before, after):
    # BEGIN SOLUTION
    # HINT: pd.Series(values).rank() gives average ranks for ties; np.corrcoef gives Pearson's r
    rank_b = pd.Series(np.asarray(before, dtype=float)).rank().to_numpy()
    rank_a = pd.Series(np.asarray(after, dtype=float)).rank().to_numpy()
    return float(np.corrcoef(rank_b, rank_a)[0, 1])
    # END SOLUTION


# %% tags=["tests", "exercise:ex-bts-rank-code", "remove-cell"]
assert abs(rank_correlation([1, 2, 3], [10, 20, 30]) - 1.0) < 1e-9
assert abs(rank_correlation([1, 2, 3], [3, 2, 1]) + 1.0) < 1e-9
assert abs(rank_correlation([1, 2, 3], [1, 3, 2]) - 0.5) < 1e-9, "1 - 6·2 / (3·8)"
assert abs(rank_correlation([1, 1, 2], [1, 2, 3]) - np.sqrt(3) / 2) < 1e-9, "ties share rank 1.5"
for _name, _tab in tables.items():
    _rho = rank_correlation(_tab["score_before"], _tab["score_after"])
    assert abs(_rho - main.loc[_name, "bts"]) < 1e-9, f"BTS of the {_name} target"
_s = tables["small"]["score_after"].to_numpy()
_rho = rank_correlation(before["score"], np.exp(10 * _s) + 3)
assert abs(_rho - main.loc["small", "bts"]) < 1e-9, "ranks ignore monotone maps"

# %% [markdown]
# :::{exercise}
# :label: ex-bts-status-code
# Write `association_status(d_before, d_after, threshold=0.5)` for one concept's effect sizes
# before and after fine-tuning. A concept is associated when its absolute effect size is at least
# `threshold`. Return `"introduced"` (not before, now), `"vanished"` (before, not now),
# `"flipped"` (both, with opposite signs), `"kept"` (both, same sign) or `"none"`, the
# definitions this chapter uses. The tests compare your labels with the table above.
# :::

# %% tags=["graded", "exercise:ex-bts-status-code", "hide-input"]
def association_status(d_before, d_after, threshold=0.5):
    # BEGIN SOLUTION
    # HINT: first decide whether each side is associated (abs(d) >= threshold), then compare signs
    was, now = abs(d_before) >= threshold, abs(d_after) >= threshold
    if was and now:
        return "kept" if np.sign(d_before) == np.sign(d_after) else "flipped"
    if now:
        return "introduced"
    return "vanished" if was else "none"
    # END SOLUTION


# %% tags=["tests", "exercise:ex-bts-status-code", "remove-cell"]
assert association_status(0.1, 0.9) == "introduced"
assert association_status(-0.8, 0.2) == "vanished"
assert association_status(0.7, -0.6) == "flipped"
assert association_status(-0.7, -1.6) == "kept"
assert association_status(0.3, -0.4) == "none"
assert association_status(0.5, 0.1) == "vanished", "exactly the threshold counts as associated"
assert association_status(0.3, 0.35, threshold=0.3) == "kept", "the threshold is a parameter"
for _name, _tab in tables.items():
    _mine = [association_status(b, a, cfg["threshold"]) for b, a in zip(_tab["effect_before"], _tab["effect_after"])]
    assert _mine == list(_tab["status"]), f"{_name} target"

# %% [markdown]
# ## Summary
#
# - An association score compares a concept's mean cosine similarity to two attribute sets; the
#   effect size and a permutation test tell a real association from noise.
# - The Bias Transfer Score is Spearman's ρ between the scores before and after fine-tuning; with
#   few concepts, report it with a bootstrap interval over concepts.
# - A linear probe keeps every association of the backbone. In the quick profile, averaged over
#   fine-tuning seeds, the ranking after full fine-tuning was closer to the
#   {glue:text}`closer_small` data's planted associations on the small target and to the
#   {glue:text}`closer_large` data's on the large target; a larger target pulling the ranking
#   towards its own associations is the direction of {cite:t}`ranjit2023variation`'s findings
#   (2) and (3). The bootstrap intervals are wide, and the BTS (its range over seeds was
#   {glue:text}`bts_range_small:.2f` on the small target, {glue:text}`bts_range_large:.2f` on the
#   large one) and the counts of threshold crossings vary with the fine-tuning seed: report the
#   spread over seeds, not one run.
# - Choices the paper's summary leaves open (layer, similarity, threshold for a "new"
#   association) change the numbers: state them.
