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
# co-occurrence, supervised and self-supervised. full: four ResNet-50-class backbones (torchvision's ImageNet-1k
# ResNet-50; BiT-50x1, a ResNetV2 with GroupNorm and weight standardisation, ImageNet-21k; MoCo v2's ResNet-50;
# CLIP's modified RN50 with attention pooling), COCO canonical sets (val2017), fine-tuned on 1,000 val2017 /
# 20,000 train2017 images without the canonical ones. The compute plan below says what each profile costs.
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
full_plan = plan("07_bias_transfer", "full")  # quoted in the text whatever the profile
glue("plan_full_runs", f"{full_plan.runs}")
glue("plan_full_hours", f"{full_plan.gpu_hours_t4:.2g}")
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
# | representation | the model's internal features | one layer, globally average-pooled to $(N, D)$: quick, the small CNN's `pool` (64-d); full, each backbone's `body`, its pooled feature vector (2,048-d; CLIP's attention pool, 1,024-d) |
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
# The quick profile's main backbone is the small CNN of Chapter 4 (`fairlib.models.SmallCNN`),
# trained from scratch to name the icons of the biased scenes (its self-supervised twin appears
# with finding (1)); the full profile's main backbone is torchvision's ImageNet ResNet-50. Both came out of `T.transfer_setup` above, with their scores on the canonical sets
# (`T.score_model`).

# %%
if setup.pretrain_losses:
    print("pretraining loss per epoch:", np.round(setup.pretrain_losses, 3))
glue("n_sig_before", int((before["p_value"] < 0.05).sum()))
glue("n_holm_before", int(T.holm_significant(before["p_value"]).sum()))  # Holm: family-wise 5% over the concepts
glue("n_false_expected", f"{0.05 * len(before):.1f}")  # false positives expected uncorrected if none were real
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
       title=f"Pretrained model, layer {cfg['layer']} (blue: p < 0.05, uncorrected)\n{NOTE}")
fig.tight_layout()
plt.show()

# %% [markdown]
# {glue:text}`n_sig_before:.0f` of the {glue:text}`n_concepts:.0f` associations are significant at
# the 5% level uncorrected, {glue:text}`n_holm_before:.0f` after Holm's correction for
# {glue:text}`n_concepts:.0f` tests (uncorrected, {glue:text}`n_false_expected` false positives
# are expected even if the model held no association at all), and {glue:text}`n_strong_before:.0f`
# have an effect size of at least 0.5. The column `paired_score` is a second view from the paired sets: is the bare concept closer
# to the concept shown with $a$ or with $b$? Its ranking agrees with the main score to
# Spearman ρ = {glue:text}`rho_paired:.2f` in this run; we use the main score throughout, as the
# summary of the paper describes clustering objects with each gender.
#
# Scores may share a sign: the two attribute sets need not be equally similar to *every*
# image, and ranks are what the BTS compares. In the quick profile we know which association the
# pretraining data planted, so we can check that the backbone absorbed it:

# %%
# real data (COCO) have no planted association: the sentences that need one are built per profile
if planted is not None:
    rho_planted = stats.spearmanr(before["score"], planted["pretraining"])[0]
    print(f"Spearman ρ(pretrained scores, planted data association) = {rho_planted:.3f}")
    clause = ("has learned" if rho_planted >= 0.7 else "has picked up part of" if rho_planted > 0
              else "has not picked up")
    glue("planted_sentence", f"The rank correlation between the backbone's scores and the pretraining data's "
         f"planted association is {rho_planted:.2f}: a model trained only to name icons {clause} which style goes "
         f"with which icon, from co-occurrence alone (with {len(sets.concepts)} concepts, a rank correlation is "
         "itself uncertain).")
else:
    glue("planted_sentence", "Real data have no planted association, so what the ImageNet backbone absorbed can "
         "only be read from its scores above; the sentences below that compare with a planted association apply "
         "to the quick profile only.")

# %% [markdown]
# {glue:text}`planted_sentence`

