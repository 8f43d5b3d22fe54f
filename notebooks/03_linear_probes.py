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
# # 3. Intersectional linear probes
#
# A network trained to recognise dogs and cars was never told anybody's age, ethnicity or
# gender. Does its internal representation of a face separate these groups anyway? If it does,
# any model built on top of it (a face-attribute classifier, a retrieval system) starts from a
# representation in which the groups are already apart. {cite:t}`krug2025intersectional` ask
# this layer by layer for three ImageNet classifiers (VGG16, ResNet50, InceptionV3), with the
# 126 *intersectional* groups of FairFace (7 race × 9 age × 2 gender categories) as the target,
# using **linear classifier probes**. This chapter rebuilds their probe, runs it along every
# layer of a network and reads the results the way the paper does, then asks what a probe's
# accuracy can and cannot tell us, with a randomly initialised network as the control.
#
# ```{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. explain what a linear classifier probe measures and why its target (126 intersectional
#    groups) can differ from what the network was trained for;
# 2. write down the paper's probe: the 8 × 8 downsampling rule (subsampling with
#    $k=\lceil H/8\rceil$ or average pooling), dropout, and the L1/L2-penalised cross-entropy;
# 3. run probes along a network's layers with `fairlib.probes` and read accuracy-along-layers
#    plots and learning curves, including the gap between training and validation accuracy;
# 4. build and interpret a frequent-errors table (which variables of an intersectional group a
#    probe confuses);
# 5. use a randomly initialised network as a control, and say why "linearly separable" is not
#    the same as "the network learned the groups".
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
import torch
from IPython.display import display

import fairlib
from fairlib import probes as P
from fairlib import sweep
from fairlib.activations import downsample
from fairlib.metrics import accuracy_interval
from fairlib.notebook import glue, verdict
from fairlib.probes import LinearProbe, frequent_errors

# The settings of both profiles live in fairlib.probes.SETTINGS. quick: SynthFaces faces (palette 7 x
# age 9 x style 2 = 126 groups, FairFace's schema), 32x32, 64 per group; the network is fairlib's
# SmallCNN trained on an UNRELATED task (accessories and expression of SynthFaces' multi-attribute
# faces) plus the same architecture with random weights; 15 probe epochs (paper: 50), the random
# control probed with subsampling only. full: FairFace capped at 640 per group, up to 128 per group,
# torchvision's ImageNet VGG16, ResNet50 and InceptionV3 plus a random ResNet50 (several GPU-hours;
# fetch the data first with `python -m data_scripts.fetch fairface`).
cfg = fairlib.select(P.SETTINGS, PROFILE)
rng = fairlib.seed_everything(SEED)
NOTE = fairlib.profile_note(PROFILE)
REDUCTIONS = list(P.REDUCTIONS)
print(f"profile={PROFILE}: {cfg}")


# %% [markdown]
# **Compute and data.** The next cell prints this profile's compute plan (`python -m fairlib.sweep
# plan` gives the detail). The full and paper profiles read fairface from the data root; the next cell
# fetches what is missing (it prints the download size) and does nothing in the quick profile. On
# Colab, `use_drive()` first puts the data root, the image cache and the sweep's finished runs on
# Google Drive (`FAIRLIB_DATA`, `FAIRLIB_CACHE`, `FAIRLIB_RESULTS`): after a disconnect, a new
# session reuses the data and resumes the sweep where it stopped.

# %%
from fairlib.plan import plan

print(plan("03_linear_probes", PROFILE).summary())  # runs, T4-hours and peak memory, computed from the code
if PROFILE != "quick":
    from data_scripts.fetch import ensure
    from fairlib.notebook import use_drive

    use_drive()
    ensure(["fairface"])

# %% [markdown]
# ## The idea
#
# A **linear classifier probe** {cite:p}`krug2025intersectional` takes a frozen network, records
# the activations $A_l(x)$ of one layer $l$ for many inputs $x$, and trains the simplest possible
# classifier, a linear map followed by a softmax, to predict a property of $x$ from them. The
# network is not changed; only the probe learns. If the probe reaches a high accuracy, the
# property is *linearly decodable* from that layer: a single linear read-out (the kind of layer
# that transfer learning puts on top of a frozen backbone) can recover it.
#
# The property here is the intersectional group $G\in\mathbf G$ of a face: one of
# $7\times 9\times 2=126$ combinations. The probe's target has nothing to do with the network's
# training task, which is exactly the point: a network trained on ImageNet objects that
# nevertheless separates age, race and gender groups carries that information into every model
# built on it. Layer 0 is the input image itself, so the first probe asks how separable the
# groups are in raw pixels, and every later layer is compared with that baseline.
#
# In this chapter's quick profile the faces are SynthFaces (a colour *palette*, nine *age* bins
# drawn as wrinkles, grey hair and a rounder young face, and two hair *styles*: the FairFace
# schema with neutral visual factors, not real people), and the network is a small CNN trained
# on an unrelated task. The full profile runs the paper's setup on FairFace.