# %% [markdown]
# ## Fine-tuning: linear probing, then full fine-tuning on a small and a large target
#
# **Linear probing** trains only a new head; the backbone, including its batch-norm statistics,
# is frozen, so every backbone embedding and hence every association is unchanged: its BTS is 1
# *by construction*. It therefore says nothing about the paper's findings. We run it as a check of
# the pipeline: if its scores after fine-tuning differed from those before, the freezing or the
# scoring would be broken, and the next cell stops.
#
# Every fine-tuning run of this chapter is one row of a sweep: `T.run_transfer` fine-tunes a copy
# of the pretrained backbone on one target, in one mode, with one seed, scores it again and
# returns the BTS with its bootstrap interval, the scores before and after, and the counts of
# associations that appeared or vanished. The grid holds the linear probe, then full fine-tuning on
# both targets for three fine-tuning seeds.

# %%
all_results = sweep.run(T.run_transfer, grid, store=sweep.default_store("07_bias_transfer", "transfer"))
# the analysis below reads one backbone, the grid's first (quick: the small CNN pretrained to name
# icons; full: the supervised ImageNet-1k ResNet-50); the backbones are compared after finding (2)
MAIN_BACKBONE = grid[0]["backbone"]
results = all_results[all_results["backbone"] == MAIN_BACKBONE]
probe = results[results["mode"] == "linear"].iloc[0]
# a check of the pipeline, not a finding: a frozen backbone leaves every score, hence the ranking, unchanged
# (up to the rounding of mixed precision on a GPU, hence the tolerance)
scale = np.abs(probe["score_before"]).max()
assert np.allclose(probe["score_after"], probe["score_before"], rtol=1e-2, atol=1e-2 * scale), \
    "the linear probe changed the backbone's scores: the backbone is not frozen"
assert probe["bts"] > 0.99, f"the linear probe's BTS is {probe['bts']:.3f}, not 1: the backbone is not frozen"
print(f"pipeline check passed: the linear probe on the {probe['target']} target kept every score "
      f"(BTS = {probe['bts']:.3f})")
# no leakage: no canonical image in the data any run trained on (by COCO id, or by content for scenes)
if "n_overlap" not in all_results:
    raise RuntimeError("these results were stored by an older fairlib without the leakage count; delete "
                       "$FAIRLIB_RESULTS/07_bias_transfer and run this cell again")
n_overlap = int(all_results["n_overlap"].max())
assert n_overlap == 0, f"{n_overlap} canonical images appear in the pretraining or fine-tuning data"
glue("n_overlap", f"{n_overlap}")
if planted is None:
    print(f"{len(sets.all_ids())} canonical COCO images, left out of every fine-tuning target")
glue("n_runs", f"{len(all_results)}")
glue("overlap_checked", "pretraining scenes and the fine-tuning targets" if planted is not None else
     "fine-tuning targets (the backbone's own pretraining data, ImageNet, are not available to check)")

# %% [markdown]
# **No leakage.** A canonical image that the model also trained on would be scored on its own
# training data. `T.canonical_overlap` looks for every canonical image in the data of each run:
# by COCO image id in the full profile (the targets leave the canonical ids out), by a hash of
# the image's bytes for the rendered scenes. Over all {glue:text}`n_runs` runs it found
# {glue:text}`n_overlap` canonical images in the {glue:text}`overlap_checked`.

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
# ρ with the target data's planted association: only where one was planted (NaN, hence dropped, for COCO)
repeats = repeats[["target", "fine-tuning seed", "BTS", "introduced", "vanished"]
                  + (["ρ with target data"] if planted is not None else [])]
glue("n_ft_seeds", repeats["fine-tuning seed"].nunique())
for name, sub in repeats.groupby("target"):
    glue(f"bts_min_{name}", sub["BTS"].min())
    glue(f"bts_max_{name}", sub["BTS"].max())
    glue(f"intro_max_{name}", int(sub["introduced"].max()))
if planted is not None:
    ranges = {name: f"{sub['ρ with target data'].min():.2f} to {sub['ρ with target data'].max():.2f}"
              for name, sub in repeats.groupby("target")}
    glue("follow_range_sentence", "In the quick profile, the rank correlation of the fine-tuned scores with the "
         f"*target* data's planted association ranged from {ranges['small']} (small) and from {ranges['large']} "
         "(large).")
else:
    glue("follow_range_sentence", "Real data have no planted association, so the full profile cannot say how "
         "closely the fine-tuned scores follow the target data's.")
repeats.pivot(index="fine-tuning seed", columns="target").style.format(precision=2).set_caption(
    f"BTS and threshold crossings over fine-tuning seeds ({NOTE})")

# %% [markdown]
# Over {glue:text}`n_ft_seeds:.0f` fine-tuning seeds the BTS ranged from {glue:text}`bts_min_small:.2f`
# to {glue:text}`bts_max_small:.2f` on the small target and from {glue:text}`bts_min_large:.2f` to
# {glue:text}`bts_max_large:.2f` on the large one; up to {glue:text}`intro_max_small:.0f` (small)
# and {glue:text}`intro_max_large:.0f` (large) associations crossed the threshold upwards. One
# fine-tuning run is not a finding: with {glue:text}`n_concepts:.0f` concepts both the BTS and the
# counts of threshold crossings move between seeds, and the spread over seeds belongs in any
# comparison of targets. {glue:text}`follow_range_sentence`

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


def follower(pre, tgt):
    """Which dataset's planted association a ranking follows more closely."""
    return "pretraining" if pre > tgt else "target" if tgt > pre else "tied"


def follows(pre, tgt):
    """The clause for one target's ρ with the pretraining (``pre``) and the target (``tgt``) data."""
    who = follower(pre, tgt)
    head = "are as close to the pretraining data as to the target data" if who == "tied" else \
        f"follow the {who} data more closely"
    return f"{head} (ρ = {pre:.2f} with the pretraining data, {tgt:.2f} with the target data)"


for name, sub in repeats.groupby("target"):
    glue(f"bts_range_{name}", sub["BTS"].max() - sub["BTS"].min())
glue("target_ratio", f"{main.loc['large', 'n_target'] / main.loc['small', 'n_target']:.0f}")
if planted is not None:
    display(follow.style.format("{:.3f}").set_caption(
        f"Spearman ρ of the fine-tuned scores with each dataset's planted association ({NOTE})"))
    f_small, f_large = follow.loc["small"], follow.loc["large"]
    glue("follow_sentence", f"After the small target the scores {follows(*f_small)}; after the large target "
         f"they {follows(*f_large)}.")
    # which data the ranking follows, with a bootstrap interval over concepts joint over seeds and targets
    pc = T.planted_contrast(results, planted, n_boot=cfg["n_boot"], seed=SEED)
    side = {"target": "closer to the target data's", "pretraining": "closer to the pretraining data's",
            "inconclusive": "not distinguishable from 0"}
    pull = {t: f"{pc[f'pull_{t}']:+.2f} (95% interval {pc[f'pull_{t}_low']:+.2f} to {pc[f'pull_{t}_high']:+.2f}, "
               f"{side[pc[f'follows_{t}']]})" for t in ("small", "large")}
    pull_diff = (f"{pc['pull_diff']:+.2f} (95% interval {pc['pull_diff_low']:+.2f} to {pc['pull_diff_high']:+.2f}; "
                 f"larger on the large target in {pc['pull_seeds']} of {pc['n_seeds']} seeds)")
    pull_verdict = {"supports": "supports finding (2)", "contradicts": "contradicts finding (2)",
                    "inconclusive": "cannot tell the two targets apart"}[pc["pull_direction"]]
    glue("pull_sentence", "Over all fine-tuning seeds, the ranking's pull towards the target data (its ρ with the "
         "target data's planted association minus its ρ with the pretraining data's, mean over seeds) was "
         f"{pull['small']} after the small target and {pull['large']} after the large one. The difference, large "
         f"minus small, was {pull_diff}: this third measure of finding (2), whether the larger target pulls the "
         f"ranking further towards its own associations, {pull_verdict}.")
    pull_summary = {"supports": "the larger target pulled the ranking further towards its own associations, as "
                                "finding (2) says",
                    "contradicts": "the smaller target pulled the ranking further, against finding (2)",
                    "inconclusive": "this run cannot tell the two targets apart"}[pc["pull_direction"]]
    glue("closer_sentence", "A third measure of finding (2) is the pull of the fine-tuned ranking towards the "
         f"target data's planted association; large minus small target, it was {pull_diff}: {pull_summary}.")