# %% [markdown]
# ## The method
#
# **Data.** From every group take up to $n_{\max}$ random examples (paper: 128) and split each
# group's batch 90/10 into training and validation (`fairlib.probes.probe_split`). The probe
# set is balanced, so the chance level is $1/|\mathbf G| = 1/126\approx 0.8\%$.
#
# **Downsampling.** A feature map of $C$ channels of $H\times W$ values would give the probe
# $C\cdot H\cdot W\cdot 126$ weights (over $10^8$ for an early ResNet50 layer), far too many for
# a few thousand examples. Each map is reduced to at most $8\times 8$
# (`fairlib.activations.downsample`, as in the authors' code), either by **subsampling**, keeping
# every $k$-th value from the middle of the first block on,
#
# $$k=\left\lceil H/8\right\rceil,\qquad o=\lfloor k/2\rfloor,\qquad
# D_{\text{sub}}(A)_{c,i,j}=A_{c,\,o+ki,\,o+kj},\qquad i,j = 0,\dots,\lceil (H-o)/k\rceil-1,$$
#
# or by **average pooling**, the mean of each $k\times k$ block (stride $k$, no padding), which
# gives $\lfloor H/k\rfloor\times\lfloor W/k\rfloor$ values. Subsampling keeps exact values at a
# sparse grid; pooling averages everything but blurs it. The two need not keep the same number of
# values: on a $17\times17$ map ($k=3$) subsampling keeps $6\times6$, pooling $5\times5$. Maps already at most $8\times8$ and
# flat layers are kept whole, so the two reductions coincide there and one probe serves both.
#
# **Probe.** Flatten, dropout with rate 0.25, one linear layer to 126 logits:
# $\hat p(\cdot\mid x)=\mathrm{softmax}\bigl(W\,\mathrm{drop}(\mathrm{vec}\,D(A_l(x)))+b\bigr)$,
# trained with Adam (default settings, batch 32) for 50 epochs on
#
# $$\mathcal L(W,b)=\frac{1}{|B|}\sum_{i\in B}-\log\hat p(g_i\mid x_i)
# \;+\;10^{-5}\,\lVert W\rVert_1\;+\;10^{-4}\,\lVert W\rVert_2^2 ,$$
#
# where $\lVert W\rVert_1=\sum|W_{jk}|$, $\lVert W\rVert_2^2=\sum W_{jk}^2$ and the bias is not
# penalised (Keras's L1L2 kernel regulariser; `LinearProbe.penalty`).
#
# **Reading it.** For each layer report the final training and validation accuracy; a higher
# accuracy means the layer separates the groups better. Learning curves (accuracy per epoch)
# show whether a gap between the two comes from training too long. Finally, in the most
# separable layer, list the most frequent confusions *true group → predicted group* with their
# error rate relative to the true group's size, and mark which variables differ.

# %% [markdown]
# ## The run
#
# ### Data: the probe sample

# %%
VARS = cfg["variables"]
ps = P.probe_sample(cfg["dataset"], cfg["data_options"], VARS, cap=cfg["cap"], per_group=cfg["per_group"], seed=SEED)
dataset, groups, ids, capped, sample = ps.dataset, ps.groups, ps.ids, ps.capped, ps.sample
y, train_idx, val_idx = ps.y, ps.train_idx, ps.val_idx
per_group = np.bincount(y, minlength=len(groups))
glue("n_groups", len(groups))
glue("n_train", len(train_idx))
glue("n_val", len(val_idx))
glue("chance", 100 / len(groups))
pd.DataFrame({"images": [len(dataset), len(capped), len(sample)],
              "smallest group": [groups["count"].min(), np.bincount(ids[capped]).min(), per_group.min()],
              "largest group": [groups["count"].max(), np.bincount(ids[capped]).max(), per_group.max()]},
             index=["dataset", f"capped at {cfg['cap']}", "probe sample"])

# %% tags=["hide-input"]
fig, axes = plt.subplots(2, 9, figsize=(10, 2.8))
for col, age in enumerate(groups[VARS[1]].cat.categories):
    for row in range(2):
        g = np.flatnonzero((groups[VARS[1]] == age).to_numpy() & (groups[VARS[2]].cat.codes == row).to_numpy())
        g = g[(col + 3 * row) % len(g)]  # vary the first variable across panels
        img = dataset[int(sample[np.flatnonzero(y == g)[0]])][0]
        axes[row, col].imshow(img.permute(1, 2, 0).numpy())
        axes[row, col].set_title(", ".join(str(groups[v].iat[g]) for v in VARS), fontsize=6)
        axes[row, col].axis("off")