else:
    glue("follow_sentence", "Real data have no planted association, so the full profile cannot ask which "
         "dataset the fine-tuned ranking follows; the BTS and the threshold crossings are what it measures.")
    glue("pull_sentence", "For the same reason it cannot measure the pull of the ranking towards the target "
         "data's associations, the third measure of finding (2) that the quick profile adds.")
    glue("closer_sentence", "On real data no association is planted, so which dataset the ranking follows "
         "after fine-tuning is unknown; only the BTS and the threshold crossings are measured.")

# %% [markdown]
# {glue:text}`follow_sentence` {glue:text}`pull_sentence` The large target had {glue:text}`target_ratio` times as many
# images *and* {glue:text}`target_ratio` times as many gradient steps (same number of epochs);
# Exercise 2 separates the two.

# %% [markdown]
# ## Does the larger target introduce more? Two measures
#
# The paper's finding (2) is that fine-tuning on a larger dataset introduces more new biased
# associations. This chapter has two measures of it, and they need not agree:
#
# - the **BTS**: a lower BTS after the large target means that it reshuffled the ranking of all
#   concepts more;
# - the **introduced associations**: concepts whose absolute effect size crossed 0.5 upwards.
#
# `T.target_contrast` pools the fine-tuning seeds and gives each measure's difference between the
# targets a bootstrap interval over concepts (one resample of concepts for every run, so the
# interval covers both targets and all seeds at once), and a verdict: the interval lies on the
# side of the finding ("supports"), on the other side ("contradicts"), or contains zero. (Where the
# data's associations are planted, the quick profile, the pull towards the target data above is a
# third measure, with its own interval.)

# %%
contrast = T.target_contrast(results, n_boot=cfg["n_boot"], seed=SEED)
words = {"supports": "supports finding (2)", "contradicts": "contradicts finding (2)",
         "inconclusive": "cannot tell the two targets apart"}
c = contrast
two_measures = pd.DataFrame({
    "small target": [f"{c['bts_small']:.2f}", f"{c['intro_small']:.1f}"],
    "large target": [f"{c['bts_large']:.2f}", f"{c['intro_large']:.1f}"],
    "difference (95% interval)": [f"{c['bts_diff']:+.2f} [{c['bts_diff_low']:+.2f}, {c['bts_diff_high']:+.2f}]",
                                  f"{c['intro_diff']:+.1f} [{c['intro_diff_low']:+.1f}, {c['intro_diff_high']:+.1f}]"],
    "seeds in the finding's direction": [f"{c['bts_seeds']} of {c['n_seeds']}",
                                         f"{c['intro_seeds']} of {c['n_seeds']}"],
    "verdict": [words[c["bts_direction"]], words[c["intro_direction"]]],
}, index=["BTS (mean over seeds; difference small − large)", "introduced (mean per run; difference large − small)"])
glue("f2_bts", f"mean BTS {c['bts_small']:.2f} (small) against {c['bts_large']:.2f} (large), a difference of "
     f"{c['bts_diff']:+.2f} (95% interval {c['bts_diff_low']:+.2f} to {c['bts_diff_high']:+.2f}), lower on the large "
     f"target in {c['bts_seeds']} of {c['n_seeds']} seeds")
glue("f2_intro", f"{c['intro_small']:.1f} (small) against {c['intro_large']:.1f} (large) associations introduced "
     f"per run, a difference of {c['intro_diff']:+.1f} (95% interval {c['intro_diff_low']:+.1f} to "
     f"{c['intro_diff_high']:+.1f}), more on the large target in {c['intro_seeds']} of {c['n_seeds']} seeds")
glue("f2_bts_verdict", words[c["bts_direction"]])
glue("f2_intro_verdict", words[c["intro_direction"]])
agreed = {"supports": "Both measures support finding (2).", "contradicts": "Both measures contradict finding (2).",
          "inconclusive": "Neither measure can tell the two targets apart: this run does not reproduce finding (2)."}
glue("f2_agreement",
     agreed[c["bts_direction"]] if c["agree"] else
     f"The two measures disagree: the BTS {words[c['bts_direction']]}, the count of introduced associations "
     f"{words[c['intro_direction']]}. They measure different things: the BTS asks whether the ranking of all "
     "concepts survived, the count whether single concepts crossed a threshold of effect size, and with few "
     "concepts and few crossings the count is the noisier of the two. Neither alone settles the finding here.")
# finding (3), "biases can transfer": the pooled BTS of each target lies above 0
transfer_words = {"supports": "above 0 (the ranking partly survived)", "contradicts": "below 0 (the ranking reversed)",
                  "inconclusive": "not distinguishable from 0"}
glue("f3_sentence", "; ".join(
    f"{t} target: mean BTS {c[f'bts_{t}']:.2f} (95% interval {c[f'bts_{t}_low']:.2f} to {c[f'bts_{t}_high']:.2f}), "
    f"{transfer_words[c[f'transfer_{t}']]}" for t in ("small", "large")))
n_transfer = sum(c[f"transfer_{t}"] == "supports" for t in ("small", "large"))
glue("f3_verdict", "supported on both targets" if n_transfer == 2 else
     "supported on one target" if n_transfer == 1 else "not supported by this run")
two_measures.style.set_caption(f"Finding (2) by two measures, {c['n_seeds']} fine-tuning seeds ({NOTE})")

# %% [markdown]
# By the BTS: {glue:text}`f2_bts`; this {glue:text}`f2_bts_verdict`. By the count of introduced
# associations: {glue:text}`f2_intro`; this {glue:text}`f2_intro_verdict`.
# {glue:text}`f2_agreement`
#
# **Supervised vs self-supervised pretraining.** The paper's first finding compares backbones
# pretrained with and without labels: supervised ImageNet-1k and ImageNet-21k ResNets,
# self-supervised MoCo and SimCLR, and CLIP. The full profile fine-tunes four of them the same way
# (`fairlib.models.BACKBONES`: torchvision's ImageNet-1k ResNet-50; timm's BiT-50x1 trained on
# ImageNet-21k, a ResNetV2 with pre-activation blocks, GroupNorm and weight standardisation;
# MoCo v2's ResNet-50; CLIP's RN50 image tower, a modified ResNet with a three-convolution stem and
# attention pooling to 1,024 dimensions; each with its own normalisation). They are all of
# ResNet-50 size but not one architecture. SimCLR's official weights are TensorFlow checkpoints only. The quick profile
# emulates the contrast in miniature: the same small CNN pretrained on the same scenes for the same
# number of steps, once *supervised* (naming the icon) and once *self-supervised* (predicting
# whether the scene was rotated by 0, 90, 180 or 270 degrees, RotNet's pretext task;
# `T.rotation_pretext`). `T.pretraining_contrast` pairs the two backbones' full fine-tuning runs by
# target and seed (`T.CONTRAST`: BiT's ImageNet-21k against MoCo v2 in full) and takes a t interval
# of the BTS differences. A backbone counts only if it held associations before fine-tuning (at
# least one concept significant after Holm's correction for the number of concepts, at family-wise
# level 5%): one that never absorbed an association has nothing to keep, and without the correction
# a backbone with none would pass by chance once there are a few dozen concepts.

# %%
from fairlib.amplification import mean_ci
from fairlib.notebook import verdict

full_runs = all_results[all_results["mode"] == "full"]
rows = []
for name, d in full_runs.groupby("backbone", sort=False):
    m, lo, hi = mean_ci(d["bts"].to_numpy(dtype=float))
    # the same before every run of a backbone; Holm-corrected, the gate of T.pretraining_contrast
    held = int(T.holm_significant(d["p_before"].iloc[0]).sum())
    rows.append({"backbone": name, "pretraining": T.pretraining_kind(name), "mean BTS": m,
                 "95% CI": f"[{lo:+.2f}, {hi:+.2f}]", "significant before (Holm)": held, "runs": len(d)})
f1 = pd.DataFrame(rows).set_index("backbone")
display(f1.style.format({"mean BTS": "{:+.2f}"}).set_caption(
    f"Full fine-tuning per backbone: the BTS over targets and seeds ({NOTE})"))
sup, ssl = T.CONTRAST[cfg["source"]]
contrast = T.pretraining_contrast(all_results, supervised=sup, self_supervised=ssl)
if not contrast["testable"]:
    held = ", ".join(f"`{b}` {n}" for b, n in contrast["held"].items())
    f1_text = f"not testable here: {contrast['reason']}; concepts significant before: {held}"