fig.suptitle(f"One example of 18 of the {len(groups)} groups ({NOTE})", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Networks: one trained for something else, one never trained
#
# The quick profile needs a stand-in for "a network trained on ImageNet": a network whose
# training labels are **independent of the groups by construction**. `build_network("small_cnn")`
# trains fairlib's four-block `SmallCNN` (`fairlib.probes.train_unrelated_cnn`) to detect
# twelve accessories and expressions (glasses, hat, smile, beard, fringe, earrings, ...) on
# SynthFaces' multi-attribute faces, rendered with no attribute–identity correlation. Those faces
# show every palette, a continuous range of ages and both hair lengths, all drawn at random and
# never labelled: the network sees the variation that defines the groups, but nothing in its
# loss rewards it for encoding them. Like ImageNet models on FairFace, it is then applied to
# images from a slightly different distribution (the group-labelled faces).
#
# The **control** is the same architecture with its random initial weights and no training at
# all. Whatever a probe finds in the random network cannot have been learned.
# The full profile loads torchvision's pretrained VGG16, ResNet50 and InceptionV3 and a random
# ResNet50.

# %%
# one run of the sweep per network: build (or train) it, capture every layer, train the probes
runs = sweep.run(P.run_probing, P.probing_grid(PROFILE), store=sweep.default_store("03_linear_probes", "probing"))
runs["label"] = [P.network_label(n, t) for n, t in zip(runs.network, runs.trained)]
networks = dict(zip(runs.label, runs.trained))
task_sentence = ("The trained networks are torchvision's ImageNet classifiers: their own task is ImageNet's "
                 "1,000 classes, and nothing in it is about the groups probed here.")
for _, r in runs[runs.trained & runs.get("task_auc", pd.Series(dtype=object)).notna()].iterrows():
    ev = pd.DataFrame({"auc": r.task_auc, "accuracy": r.task_accuracy, "majority_accuracy": r.task_majority},
                      index=r.task_attribute)
    task_sentence = (f"The trained network's own task is learned to this degree: held-out ROC AUC averages "
                     f"{ev['auc'].mean():.2f} over its {len(ev)} attributes, and {int((ev['auc'] > 0.9).sum())} "
                     f"of them exceed 0.9. Nothing in this task is about {', '.join(VARS)}.")
    caption = f"{r.label}: its own (unrelated) task on held-out images ({NOTE})"
    display(ev.style.format(precision=3).set_caption(caption))
glue("task_sentence", task_sentence)

# %% [markdown]
# {glue:text}`task_sentence`

# %% [markdown]
# ### Probing every layer
#
# `probe_network` feeds the probe sample through a network once per pass, stores every layer's
# activations under both reductions (float16 memory maps on disk), trains one probe per layer
# and reduction, and deletes the pass's files. The random control is probed the same way.

# %%
summary_all = P.probing_summary(runs)  # raw and standardised probes
summary = summary_all[summary_all.scaling == "raw"].drop(columns="scaling")  # the paper's probe
summary.pivot_table(index=["network", "layer_index", "layer"], columns="reduction",
                    values=["train_accuracy", "val_accuracy"]).round(3)

# %% [markdown]
# ## Results
#
# ### Accuracy along the layers

# %%
trained_labels = [k for k, trained in networks.items() if trained]
control_label = next(k for k, trained in networks.items() if not trained)
sub = summary[summary.reduction == "subsample"]
best = {label: sub[sub.network == label].sort_values("val_accuracy").iloc[-1] for label in networks}
# the network we read in detail is the trained twin of the control (same architecture, same layers),
# so that "trained minus random" compares each layer with itself
main = P.network_label(cfg["control"], True)
glue("best_layer", best[main]["layer"])
glue("best_val", 100 * best[main]["val_accuracy"])
# the honest version: choose the layer on one half of the validation images, report the other half
chosen = sub[sub.network == main].sort_values("val_select_accuracy").iloc[-1]
glue("select_layer", chosen["layer"])
glue("select_val", 100 * chosen["val_select_accuracy"])
report = chosen["val_report_accuracy"]  # NaN when the report half is empty (a tiny validation split)
glue("report_val", f"{100 * report:.1f}%" if np.isfinite(report) else
     "an unknown accuracy (the validation split is too small to halve)")
glue("best_train", 100 * best[main]["train_accuracy"])
glue("input_val", 100 * sub[(sub.network == main) & (sub.layer_index == 0)]["val_accuracy"].iloc[0])
glue("last_val", 100 * sub[sub.network == main]["val_accuracy"].iloc[-1])
last_index = int(sub[sub.network == main]["layer_index"].max())
glue("best_where", "the input layer" if best[main]["layer_index"] == 0 else
     "the last layer" if best[main]["layer_index"] == last_index else "a middle layer")

# does the trained network's best probe fit its training examples better than it generalises?
lo, hi = accuracy_interval(best[main]["val_accuracy"], len(val_idx))
glue("train_val_words", verdict(best[main]["train_accuracy"] - hi, best[main]["train_accuracy"] - lo,
                                below="generalise better than they fit (an unusual result)",
                                above="fit their training examples better than they generalise",
                                neither="do not fit their training examples measurably better than they generalise"))
# do pixels alone (the input layer of the control) beat chance?
chance = 1 / len(groups)
in_val = sub[(sub.network == control_label) & (sub.layer_index == 0)]["val_accuracy"].iloc[0]
lo, hi = accuracy_interval(in_val, len(val_idx))
glue("pixels_words", verdict(lo - chance, hi - chance, below="fall below chance",
                             above="separate the groups better than chance",
                             neither="do not separate the groups measurably better than chance"))
glue("random_best_layer", best[control_label]["layer"])
glue("random_best_val", 100 * best[control_label]["val_accuracy"])
rand_sub = sub[sub.network == control_label].sort_values("layer_index")
rand_std_sub = summary_all[(summary_all.network == control_label) & (summary_all.scaling == "standardized")
                           & (summary_all.reduction == "subsample")].sort_values("layer_index")
glue("random_input_val", 100 * rand_sub["val_accuracy"].iloc[0])
glue("random_last_layer", rand_sub["layer"].iloc[-1])
glue("random_last_raw", 100 * rand_sub["val_accuracy"].iloc[-1])
glue("random_last_std", 100 * rand_std_sub["val_accuracy"].iloc[-1])
_a, _b = rand_sub["val_accuracy"].iloc[-1], rand_std_sub["val_accuracy"].iloc[-1]
_half = 1.96 * np.sqrt((_a * (1 - _a) + _b * (1 - _b)) / len(val_idx))  # 95% half-width of the difference
glue("random_last_clause", verdict(_b - _a - _half, _b - _a + _half,
                                   below="the standardised probe does worse, so the raw probe's level is not a "
                                         "scale artefact",
                                   above="part of what the deep random layers seem to lose is only the scale of "
                                         "their activations",
                                   neither="the two do not differ clearly at this sample size"))
gap = summary[summary.network == main].pivot_table(index="layer", columns="reduction", values="train_accuracy")
gap = gap[gap["subsample"] != gap["avgpool"]]
pool_gap = 100 * (gap["subsample"] - gap["avgpool"]).mean()
glue("pool_gap", abs(pool_gap))
glue("pool_gap_dir", "more" if pool_gap > 0 else "less")  # the sign decides the sentence

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
colors = {label: f"C{i}" for i, label in enumerate(networks)}
for ax, metric in zip(axes, ["val_accuracy", "train_accuracy"]):
    for (label, red), d in summary.groupby(["network", "reduction"], sort=False):
        ax.plot(d["layer_index"], 100 * d[metric], marker="o" if red == "subsample" else "s",
                ls="-" if red == "subsample" else "--", color=colors[label], ms=4, label=f"{label}, {red}")
    ax.axhline(100 / len(groups), color="grey", ls=":", lw=1.2, label=f"chance (1/{len(groups)})")
    title = {"val_accuracy": "validation accuracy", "train_accuracy": "training accuracy"}[metric]
    ax.set(xlabel="layer index (0 = input)", title=title)
    if len(trained_labels) == 1:  # one trained architecture: label the ticks with its layers
        d = summary[summary.network == trained_labels[0]].drop_duplicates("layer_index")
        ax.set_xticks(d["layer_index"], d["layer"], rotation=40, ha="right", fontsize=8)
axes[0].set_ylabel("accuracy of the probe (%)")
axes[0].legend(fontsize=7)
fig.suptitle(f"Linear probes for {len(groups)} intersectional groups along the layers ({NOTE})", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the left panel first. For the trained network, validation accuracy is
# {glue:text}`input_val:.1f`% at the input layer and {glue:text}`last_val:.1f`% at the last
# (chance is {glue:text}`chance:.1f`%), and highest at {glue:text}`best_where`,
# {glue:text}`best_layer` ({glue:text}`best_val:.1f`% on validation,
# {glue:text}`best_train:.1f`% on training data). That layer was chosen on the same validation
# images that score it, which can flatter it; chosen on half of them instead
# ({glue:text}`select_layer`, {glue:text}`select_val:.1f`%), the most separable layer scores
# {glue:text}`report_val` on the other half, which played no part in the choice. The right panel
# shows training accuracy: at the best layer the probes {glue:text}`train_val_words` (the
# training accuracy against the validation accuracy's 95% interval), the pattern the paper reports
# for every network. Where the two reductions differ (the large early
# maps), subsampling gives {glue:text}`pool_gap:.1f` percentage points {glue:text}`pool_gap_dir`
# training accuracy than average pooling on average; deeper maps are already at most 8 × 8, so one probe serves
# both reductions there.
#
# The **random network** is the control. Its input-layer probe reaches
# {glue:text}`random_input_val:.1f`% on validation (chance {glue:text}`chance:.1f`%): pixels alone
# {glue:text}`pixels_words` (95% interval). Random
# convolutions with ReLUs are a random feature expansion of those pixels; with the paper's probe its
# best layer is {glue:text}`random_best_layer` ({glue:text}`random_best_val:.1f`%), although the
# network learned nothing. At its last layer, {glue:text}`random_last_layer`, the paper's probe
# reaches {glue:text}`random_last_raw:.1f`% but a probe on standardised features
# {glue:text}`random_last_std:.1f`%: {glue:text}`random_last_clause` (see *the control* below). Beating chance is therefore not evidence
# that a network *learned* to separate the groups; beating the input layer and the random control,
# on features of the same scale, is.

# %% [markdown]
# ### Learning curves

# %%
curves = {r.label: (lambda c: c[c.scaling == "raw"])(P.probing_curves(r)) for _, r in runs.iterrows()}
h = curves[main][(curves[main].reduction == "subsample") & (curves[main].layer == best[main]["layer"])]
glue("peak_val", 100 * h["val_accuracy"].max())
glue("peak_epoch", int(h.loc[h["val_accuracy"].idxmax(), "epoch"]))
glue("n_epochs", cfg["epochs"])
peak_row, last_row = h.loc[h["val_accuracy"].idxmax()], h.iloc[-1]
glue("late_sentence", "the last epoch, so the final validation accuracy is also the best one"
     if peak_row["epoch"] == last_row["epoch"] else
     f"after that epoch, to the last, validation accuracy changes by "
     f"{100 * (last_row['val_accuracy'] - peak_row['val_accuracy']):+.1f} points and training accuracy by "
     f"{100 * (last_row['train_accuracy'] - peak_row['train_accuracy']):+.1f} points")
glue("val_se", 100 * np.sqrt(best[main]["val_accuracy"] * (1 - best[main]["val_accuracy"]) / len(val_idx)))

# %% tags=["hide-input"]
fig, axes = plt.subplots(len(trained_labels), 3, figsize=(11, 3.0 * len(trained_labels)),
                         squeeze=False, sharey=True)
for row, label in enumerate(trained_labels):
    names = summary[summary.network == label].drop_duplicates("layer_index").set_index("layer_index")["layer"]
    layer_picks = [0, int(best[label]["layer_index"]), int(names.index.max())]
    for ax, li in zip(axes[row], layer_picks):
        for red, ls in zip(REDUCTIONS, ["-", "--"]):
            c = curves[label][(curves[label].reduction == red) & (curves[label].layer == names[li])]
            ax.plot(c["epoch"], 100 * c["train_accuracy"], color="C0", ls=ls, label=f"train, {red}")
            ax.plot(c["epoch"], 100 * c["val_accuracy"], color="C1", ls=ls, label=f"validation, {red}")
        ax.axhline(100 / len(groups), color="grey", ls=":", lw=1)
        ax.set(title=f"{label}: layer {li} ({names[li]})", xlabel="epoch")
axes[0, 0].set_ylabel("accuracy (%)")
axes[0, 0].legend(fontsize=7)
fig.suptitle(f"Learning curves of the probes ({NOTE})", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# At the most separable layer the validation accuracy is highest ({glue:text}`peak_val:.1f`%) in
# epoch {glue:text}`peak_epoch` of {glue:text}`n_epochs`: {glue:text}`late_sentence`. The paper uses learning curves in this way, to check
# that the final validation accuracy is not a decline after an earlier, better point. (The quick
# profile trains fewer epochs; the full profile trains the paper's 50.)

# %% [markdown]
# ### Which groups are confused?
#
# In the most separable layer of each trained network we list the ten most frequent confusions
# among the probe's **training** predictions (as in the paper's Tables 2–4), with each
# confusion's count divided by the number of training examples of its true group.

# %%
tables, preds = {}, {}
for label in trained_labels:
    r = runs.set_index("label").loc[label]
    assert r.best_layer == best[label]["layer"]  # the run kept the predictions of its best layer
    preds[label] = (np.asarray(r.train_pred), np.asarray(r.val_pred))
    tables[label] = frequent_errors(y[train_idx], preds[label][0], groups, variables=VARS, top=10)
    display(tables[label].style.format({"error_rate": "{:.2%}"}).set_caption(
        f"{label}, layer {best[label]['layer']}: most frequent training errors ({NOTE})"))

# %% [markdown]
# The paper reports its tables at the layer where its probes did best for each network (VGG16
# `block4_pool`, ResNet50 `conv5_block1_out`, InceptionV3 `mixed7`). With torchvision's weights our
# most separable layer need not be the same, so in the full profile the next cell also shows the
# tables at the paper's layers, to read ours against the paper's at the same place; the quick
# profile's small CNN has none of these layers.

# %%
paper_layer_tables = {}
for label in trained_labels:
    r = runs.set_index("label").loc[label]
    if isinstance(r.get("paper_layer"), str):
        paper_layer_tables[label] = frequent_errors(y[train_idx], np.asarray(r.paper_train_pred), groups,
                                                    variables=VARS, top=10)
        display(paper_layer_tables[label].style.format({"error_rate": "{:.2%}"}).set_caption(
            f"{label}, the paper's layer {r.paper_layer}: most frequent training errors ({NOTE})"))
if not paper_layer_tables:
    print(f"No network of the {PROFILE} profile has a layer of the paper's Tables 2-4.")

# %% [markdown]
# The top of the table shows single confusions; the next cell counts *all* errors of that
# probe by which variables are wrong, and the accuracy of each variable on its own (a
# prediction of the intersectional group also predicts its palette, its age and its style).

# %%
train_pred, val_pred = preds[main]
all_errors = frequent_errors(y[train_idx], train_pred, groups, variables=VARS, top=len(groups) ** 2)
by_kind = all_errors.groupby("differs")["count"].sum().sort_values(ascending=False)
by_kind = (by_kind / by_kind.sum()).rename("share of training errors").to_frame()
codes = {v: groups[v].cat.codes.to_numpy() for v in VARS}
per_var = pd.DataFrame({
    "train accuracy": [(codes[v][y[train_idx]] == codes[v][train_pred]).mean() for v in VARS],
    "validation accuracy": [(codes[v][y[val_idx]] == codes[v][val_pred]).mean() for v in VARS],
    "chance": [1 / groups[v].nunique() for v in VARS]}, index=VARS)
age_only = by_kind.loc[VARS[1], "share of training errors"] if VARS[1] in by_kind.index else 0.0
glue("age_only_share", 100 * age_only)
glue("worst_var", per_var["validation accuracy"].idxmin())
age_bins = list(groups[VARS[1]].cat.categories)
age_wrong = all_errors[all_errors[f"true {VARS[1]}"] != all_errors[f"pred {VARS[1]}"]]
bins_apart = (age_wrong[f"true {VARS[1]}"].map(age_bins.index) - age_wrong[f"pred {VARS[1]}"].map(age_bins.index)).abs()
glue("adjacent_age_share", 100 * age_wrong["count"][bins_apart == 1].sum() / age_wrong["count"].sum())
display(by_kind.style.format("{:.1%}").set_caption(f"{main}, layer {best[main]['layer']}: kinds of errors ({NOTE})"))
per_var.style.format("{:.3f}").set_caption(f"Per-variable accuracy implied by the group probe ({NOTE})")

# %% [markdown]
# {glue:text}`age_only_share:.0f`% of this probe's training errors get *only* the age bin
# wrong, and {glue:text}`worst_var` is the variable it gets right least often on validation
# data. Of all errors with a wrong age, {glue:text}`adjacent_age_share:.0f`% predict a
# neighbouring bin. Adjacent age bins overlap in appearance (faces do not switch at 40), and the
# paper finds the same structure on FairFace, where most frequent errors are adjacent ages. In the
# quick profile the overlap is built into the data (SynthFaces renders age as a gradual change:
# more wrinkles, greyer hair), so there it tells us about the renderer and the method, not about
# any real group.

# %% [markdown]
# ### What probes can and cannot tell
#
# - A probe measures **linear decodability** of a labelled property from a layer, on a sample.
#   High accuracy says the information is present and linearly accessible; it does not say the
#   network *uses* it for its task, or that it was learned rather than inherited from the
#   pixels. At its input layer, pixels alone {glue:text}`pixels_words` here.
# - **Low accuracy is weak evidence of absence.** A linear probe with few examples per class and
#   strong downsampling can miss information a non-linear read-out (or a probe on all
#   $H\times W$ values) would find. The paper makes the same point in its conclusion.
# - **Compare against baselines, not against zero:** the input layer (what pixels alone give)
#   and a random network of the same architecture (what architecture alone gives). A trained
#   layer that clearly exceeds both has *learned* to separate the groups.
# - **Mind the sample.** With {glue:text}`n_val` validation examples, the best layer's validation
#   accuracy has a standard error of about {glue:text}`val_se:.1f` percentage points; differences
#   between neighbouring layers of that size are noise. Large train–validation gaps mean the probe memorises individual
#   examples: many weights, few examples per class.
# - The target matters: 126 intersectional classes are much harder than one variable at a time,
#   and a confusion between two groups can reflect genuine visual overlap (adjacent age bins)
#   rather than a property of the network.

# %%
rand = summary[(summary.network == control_label) & (summary.reduction == "subsample")].set_index("layer")
trn = sub[sub.network == main].set_index("layer")
common = [layer for layer in trn.index if layer in rand.index]
std = summary_all[(summary_all.scaling == "standardized") & (summary_all.reduction == "subsample")]
trn_std = std[std.network == main].set_index("layer")
rand_std = std[std.network == control_label].set_index("layer")
control_table = pd.DataFrame({"trained": trn.loc[common, "val_accuracy"],
                              "random init": rand.loc[common, "val_accuracy"],
                              "trained (std.)": trn_std.loc[common, "val_accuracy"],
                              "random init (std.)": rand_std.loc[common, "val_accuracy"]})
control_table["gain, raw"] = control_table["trained"] - control_table["random init"]
control_table["gain, std."] = control_table["trained (std.)"] - control_table["random init (std.)"]
layer = best[main]["layer"]
n_val = len(val_idx)
for name, (a, b) in {"raw": ("trained", "random init"), "std": ("trained (std.)", "random init (std.)")}.items():
    pa, pb = control_table.loc[layer, a], control_table.loc[layer, b]
    gain = 100 * (pa - pb)
    # two accuracies on the same validation images, treated as independent (conservative)
    half = 196 * np.sqrt((pa * (1 - pa) + pb * (1 - pb)) / n_val)
    glue(f"learned_gain_{name}", gain)
    glue(f"learned_gain_{name}_lo", gain - half)
    glue(f"learned_gain_{name}_hi", gain + half)
    if name == "raw":
        raw_gain, raw_half = gain, half
    else:
        std_gain, std_half = gain, half
glue("random_raw_train", 100 * rand.loc[layer, "train_accuracy"])
glue("random_std_train", 100 * rand_std.loc[layer, "train_accuracy"])
# the verdict: how much of the raw gain survives when both networks' features are standardised
glue("std_verdict",
     "no gain remains once the features are standardised: the raw gain is an artefact of scale"
     if std_gain - std_half <= 0 else
     "the gain shrinks once the features are standardised: part of the raw gain is an artefact of scale"
     if std_gain + std_half < raw_gain else
     "the gain holds once the features are standardised: it is not an artefact of scale")
control_table.style.format("{:.3f}").set_caption(
    f"Validation accuracy, trained vs random control, subsampling; raw and standardised features ({NOTE})")

# %% [markdown]
# At the trained network's most separable layer, {glue:text}`best_layer`, the paper's probe (raw
# activations) gains {glue:text}`learned_gain_raw:.1f` percentage points of validation accuracy
# over the random control (95% interval {glue:text}`learned_gain_raw_lo:.1f` to
# {glue:text}`learned_gain_raw_hi:.1f`). But a randomly initialised network's activations may
# barely vary between images, and then the paper's probe (a fixed number of Adam epochs with its
# L1/L2 penalties) may not fit them, whatever they encode. At that layer the random network's raw
# probe reaches {glue:text}`random_raw_train:.1f`% accuracy *on its own training examples*, against
# {glue:text}`random_std_train:.1f`% once each feature is standardised with the training split's
# mean and standard deviation (`scalings=("raw", "standardized")`, our addition to the paper's
# recipe). Standardised, the gain is {glue:text}`learned_gain_std:.1f` points
# ({glue:text}`learned_gain_std_lo:.1f` to {glue:text}`learned_gain_std_hi:.1f`):
# {glue:text}`std_verdict`. The difference between a trained network and its random twin, *on
# features of the same scale*, is the part of the separability that the training task created.

# %% [markdown]
# ## Compare with the paper
#
# The paper's accuracy curves are figures whose values are not in its text, so we compare its
# stated findings with ours, and quote its frequent-error tables (the paper's numbers, on
# FairFace, {cite:p}`krug2025intersectional`) beside ours.

# %%
claims = pd.DataFrame([
    ("input and output layers do not separate the groups; central layers separate them best",
     f"input {100 * sub[(sub.network == main) & (sub.layer_index == 0)]['val_accuracy'].iloc[0]:.1f}%, "
     f"best ({best[main]['layer']}) {100 * best[main]['val_accuracy']:.1f}%, "
     f"output {100 * sub[sub.network == main]['val_accuracy'].iloc[-1]:.1f}% (validation)"),
    ("training accuracy far above validation accuracy (poor generalisation)",
     f"best layer: train {100 * best[main]['train_accuracy']:.1f}% "
     f"vs validation {100 * best[main]['val_accuracy']:.1f}%"),
    ("average pooling gives lower training accuracy than subsampling in early layers",
     f"mean difference where they differ: {100 * (gap['subsample'] - gap['avgpool']).mean():+.1f} points"),
    ("no validation peak before the end of training (learning curves)",
     f"peak {100 * h['val_accuracy'].max():.1f}% at epoch "
     f"{int(h.loc[h['val_accuracy'].idxmax(), 'epoch'])} of {cfg['epochs']}"),
    ("most frequent errors: adjacent age groups; gender rarely wrong",
     f"{100 * age_only:.0f}% of training errors are age-only; validation accuracy of {VARS[2]} (gender's place) "
     f"{per_var['validation accuracy'].iloc[2]:.2f}, of {VARS[1]} {per_var['validation accuracy'].iloc[1]:.2f}"),
], columns=["paper's finding (VGG16, ResNet50, InceptionV3 on FairFace)", f"ours ({NOTE})"])
claims.style.set_caption("The paper's findings beside this run")

# %% [markdown]
# **Where we differ from the paper.**
#
# | | the paper {cite:p}`krug2025intersectional` | this chapter | why |
# |---|---|---|---|
# | data and networks | FairFace; ImageNet VGG16, ResNet50, InceptionV3 (Keras, with Keras's `preprocess_input`) | quick: SynthFaces and a small CNN trained on an unrelated task; full: FairFace and torchvision's ImageNet weights with torchvision's normalisation | the quick profile runs offline on a CPU; torchvision's weights (and their preprocessing) are not Keras's |
# | downsampling | every $k$-th value from $\lfloor k/2\rfloor$, or $k\times k$ average pooling without padding | the same (`downsample`, as the authors' code) | — |
# | sample | up to 128 images per group, 90/10 split | the same in full; 64 per group in quick | CPU budget |
# | probe training | 50 epochs, Adam, L1 1e-5 / L2 1e-4, dropout 0.25, batch 32 | the same in full; 15 epochs in quick | CPU budget |
# | stored activations | Keras float32 | float16 memory maps in full (float32 in memory in quick) | FairFace's layers at 224 px would not fit in a Colab session's RAM or disk otherwise; the probes train in float32 |
# | random control | not in the paper | a randomly initialised twin of a trained network (quick: the small CNN; full: ResNet50), probed the same way | what architecture alone gives, the baseline a trained layer must beat |
# | feature scale | raw activations | raw (the paper's probe) **and** standardised with the training split's statistics | a random network's tiny activations make the raw probe fail to fit, which confounds the control |
# | output layer | Keras softmax probabilities | logits | torchvision's models end in logits; a probe on a monotone transform of them differs little |
# | training accuracy | Keras's running mean over the epoch's batches (with dropout) | the probe in eval mode on all training examples after each epoch | a clean number; it runs a little higher than Keras's |
# | frequent-error tables | one layer per network (VGG16 `block4_pool`, ResNet50 `conv5_block1_out`, InceptionV3 `mixed7`) | the most separable layer, and in full also the paper's layers (`paper_train_pred` of each run) | the quick profile's small CNN has none of the paper's layers |
# | best layer | read from the figures | chosen on the validation split and reported on the same split, and also chosen on one half and reported on the other | the same-split number is slightly optimistic; the halves give an unbiased one |

# %% [markdown]
# The paper's Tables 2–4 (**the paper's numbers**; error rate relative to the true group's
# training examples, i.e. out of 115 = 128 − 13 for a full group) for the most separable layer of
# each network {cite:p}`krug2025intersectional`:

# %%
paper_tables = {title: P.paper_error_table(rows) for title, rows in P.PAPER_ERROR_ROWS.items()}
glue("train_per_group", len(train_idx) / len(groups))
glue("rate_step", 100 * len(groups) / len(train_idx))
for title, t in paper_tables.items():
    display(t.style.format({"error rate (%)": "{:.2f}"}).set_caption(f"{title} — the paper's numbers (FairFace)"))
# name our variables by the paper's variable in the same position (quick: palette ~ race, style ~ gender)
as_paper = dict(zip(VARS, ["race", "age", "gender"]))
paper_kinds = pd.concat(paper_tables.values())["differs"].value_counts()
ours_kinds = tables[main]["differs"].map(lambda d: ", ".join(as_paper[v] for v in d.split(", "))).value_counts()
kinds = pd.DataFrame({"paper, Tables 2–4 (30 rows)": paper_kinds, f"ours, top 10 ({NOTE})": ours_kinds})
# in how many rows is each variable wrong? (the paper's rows and ours, in the paper's names)
paper_rows = pd.concat(paper_tables.values())["differs"]
our_rows = tables[main]["differs"].map(lambda d: ", ".join(as_paper[v] for v in d.split(", ")))
wrong = pd.DataFrame({"paper": {v: int(paper_rows.str.contains(v).sum()) for v in ("race", "age", "gender")},
                      "ours": {v: int(our_rows.str.contains(v).sum()) for v in ("race", "age", "gender")}})
for v in wrong.index:
    glue(f"paper_wrong_{v}", int(wrong.loc[v, "paper"]))
glue("paper_rows", len(paper_rows))
glue("our_rows", len(our_rows))
glue("our_wrong_summary", ", ".join(f"{v} in {n}" for v, n in wrong["ours"].items()))
lead_paper, lead_ours = wrong["paper"].idxmax(), wrong["ours"].idxmax()
paper_median = pd.concat(paper_tables.values())["error rate (%)"].median()
our_median = 100 * tables[main]["error_rate"].median()
glue("paper_median_rate", paper_median)
glue("our_median_rate", our_median)
glue("rate_compare", "above" if our_median > paper_median else "below" if our_median < paper_median else "equal to")
glue("error_scope", "synthetic data we built: a check of the method, not a finding about real people; the full "
     "profile produces the comparable tables on FairFace" if PROFILE == "quick" else NOTE)
glue("error_shape", f"the same leading variable ({lead_ours})" if lead_paper == lead_ours else
     f"a different leading variable: {lead_ours} in ours, {lead_paper} in the paper's")
kinds.fillna(0).astype(int).rename_axis(f"variables wrong ({', '.join(f'{v} ~ {as_paper[v]}' for v in VARS)})")

# %% [markdown]
# In the paper's {glue:text}`paper_rows` rows, age is wrong in {glue:text}`paper_wrong_age`, race in
# {glue:text}`paper_wrong_race` and gender in {glue:text}`paper_wrong_gender`; a wrong age is usually
# the neighbouring bin. In our {glue:text}`our_rows` rows (in the paper's names) the counts are
# {glue:text}`our_wrong_summary`: {glue:text}`error_shape` ({glue:text}`error_scope`). The
# rates themselves are not on one scale: a full FairFace group gives the paper 115 training
# examples, so its rates move in steps of 0.87%, while ours have {glue:text}`train_per_group:.0f`
# per group (steps of {glue:text}`rate_step:.1f`%). The median rate of our ten rows,
# {glue:text}`our_median_rate:.1f`%, is {glue:text}`rate_compare` the paper's median,
# {glue:text}`paper_median_rate:.1f`%.

# %% [markdown]
# ## Exercises
#
# :::{exercise}
# :label: ex-single-variable
# Probe one variable at a time: at the most separable layer, train a probe for the age bin alone
# (9 classes; `groups[VARS[1]].cat.codes.to_numpy()[y]` gives each example's age code) with
# `fairlib.probes.train_probe`, and compare its validation accuracy with the age accuracy
# implied by the intersectional probe (the `per_var` table). Which is higher, and why?
# :::
#
# :::{solution} ex-single-variable
# :class: dropdown
# Recapture the layer (`fairlib.activations.capture_activations(net.model, probe_data,
# [layer], reductions=["subsample"])`), then train with `n_groups=9` on the age codes and the
# same `train_idx`/`val_idx`. The single-variable probe is usually more accurate on age: it has
# about 14 times as many examples per class, and it need not also decide palette and style,
# so its weights pool all faces of one age. The intersectional probe's age accuracy is a
# by-product of a harder task.
# :::
#
# :::{exercise}
# :label: ex-random-input
# The random network and the trained network share layer 0. Why are their input-layer
# accuracies identical here, and why is it still useful to probe a random network at layer 0
# *and* at deeper layers?
# :::
#
# :::{solution} ex-random-input
# :class: dropdown
# Layer 0 is the (transformed) image, before any weight is applied, so both probes see the same
# numbers and, with the same seed, train identically. Deeper random layers show how much
# separability the architecture alone (random convolutions, ReLUs, pooling) produces from those
# pixels; only the excess of a trained layer over both baselines can be credited to training.
# :::
#
# ### Graded exercises
#
# The three exercises below are graded automatically when your instructor hands out this
# chapter as an assignment. Write your code in place of the `raise NotImplementedError(...)`
# line; in the book, the solution is folded away.
#
# :::{exercise}
# :label: ex-subsample
# Write `subsample_maps(x, max_size)` for a tensor of shape `(N, C, H, W)`: keep every $k$-th
# row and column starting at $\lfloor k/2\rfloor$, with $k=\lceil H/\text{max\_size}\rceil$ for rows and
# $\lceil W/\text{max\_size}\rceil$ for columns. It must agree with
# `fairlib.activations.downsample(x, max_size, "subsample")`.
# :::

# %% tags=["graded", "exercise:ex-subsample", "hide-input"]
def subsample_maps(x, max_size=8):
    # BEGIN SOLUTION
    # HINT: compute the two strides k with math.ceil, then slice from k // 2 with step k: x[:, :, kh // 2::kh, ...]
    import math

    step_h = math.ceil(x.shape[-2] / max_size)
    step_w = math.ceil(x.shape[-1] / max_size)
    return x[:, :, step_h // 2::step_h, step_w // 2::step_w]
    # END SOLUTION


# %% tags=["tests", "exercise:ex-subsample", "remove-cell"]
_x = torch.arange(25.0).view(1, 1, 5, 5)
assert subsample_maps(_x, 2).flatten().tolist() == [6.0, 9.0, 21.0, 24.0], (
    "5x5 to at most 2x2: k = 3, keep rows/cols 1 and 4 (from k // 2 = 1)")
for _h, _w, _shape in [(14, 14, (7, 7)), (56, 56, (8, 8)), (7, 9, (7, 4)), (35, 35, (7, 7))]:
    _t = torch.randn(2, 3, _h, _w)
    assert tuple(subsample_maps(_t, 8).shape[-2:]) == _shape, f"{_h}x{_w} should give {_shape}"
    assert torch.equal(subsample_maps(_t, 8), downsample(_t, 8, "subsample"))

# %% [markdown]
# :::{exercise}
# :label: ex-penalty
# Write `l1l2_penalty(weight, l1=1e-5, l2=1e-4)`: the probe's regularisation term
# $l_1\sum|W_{jk}| + l_2\sum W_{jk}^2$ for a weight tensor, as a scalar tensor.
# :::

# %% tags=["graded", "exercise:ex-penalty", "hide-input"]
def l1l2_penalty(weight, l1=1e-5, l2=1e-4):
    # BEGIN SOLUTION
    # HINT: one term sums absolute values, the other sums squares; weight each and add
    return l1 * torch.sum(torch.abs(weight)) + l2 * torch.sum(weight ** 2)
    # END SOLUTION


# %% tags=["tests", "exercise:ex-penalty", "remove-cell"]
_w = torch.tensor([[1.0, -2.0], [3.0, 0.0]])
assert abs(float(l1l2_penalty(_w)) - (6e-5 + 14e-4)) < 1e-9, "sum|w| = 6, sum w^2 = 14"
assert abs(float(l1l2_penalty(_w, l1=1.0, l2=0.0)) - 6.0) < 1e-9
_p = LinearProbe(5, 3)
with torch.no_grad():
    assert abs(float(l1l2_penalty(_p.linear.weight)) - float(_p.penalty(1e-5, 1e-4))) < 1e-9

# %% [markdown]
# :::{exercise}
# :label: ex-error-rates
# Write `confusion_rates(y_true, y_pred, n_groups)`: an `(n_groups, n_groups)` array whose entry
# `[t, p]` (for `t != p`) is the number of examples of true group `t` predicted as `p`, divided by
# the number of examples of group `t`; the diagonal is 0. Its largest entry is the error rate in
# the first row of a frequent-errors table.
# :::

# %% tags=["graded", "exercise:ex-error-rates", "hide-input"]
def confusion_rates(y_true, y_pred, n_groups):
    # BEGIN SOLUTION
    # HINT: count pairs with np.add.at into a square array, divide each row by the group's size, zero the diagonal
    t, p = np.asarray(y_true), np.asarray(y_pred)
    counts = np.zeros((n_groups, n_groups))
    np.add.at(counts, (t, p), 1)
    sizes = np.maximum(counts.sum(axis=1, keepdims=True), 1)
    rates = counts / sizes
    np.fill_diagonal(rates, 0.0)
    return rates
    # END SOLUTION


# %% tags=["tests", "exercise:ex-error-rates", "remove-cell"]
_t, _pr = [0, 0, 0, 0, 1, 1, 2], [0, 2, 2, 1, 1, 0, 2]
_r = confusion_rates(_t, _pr, 3)
assert _r.shape == (3, 3) and np.allclose(np.diag(_r), 0)
assert np.allclose(_r, [[0, 0.25, 0.5], [0.5, 0, 0], [0, 0, 0]]), "group 0 has 4 examples, 2 of them -> 2"
_tab = pd.DataFrame({"v": pd.Categorical(["a", "b", "c"])})
assert abs(_r.max() - frequent_errors(_t, _pr, _tab)["error_rate"].iloc[0]) < 1e-12

# %% [markdown]
# ## Summary
#
# - A linear probe asks whether a frozen layer's activations make a labelled property linearly
#   decodable; the paper's probe downsamples each map to at most 8 × 8, applies dropout 0.25 and
#   one linear layer, and trains with cross-entropy plus $10^{-5}\lVert W\rVert_1+10^{-4}\lVert W\rVert_2^2$.
# - Along the layers, the paper finds separability of the 126 groups highest in central layers
#   and training accuracy far above validation accuracy. Here the most separable layer is
#   {glue:text}`best_where` ({glue:text}`best_layer`), and its probes
#   {glue:text}`train_val_words`.
# - Frequent-error tables show *which* variables a layer fails to separate. In the paper's
#   {glue:text}`paper_rows` FairFace rows age is wrong in {glue:text}`paper_wrong_age`; ours (from
#   data we built) have {glue:text}`error_shape`.
# - Separability is not learning: a network need not be trained for its layers to separate the
#   groups (here, pixels alone {glue:text}`pixels_words`). Compare trained layers with the input
#   layer and with a random control, and report the difference.
#
# The full references for this chapter are in the {doc}`../book/bibliography`.