else:
    m, lo, hi = contrast["mean"], contrast["low"], contrast["high"]
    f1_text = (f"{T.pretraining_kind(sup)} `{sup}` minus {T.pretraining_kind(ssl)} `{ssl}`, mean BTS {m:+.2f} "
               f"[{lo:+.2f}, {hi:+.2f}] over {contrast['n_pairs']} paired runs: " + verdict(
                   lo, hi, below="the self-supervised backbone keeps more of its ranking, against the paper",
                   above="the supervised backbone keeps more of its ranking, as in the paper",
                   neither="this run cannot tell the two apart"))
glue("f1_sentence", f1_text)
# what else differs between the pair (text per pair: a change of T.CONTRAST needs its own caveat)
glue("f1_caveat", {
    ("small_cnn_supervised", "small_cnn_rotation"):
        "The two small CNNs share their architecture, pretraining images and budget and differ only in the labels "
        "they were trained on, so this contrast isolates the objective (in miniature)",
    ("bit50_in21k", "moco_v2_rn50"):
        "The pair differs in more than supervision: BiT-50x1 is a ResNetV2 (pre-activation, GroupNorm and weight "
        "standardisation) pretrained on ImageNet-21k, MoCo v2's backbone a standard ResNet-50 pretrained on "
        "ImageNet-1k, so a difference between them cannot be put down to supervision alone",
}[(sup, ssl)])
# the settings the table of differences below quotes, read from both profiles' grids (whatever PROFILE is)
for prof in ("quick", "full"):
    g = T.transfer_grid(prof, seed=SEED)[1]  # the first full fine-tuning run: the recipe of every run
    glue(f"recipe_{prof}", f"Adam, learning rate {g['lr']:g}, {g['epochs']} epochs, batch {g['batch_size']}")
    if g["source"] == "coco":
        glue("min_images_full", f"{g['min_images']}")
        glue("canonical_n_full", f"{g['canonical_n']}")
# what a verdict that agrees with the paper would show, per profile (synthetic scenes or real backbones and people)
glue("mechanism_sentence",
     "In the quick profile, where a verdict above agrees with the paper, it shows that the mechanism needs nothing "
     "more than co-occurrence in the data and gradient steps on a new dataset; it does not show that the paper's "
     "effect sizes carry over to real backbones and real people." if cfg["source"] == "scenes" else
     "In the full profile the backbones are real and so are the people in the canonical images, labelled man or "
     "woman from caption words. Where a verdict above agrees with the paper, it agrees in direction, under our "
     "choices (one pooled layer, cosine scores, the 0.5 threshold, ResNet-50-class backbones only, COCO targets "
     f"only, {cfg['epochs']} fine-tuning epochs); our copy of the paper has no effect sizes to compare with.")

# %% [markdown]
# Finding (1): {glue:text}`f1_sentence`. {glue:text}`f1_caveat`.

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
# | (1) supervised models pretrained on large datasets such as ImageNet-21k are more likely than self-supervised ones to keep their pretraining biases, whatever the target | {glue:text}`f1_sentence`. {glue:text}`f1_caveat`. The linear probe's BTS of 1 is true by construction and is no evidence for it |
# | (2) models fine-tuned on larger datasets are more likely to introduce new biased associations | by the BTS, {glue:text}`f2_bts_verdict`; by the count of introduced associations (absolute effect size crossing 0.5 upwards), {glue:text}`f2_intro_verdict` (see the table above) |
# | (3) biases can transfer to fine-tuned models, and the fine-tuning objective and dataset change how much | transfer {glue:text}`f3_verdict`: {glue:text}`f3_sentence`. The objective is not tested: the linear probe keeps the ranking by construction, and full fine-tuning is the only other objective we run |
#
# {glue:text}`mechanism_sentence` Where a verdict is "cannot tell" or contradicts the paper, this
# run does not reproduce that finding.
#
# **Where we differ from the paper.**
#
# | | the paper {cite:p}`ranjit2023variation` | this chapter | why |
# |---|---|---|---|
# | backbones | six off-the-shelf models: ResNet variants (supervised, ImageNet-1k and ImageNet-21k), CLIP, MoCo, SimCLR | full: four ResNet-50-class backbones, one per kind of pretraining, not one architecture: torchvision's ImageNet-1k ResNet-50; timm's BiT-50x1 (ImageNet-21k), a ResNetV2 with pre-activation blocks, GroupNorm and weight standardisation; MoCo v2's ResNet-50 (ImageNet-1k); CLIP's RN50, a modified ResNet (three-convolution stem, attention pooling, 1,024-d); each with its own normalisation but the same square 224-px resize. Quick: one small CNN pretrained on the same scenes with the same budget, supervised (names the icon) or self-supervised (predicts the rotation) | SimCLR's official weights are TensorFlow only; rotation prediction stands in for contrastive learning, which needs far larger batches and budgets than the quick profile's, so the quick verdict on finding (1) is about the two miniature objectives, not about MoCo or SimCLR. Full finding (1)'s pair, BiT-50x1 against MoCo v2, differs in architecture and pretraining data (ImageNet-21k against 1k) as well as in supervision |
# | model size and architecture | "across model sizes" (abstract) | one size: every full backbone has a ResNet-50-sized trunk; quick: one small CNN | the size axis is not tested; larger models (deeper ResNets, wider BiTs, vision transformers) would multiply the compute beyond one Colab session |
# | pretraining data size | ImageNet-1k against ImageNet-21k among the supervised ResNets | full runs both (`resnet50_in1k`, `bit50_in21k`) and lists them in the per-backbone table, but computes no paired contrast or verdict for them | the two differ in architecture (ResNet against ResNetV2) and training recipe as well as in data, so a difference could not be put down to data size; read their rows as a description |
# | fine-tuning targets | COCO and OpenImages | quick: scenes with an unrelated co-occurrence table, 400 and 4,000 images; full: COCO, 1,000 val2017 and 20,000 train2017 images | the size contrast lies inside one dataset; OpenImages is too large for one Colab session |
# | fine-tuning objective | not given in the summary | a linear probe (a check of the pipeline, BTS 1 by construction) and full fine-tuning with Adam, 3 seeds | a second non-trivial objective (e.g. the last block only) is not run |
# | fine-tuning task and hyperparameters | not given in the summary | quick: name the icon (8-way cross-entropy), {glue:text}`recipe_quick`; full: COCO's 80 object labels (binary cross-entropy per label), {glue:text}`recipe_full`; both keep the last epoch's weights and train in mixed precision on a GPU | our choice, one recipe for every backbone rather than each one's best; a longer or gentler fine-tuning changes how far the backbone moves, hence the BTS |
# | representation layer | the model's internal features (layer not stated in our copy) | quick: the small CNN's `pool`; full: each backbone's pooled output `body` (2,048-d; CLIP's attention pool, 1,024-d); other layers are not scored (Exercise 3) | the features a new head reads; associations in earlier layers may differ |
# | concept selection | objects such as surfboards and cars, from COCO and OpenImages | quick: all 8 icons; full: every COCO category with at least {glue:text}`min_images_full` val2017 images in each of its three sets (alone, with a man, with a woman), at most {glue:text}`canonical_n_full` drawn per set | a rule fixed before the run, not a list chosen by hand; a lower minimum admits more concepts with noisier scores |
# | canonical sets | single concepts and concept pairs from COCO and OpenImages | quick: icons, figure styles, icon beside each style, rendered to match; full: COCO val2017, gender from caption words | the paper's source of the gender label is not in our copy |
# | leakage | not stated | no canonical image in any target (COCO ids left out); counted in every run's data (by content for scenes): {glue:text}`n_overlap` found | the pretraining data of a downloaded backbone (ImageNet-1k, ImageNet-21k, CLIP's private image-text set) are not available to check against COCO |
# | "new biased association" | not defined | absolute effect size crossing 0.5 upwards | a "medium" effect in WEAT's terms; the BTS is reported beside it |
# | input | not stated | full: COCO images scaled to 224 × 224 without a crop, decoded once into a `uint8` cache | one cached size for every run |


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
# training is not in the interval. The chapter's table over fine-tuning seeds covers part of it.
# `SEED` changes more: in the quick profile also the pretraining run, the co-occurrence tables and
# the canonical images; in the full profile the canonical images drawn from COCO, the target's
# images and the new heads, but not the downloaded backbones, whose pretraining ran once. A complete
# analysis repeats the whole pipeline over seeds and reports both sources of variation; in the full
# profile the variation of pretraining itself stays out of reach.
# :::
#
# :::{exercise}
# :label: ex-steps
# The large target differs from the small one in data *and* in the number of gradient steps.
# Fine-tune on the small target for as many times more epochs as the large target has more images
# (`k = grid[2]["target_n"] // grid[1]["target_n"]`, then
# `T.run_transfer(**{**grid[1], "epochs": k * grid[1]["epochs"]})`; `grid[1]` and `grid[2]` are the
# first full fine-tuning runs on the small and the large target, in either profile). Does the BTS
# fall to the large target's value?
# :::
#
# :::{solution} ex-steps
# :class: dropdown
# Expect more steps on the small target's images to move the backbone further and lower the BTS.
# Whether it reaches the large target's value depends on how much the small target over-fits: its
# few images carry a noisier sample of the target's co-occurrences (the planted table in the quick
# profile, COCO's in the full one) than the large target's do. Data size and training length both
# matter; the paper's finding (2) cannot separate them either without such a control.
# :::
#
# :::{exercise}
# :label: ex-layer
# Score the pretrained model at two earlier layers as well as the chapter's
# (`T.score_model(pretrained, sets, layer, transform=transform)`). The names depend on the profile:
# quick, the small CNN's `"block2"` and `"block3"` besides `"pool"`; full, `"body.layer3"` and
# `"body.layer4"` of the torchvision-built and CLIP backbones, `"body.stages.2"` and
# `"body.stages.3"` of BiT, besides `"body"` (`[n for n, _ in pretrained.named_modules()]` lists
# them). Where in the network is the association strongest, and where does fine-tuning change it most?
# :::
#
# :::{solution} ex-layer
# :class: dropdown
# Expect the association to grow with depth: early layers respond to local colour and shape,
# while an association between objects and people (the style/icon association of the quick
# profile) is formed where the network combines them for its task.
# Fine-tuning also tends to change late layers most. Both are expectations, not guarantees:
# compute the scores and the BTS per layer on your run before concluding.
# :::
#
# :::{exercise}
# :label: ex-ssl
# (Full profile.) Add DINO's self-supervised ResNet-50 as a fifth backbone: a `BackboneSpec` in
# `fairlib.models.BACKBONES` whose weights come from DINO's published state dict (its `fc` is
# already removed). First check that it holds associations before fine-tuning (its significant
# scores); then: does its BTS fall below the supervised backbones', as the paper's finding (1)
# suggests, and does it agree with MoCo v2?
# :::
#
# :::{solution} ex-ssl
# :class: dropdown
# DINO's `dino_resnet50_pretrain.pth` holds a torchvision ResNet-50's weights without `fc` and
# without MoCo's `module.encoder_q.` prefix, so it needs its own loader beside `_moco_state_dict`
# (load it into `resnet50(weights=None)` with `fc = nn.Identity()`, strictly) and ImageNet's
# normalisation. Add it to the full grid's `backbones` and rerun the sweep: finished runs are not
# repeated. Compare
# the intervals, not only the point estimates: with a few dozen COCO concepts they are wide.
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
# - A linear probe leaves every association of the backbone unchanged, so its BTS of 1 checks the
#   pipeline and is no evidence about transfer.
# - On finding (2), the BTS {glue:text}`f2_bts_verdict` and the count of introduced associations
#   {glue:text}`f2_intro_verdict`: report both, and say when they disagree.
#   {glue:text}`closer_sentence` The bootstrap intervals are wide, and the BTS (its range over seeds was
#   {glue:text}`bts_range_small:.2f` on the small target, {glue:text}`bts_range_large:.2f` on the
#   large one) and the counts of threshold crossings vary with the fine-tuning seed: report the
#   spread over seeds, not one run.
# - No canonical image may appear in the data a model trained on; count them (here
#   {glue:text}`n_overlap`), and say what cannot be checked (a downloaded backbone's pretraining
#   data).
# - Choices the paper's summary leaves open (layer, similarity, threshold for a "new"
#   association) change the numbers: state them.
