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
# # 5. Bias in pruned models
#
# Pruning sets most of a network's weights to zero so that it is cheaper to store and, with the
# right inference engine, to run. Does the compressed model treat groups differently from the
# dense one it came from? {cite:t}`iofinova2023pruned` study this for ResNet18 on CelebA with
# gradual magnitude pruning up to 99.5% sparsity. This chapter rebuilds their pipeline: a dense
# multi-attribute model, one gradual pruning run that yields a model at every sparsity, the
# systematic and category bias metrics of Chapter 1, a backdoor that plants a known bias, and
# two cheap countermeasures.
#
# ```{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. prune a network globally by weight magnitude with `torch.nn.utils.prune` on the cubic GMP
#    schedule, from random initialisation (GMP-RI) or from a trained model (GMP-PT), and with N:M masks;
# 2. measure how accuracy, AUC, threshold calibration bias, uncertainty, ECE, label interrelation
#    and bias amplification (BA) move with sparsity;
# 3. plant a bias with a backdoor trigger and measure it with BA;
# 4. find compression-identified exemplars and reduce BA with threshold calibration and
#    uncertainty-based overrides;
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
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "/content/course"], check=True)
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
import torchvision
from sklearn.metrics import roc_auc_score

import fairlib
from fairlib import metrics as M
from fairlib import pruning as P
from fairlib.models import SmallResNet
from fairlib.notebook import glue, progress

SETTINGS = {
    # SynthFaces' multi-attribute mode at 24x24, a tiny ResNet (about 20k weights), 3 seeds.
    # GMP-PT (prune a trained dense model) reuses the dense training: the cheapest honest sweep.
    "quick": {"data": "synthfaces", "n_train": 1500, "n_val": 600, "n_test": 1500, "size": 24,
              "arch": "small", "width": 8, "seeds": 3, "dense_epochs": 3, "lr": 0.05,
              "variant": "pt", "prune_lr": 2e-3, "prune_epochs": 3, "prune_start": 0, "prune_end": 2,
              "initial": 0.05, "finetune_epochs": 0.5, "batch_size": 64,
              "identities": ["angular", "smooth", "wide", "light"],
              "single": "earrings", "backdoor": "smile", "backdoor_seeds": 1},
    # CelebA (40 attributes), torchvision ResNet18 from scratch, GMP-RI as in the paper (100
    # epochs, pruning from epoch 10). Expect about 1.5 GPU-hours per seed on one modern GPU
    # at 96x96 (the paper used full-size crops); images are kept as uint8 in memory (~5 GB).
    "full": {"data": "celeba", "n_train": None, "n_val": None, "n_test": None, "size": 96,
             "arch": "resnet18", "width": None, "seeds": 5, "dense_epochs": 100, "lr": 0.1,
             "variant": "ri", "prune_lr": 0.1, "prune_epochs": 100, "prune_start": 10, "prune_end": 80,
             "initial": 0.05, "finetune_epochs": 2, "batch_size": 256,
             "identities": ["Male", "Young", "Chubby", "Pale_Skin"],
             "single": "Oval_Face", "backdoor": "Smiling", "backdoor_seeds": 1},
}
cfg = fairlib.select(SETTINGS, PROFILE)
rng = fairlib.seed_everything(SEED)
NOTE = fairlib.profile_note(PROFILE)
DEVICE = fairlib.get_device()
SPARSITIES = [0.8, 0.9, 0.95, 0.98, 0.99, 0.995]
T0 = time.perf_counter()
print(f"profile={PROFILE} on {DEVICE}: {cfg}")

# %% [markdown]
# ## The idea
#
# **Gradual magnitude pruning (GMP).** Every few epochs, the weights of all convolutions and
# linear layers are ranked together by $|w|$ and the smallest are masked to zero; the network
# keeps training in between, so it can adapt to each cut. The target sparsity follows a cubic
# schedule that cuts fast at first and slowly at the end,
#
# $$s(t) = s_f - (s_f - s_i)\Bigl(1 - \frac{t - t_0}{t_1 - t_0}\Bigr)^3,\qquad t_0\le t\le t_1 ,$$
#
# from an initial $s_i$ at epoch $t_0$ to the final $s_f$ at $t_1$ (`fairlib.pruning.cubic_sparsity`).
# The ranking is *global*: layers lose different fractions, which is what lets the paper reach
# 99.5% sparsity before the model breaks down {cite:p}`iofinova2023pruned`. The paper's main
# variant, GMP-RI, prunes while training from random initialisation; GMP-PT starts from a
# trained dense model and fine-tunes with Adam at a lower rate.
#
# **Two kinds of bias.** *Systematic* bias is error that is not about one group: threshold
# calibration bias (TCB, the ratio of predicted to true counts of each attribute's rarer value,
# ideally 1), the share of uncertain outputs ($0.1<p<0.9$), ECE over 10 bins, and label
# interrelation (the $R^2$ of each output regressed on the others). *Category* bias is measured
# by bias amplification against an identity category $I$,
#
# $$\mathrm{BA} = \frac{N(\hat A=1, I=g^*)}{N(\hat A = 1)} - \frac{N(A=1, I=g^*)}{N(A=1)},$$
#
# where $g^*$ is the identity value that co-occurs more with attribute $A$ in training: positive
# BA means the model over-predicts the attribute for the group already associated with it
# (Chapter 1; `fairlib.metrics.attribute_bias_amplification`).
#
# Below, the same code runs on SynthFaces in the quick profile (four identity-like categories,
# *angular*, *smooth*, *wide*, *light*, standing in for CelebA's Male, Young, Chubby, Pale_Skin)
# and on CelebA in the full profile.

# %% [markdown]
# ## The data
#
# Twelve binary attributes; some are tied to an identity by construction (e.g. *beard* and
# *lipstick* to *angular*, *glasses* to *smooth*), so BA has something to amplify.

# %%
def to_tensors(images, frame, attrs):
    x = images
    y = torch.tensor(np.stack([frame[a].astype(int).to_numpy() for a in attrs], 1))
    return x, y


if cfg["data"] == "synthfaces":
    from fairlib.data.synthfaces import IDENTITY_ATTRIBUTES, MULTI_ATTRIBUTES, render_multiattribute

    ATTRS = list(MULTI_ATTRIBUTES)
    splits = {}
    for i, (name, n) in enumerate((("train", cfg["n_train"]), ("val", cfg["n_val"]), ("test", cfg["n_test"]))):
        imgs, frame = render_multiattribute(n, size=cfg["size"], seed=SEED + 101 * i)
        splits[name] = (imgs, frame)
else:
    from fairlib.data import load_dataset

    splits = {}
    for name in ("train", "val", "test"):
        ds = load_dataset("celeba", name, size=cfg["size"], transform=lambda t: t)  # keep uint8
        imgs = torch.stack([ds[i][0] for i in progress(range(len(ds)), desc=name)])
        splits[name] = (imgs, ds.attributes)
    ATTRS = [c for c in splits["train"][1].columns if c not in cfg["identities"]]

IDS = cfg["identities"]
data = {k: to_tensors(im, fr, ATTRS) for k, (im, fr) in splits.items()}
ident = {k: {i: fr[i].astype(int).to_numpy() for i in IDS} for k, (_, fr) in splits.items()}
x_train, y_train = data["train"]
x_val, y_val = data["val"]
x_test, y_test = data["test"]
if x_train.dtype == torch.uint8 and cfg["data"] == "synthfaces":
    x_train, x_val, x_test = (t.float() / 255 for t in (x_train, x_val, x_test))
print({k: tuple(v[0].shape) for k, v in data.items()})
pd.DataFrame({"rate": y_train.float().mean(0).numpy()}, index=ATTRS).T.round(3)

# %% [markdown]
# ## The method
#
# `fairlib.pruning.global_magnitude_prune(model, s)` calls `torch.nn.utils.prune.global_unstructured`
# with `L1Unstructured` over every conv and linear weight (biases and norm layers excluded). The
# masks live in the model as `weight_mask` buffers, so pruned weights stay exactly zero while the
# optimizer updates the rest; calling it again with a higher $s$ removes just enough survivors to
# reach the new *global* target. `train_gmp` runs one schedule and **snapshots** each target
# sparsity as the schedule passes it (copy, prune to the exact target, fine-tune briefly), so one
# run per seed yields all six sparse models. A small demonstration of the schedule:

# %%
steps = np.linspace(0, 12, 121)
sched = [P.cubic_sparsity(t, final=0.995, start=2, end=10) for t in steps]
fig, ax = plt.subplots(figsize=(5, 2.6))
ax.plot(steps, sched)
ax.set(xlabel="epoch", ylabel="sparsity", title="cubic GMP schedule (start 2, end 10, final 99.5%)")
plt.show()

# %% [markdown]
# ## The run
#
# For each seed: a dense model trained on all attributes jointly, a dense model trained on one
# attribute alone, and one GMP run that yields the six sparse joint models.

# %%
def new_model(n_out):
    if cfg["arch"] == "resnet18":
        return torchvision.models.resnet18(weights=None, num_classes=n_out)
    return SmallResNet(width=cfg["width"], blocks=(1, 1, 1), in_channels=3, num_outputs=n_out)


def train_dense(seed, y, n_out):
    fairlib.seed_everything(seed)
    model = new_model(n_out).to(DEVICE)
    P.train_multilabel(model, x_train, y, epochs=cfg["dense_epochs"], lr=cfg["lr"],
                       batch_size=cfg["batch_size"], seed=seed)
    return model


def sweep(seed, dense_model, y):
    """One GMP run: from the dense model (GMP-PT) or from scratch (GMP-RI)."""
    fairlib.seed_everything(seed + 1)
    start = P.clone_model(dense_model) if cfg["variant"] == "pt" else new_model(y.shape[1]).to(DEVICE)
    return P.train_gmp(start, x_train, y, targets=SPARSITIES, epochs=cfg["prune_epochs"],
                       start=cfg["prune_start"], end=cfg["prune_end"], lr=cfg["prune_lr"],
                       variant=cfg["variant"], initial=cfg["initial"], finetune_epochs=cfg["finetune_epochs"],
                       batch_size=cfg["batch_size"], seed=seed + 2)


def logits_of(model, x):
    z = P.predict_logits(model, x)
    return (z[:, None] if z.ndim == 1 else z).numpy()


SINGLE = ATTRS.index(cfg["single"])
runs = []  # one dict per seed: logits of every model on val and test
for seed in progress(range(SEED, SEED + cfg["seeds"]), desc="seeds"):
    dense = train_dense(seed, y_train, len(ATTRS))
    single = train_dense(seed, y_train[:, SINGLE:SINGLE + 1], 1)
    sparse = sweep(seed, dense, y_train)
    if seed == SEED:
        first_dense = dense  # kept for the N:M section
    models = {0.0: dense, **sparse}
    runs.append({
        "val": {s: logits_of(m, x_val) for s, m in models.items()},
        "test": {s: logits_of(m, x_test) for s, m in models.items()},
        "single_test": logits_of(single, x_test)[:, 0],
        "measured": {s: P.measure_sparsity(m) for s, m in models.items()},
    })
measured = pd.DataFrame([r["measured"] for r in runs]).mean()
print("measured sparsity per target:", measured.round(4).to_dict())

# %% [markdown]
# ### Metrics for one model
#
# Predictions use the default threshold $p>0.5$ unless stated. BA is computed for every
# (attribute, identity) pair whose training rates differ enough and whose test groups have at
# least 10 positives; other pairs are NaN and skipped in means, as in the paper.

# %%
Y_TEST = y_test.numpy()
Y_TRAIN = y_train.numpy()
sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731


def ba_table(pred, cols=None, y_true=Y_TEST):
    """BA per (attribute, identity): rows attributes, columns identities."""
    cols = range(pred.shape[1]) if cols is None else cols
    out = {}
    for i in IDS:
        out[i] = [M.attribute_bias_amplification(ident["test"][i], y_true[:, j], pred[:, k],
                                                 train_identity=ident["train"][i], train_true=Y_TRAIN[:, j])
                  for k, j in enumerate(cols)]
    return pd.DataFrame(out, index=[ATTRS[j] for j in cols])


def summarise(logits, pred=None):
    probs = sigmoid(logits)
    pred = (logits > 0).astype(int) if pred is None else pred
    K = logits.shape[1]
    ba = ba_table(pred)
    return {
        "accuracy": float((pred == Y_TEST).mean()),
        "auc": float(np.mean([roc_auc_score(Y_TEST[:, j], logits[:, j]) for j in range(K)])),
        "tcb": float(np.mean([M.threshold_calibration_bias(Y_TEST[:, j], pred[:, j]) for j in range(K)])),
        "uncertainty": M.uncertainty_rate(probs),
        "ece": float(np.mean([M.expected_calibration_error(probs[:, j], Y_TEST[:, j], n_bins=10) for j in range(K)])),
        "interrelation": float(np.nanmean(M.label_interrelation(probs))),
        "mean_ba": float(np.nanmean(ba.to_numpy())),
        "worst_ba": float(np.nanmax(ba.to_numpy())),
    }


rows = []
for seed_i, r in enumerate(runs):
    for s, z in r["test"].items():
        rows.append({"seed": seed_i, "sparsity": s, **summarise(z)})
table = pd.DataFrame(rows)
by_sparsity = table.groupby("sparsity").mean().drop(columns="seed")
by_sparsity.round(3)

# %% [markdown]
# ## Results
#
# ### The dense baseline: joint versus single-attribute training
#
# The dense joint model reaches an accuracy of {glue:text}`dense_acc:.3f` (mean over attributes
# and seeds), a mean AUC of {glue:text}`dense_auc:.3f`, a mean TCB of {glue:text}`dense_tcb:.3f`
# and an ECE of {glue:text}`dense_ece:.3f`. BA per identity category:

# %%
dense_row = by_sparsity.loc[0.0]
for k in ("accuracy", "auc", "tcb", "ece", "uncertainty", "interrelation"):
    glue(f"dense_{k[:3] if k != 'accuracy' else 'acc'}", float(dense_row[k]))
ba_dense = sum(ba_table((r["test"][0.0] > 0).astype(int)) for r in runs) / len(runs)

fig, ax = plt.subplots(figsize=(6.5, 3.4))
ba_dense.plot.bar(ax=ax)
ax.axhline(0, color="k", lw=0.8)
ax.set(ylabel="BA (mean over seeds)", title=f"Dense joint model: BA per identity\n({NOTE})")
plt.show()

# joint versus single training for one attribute, against the identity it is tied to
j = SINGLE
single_stats = []
for r in runs:
    zs = r["single_test"]
    zj = r["test"][0.0][:, j]
    for name, z in (("joint", zj), ("single", zs)):
        pred = (z > 0).astype(int)
        single_stats.append({
            "training": name, "accuracy": float((pred == Y_TEST[:, j]).mean()),
            "auc": roc_auc_score(Y_TEST[:, j], z),
            "tcb": M.threshold_calibration_bias(Y_TEST[:, j], pred),
            "uncertainty": M.uncertainty_rate(sigmoid(z)),
            **{f"BA {i}": M.attribute_bias_amplification(ident["test"][i], Y_TEST[:, j], pred,
                                                         train_identity=ident["train"][i],
                                                         train_true=Y_TRAIN[:, j]) for i in IDS},
        })
single_table = pd.DataFrame(single_stats).groupby("training").mean()
print(f"attribute {ATTRS[j]!r}, mean over seeds ({NOTE}):")
single_table.round(3)

# %% [markdown]
# In the paper, single-attribute models amplify bias more than jointly trained ones (about three
# times more for Oval Face and Big Nose w.r.t. Male) and have a worse TCB. Compare the two rows
# above for our attribute: with tiny data and three epochs the difference may go either way, so
# read it with the seed spread in mind (exercise 2).
#
# ### The sparsity sweep
#
# Measured sparsities match the targets (the library checks this to 0.1 percentage points in its
# tests). How each metric moves with sparsity:

# %%
metrics_to_plot = ["accuracy", "auc", "tcb", "uncertainty", "ece", "interrelation", "mean_ba", "worst_ba"]
xs = ["dense"] + [f"{100 * s:g}%" for s in SPARSITIES]
fig, axes = plt.subplots(2, 4, figsize=(13, 5.2))
for ax, m in zip(axes.ravel(), metrics_to_plot):
    for seed_i in range(len(runs)):
        ax.plot(xs, table[table.seed == seed_i][m].to_numpy(), color="0.7", lw=0.8)
    ax.plot(xs, by_sparsity[m].to_numpy(), color="C3", marker="o")
    ax.set_title(m)
    ax.tick_params(axis="x", rotation=60)
fig.suptitle(f"Joint model metrics vs sparsity (grey: seeds, red: mean) — {NOTE}")
fig.tight_layout()
plt.show()

hi = 0.995
for k in ("accuracy", "tcb", "uncertainty", "ece", "mean_ba", "worst_ba"):
    glue(f"s995_{k}", float(by_sparsity.loc[hi, k]))
glue("dense_worst_ba", float(dense_row["worst_ba"]))
glue("dense_mean_ba", float(dense_row["mean_ba"]))
glue("s90_mean_ba", float(by_sparsity.loc[0.9, "mean_ba"]))

# %% [markdown]
# At 99.5% sparsity the joint model's accuracy is {glue:text}`s995_accuracy:.3f`, its TCB
# {glue:text}`s995_tcb:.3f`, its uncertainty rate {glue:text}`s995_uncertainty:.3f` and its ECE
# {glue:text}`s995_ece:.3f`; the mean BA moves from {glue:text}`dense_mean_ba:.3f` (dense) via
# {glue:text}`s90_mean_ba:.3f` (90%) to {glue:text}`s995_mean_ba:.3f`, and the worst-case BA
# across identities and attributes from {glue:text}`dense_worst_ba:.3f` to
# {glue:text}`s995_worst_ba:.3f`. Our quick network has only about 20 thousand weights, so 99.5%
# leaves about a hundred: far beyond where ResNet18's 11 million weights break down. Where
# accuracy collapses towards always predicting the majority value, TCB falls towards 0 and BA
# can become undefined (no predicted positives) — a broken model, not a fair one.
#
# The worst-case BA of each model across the four identity categories, per attribute:

# %%
worst_rows = []
for r in runs:
    for s, z in r["test"].items():
        ba = ba_table((z > 0).astype(int))
        for a, v in ba.max(axis=1, skipna=True).items():
            worst_rows.append({"sparsity": s, "attribute": a, "worst BA": v})
worst = pd.DataFrame(worst_rows).dropna()
fig, ax = plt.subplots(figsize=(7, 3.2))
groups = [worst[worst.sparsity == s]["worst BA"].to_numpy() for s in [0.0] + SPARSITIES]
ax.boxplot(groups, tick_labels=xs)
ax.axhline(0, color="k", lw=0.8)
ax.set(ylabel="worst-case BA", title=f"Worst-case BA across identities, all attributes and seeds\n({NOTE})")
plt.show()

# %% [markdown]
# ### N:M semi-structured sparsity
#
# Hardware-friendly 2:4, 1:4 and 1:8 patterns keep the $n$ largest of every $m$ consecutive input
# weights. Applied one-shot to the dense model of the first seed (no fine-tuning, so this shows the
# raw damage); the RGB stem, with 3 inputs, stays dense:

# %%
nm_rows = []
for n, m in ((2, 4), (1, 4), (1, 8)):
    model = P.clone_model(first_dense)
    s = P.nm_prune(model, n, m)
    z = logits_of(model, x_test)
    nm_rows.append({"pattern": f"{n}:{m}", "sparsity": s, **summarise(z)})
nm_table = pd.DataFrame(nm_rows).set_index("pattern")
nm_table[["sparsity", "accuracy", "auc", "tcb", "mean_ba"]].round(3)

# %% [markdown]
# ### A planted bias: backdoored training data
#
# We stamp a small yellow square into the corner of 95% of the training images whose attribute is
# positive and of 5% of the negatives (the paper's split for Blond and Smiling), train a
# single-attribute model, and test on images stamped at random half of the time. With
# "backdoored" as the identity, BA measures how much the model uses the trigger as a shortcut.

# %%
def stamp(x, mask):
    x = x.clone()
    k = max(2, x.shape[-1] // 6)
    if x.dtype == torch.uint8:
        x[mask, 0, :k, :k], x[mask, 1, :k, :k], x[mask, 2, :k, :k] = 255, 255, 0
    else:
        x[mask, 0, :k, :k], x[mask, 1, :k, :k], x[mask, 2, :k, :k] = 1.0, 1.0, 0.0
    return x


BD = ATTRS.index(cfg["backdoor"])
g = np.random.default_rng(SEED)
yb_train = y_train[:, BD].numpy()
bd_train = np.where(yb_train == 1, g.random(len(yb_train)) < 0.95, g.random(len(yb_train)) < 0.05)
bd_test = g.random(len(y_test)) < 0.5
xb_train = stamp(x_train, torch.from_numpy(bd_train))
xb_test = stamp(x_test, torch.from_numpy(bd_test))
bd_rows = []
for seed in range(SEED, SEED + cfg["backdoor_seeds"]):
    fairlib.seed_everything(seed)
    m0 = new_model(1).to(DEVICE)
    yb = y_train[:, BD:BD + 1]
    P.train_multilabel(m0, xb_train, yb, epochs=cfg["dense_epochs"], lr=cfg["lr"],
                       batch_size=cfg["batch_size"], seed=seed)
    start = P.clone_model(m0) if cfg["variant"] == "pt" else new_model(1).to(DEVICE)
    sp = P.train_gmp(start, xb_train, yb, targets=[0.9, 0.99], epochs=cfg["prune_epochs"],
                     start=cfg["prune_start"], end=cfg["prune_end"], lr=cfg["prune_lr"], variant=cfg["variant"],
                     initial=cfg["initial"], finetune_epochs=cfg["finetune_epochs"],
                     batch_size=cfg["batch_size"], seed=seed + 2)
    for s, mod in {0.0: m0, **sp}.items():
        z = logits_of(mod, xb_test)[:, 0]
        pred = (z > 0).astype(int)
        bd_rows.append({"sparsity": s, "accuracy": float((pred == Y_TEST[:, BD]).mean()),
                        "BA (backdoored)": M.attribute_bias_amplification(
                            bd_test.astype(int), Y_TEST[:, BD], pred,
                            train_identity=bd_train.astype(int), train_true=yb_train),
                        "BA (clean attribute, first identity)": M.attribute_bias_amplification(
                            ident["test"][IDS[0]], Y_TEST[:, BD], pred,
                            train_identity=ident["train"][IDS[0]], train_true=yb_train)})
bd_table = pd.DataFrame(bd_rows).groupby("sparsity").mean()
glue("bd_dense", float(bd_table.loc[0.0, "BA (backdoored)"]))
print(f"backdoor on {cfg['backdoor']!r} ({NOTE}):")
bd_table.round(3)

# %% [markdown]
# The backdoored dense model has a BA of {glue:text}`bd_dense:.3f` with respect to the trigger:
# it predicts the attribute more often on stamped test images than the (balanced) truth warrants.
#
# ## Mitigation
#
# **Compression-identified exemplars (CIEs)** are the test examples whose modal prediction over
# the dense runs differs from the modal prediction over the sparse runs. The paper finds them
# strongly enriched for examples the *dense* model is already uncertain about, which motivates
# overriding the most uncertain examples. We compare the uncertainty rate of the dense model on
# the CIEs with its rate on all test examples:

# %%
dense_runs = np.stack([(r["test"][0.0] > 0).astype(int) for r in runs])
dense_prob = np.mean([sigmoid(r["test"][0.0]) for r in runs], axis=0)  # the dense ensemble
unc_all = M.uncertainty_rate(dense_prob)
cie_rows = []
for s in SPARSITIES:
    sparse_runs = np.stack([(r["test"][s] > 0).astype(int) for r in runs])
    cie = P.compression_identified_exemplars(dense_runs, sparse_runs)
    cie_rows.append({"sparsity": s, "share of CIEs": float(cie.mean()),
                     "dense uncertainty on CIEs": M.uncertainty_rate(dense_prob[cie]) if cie.any() else np.nan,
                     "dense uncertainty on all": unc_all})
cie_table = pd.DataFrame(cie_rows).set_index("sparsity")
cie_table.round(3)

# %% [markdown]
# **Threshold calibration** sets, per attribute, the threshold at the $k$-th largest validation
# logit ($k$ = number of validation positives) so the model predicts each attribute about as often
# as it occurs; the identity plays no part. **Overrides** replace the sparse model's predictions
# on the $x\%$ of test examples with the most uncertain *dense* output ($|p-0.5|$ smallest) by
# the true label (a human reviewer) or by the dense model's label. We report the mean BA over
# (attribute, identity) pairs that are measurable, per sparsity and averaged over seeds.

# %%
mit_rows = []
for r in runs:
    dense_p = sigmoid(r["test"][0.0])
    dense_pred = (r["test"][0.0] > 0).astype(int)
    for s in [0.0] + SPARSITIES:
        z = r["test"][s]
        base_pred = (z > 0).astype(int)
        cal_pred = P.apply_thresholds(z, P.calibrate_thresholds(r["val"][s], y_val.numpy()))
        row = {"sparsity": s, "default": np.nanmean(ba_table(base_pred).to_numpy()),
               "calibrated": np.nanmean(ba_table(cal_pred).to_numpy())}
        for frac in (0.05, 0.10):
            human, _ = P.override_uncertain(base_pred, dense_p, Y_TEST, frac)
            dense_lab, _ = P.override_uncertain(base_pred, dense_p, dense_pred, frac)
            row[f"human {frac:.0%}"] = np.nanmean(ba_table(human).to_numpy())
            row[f"dense label {frac:.0%}"] = np.nanmean(ba_table(dense_lab).to_numpy())
        mit_rows.append(row)
mitigation = pd.DataFrame(mit_rows).groupby("sparsity").mean()

fig, ax = plt.subplots(figsize=(7.5, 3.4))
for col, style in zip(mitigation.columns, ["-o", "--s", "-^", ":^", "-v", ":v"]):
    ax.plot(xs, mitigation[col].to_numpy(), style, label=col)
ax.axhline(0, color="k", lw=0.8)
ax.set(ylabel="mean BA", title=f"Mean BA before and after mitigation\n({NOTE})")
ax.legend(fontsize=8, ncol=2)
plt.show()
reduction = 1 - mitigation.loc[0.995, ["human 5%", "human 10%"]] / mitigation.loc[0.995, "default"]
glue("red5", 100 * float(reduction["human 5%"]))
glue("red10", 100 * float(reduction["human 10%"]))
glue("cal_995", float(mitigation.loc[0.995, "calibrated"]))
glue("def_995", float(mitigation.loc[0.995, "default"]))
mitigation.round(4)

# %% [markdown]
# For our 99.5% model, human overrides of the 5% most uncertain examples change the mean BA by
# {glue:text}`red5:.0f`% (a positive number is a reduction) and of the 10% most uncertain by
# {glue:text}`red10:.0f`%; threshold calibration moves it from {glue:text}`def_995:.3f` to
# {glue:text}`cal_995:.3f`. With a mean BA close to zero, relative changes are noisy: look at
# the curves, not just the percentages.
#
# ## Compare with the paper
#
# The paper's numbers below are for ResNet18 on CelebA (40 attributes, joint training, GMP-RI,
# 5 seeds); ours are from the profile named in each table. {cite:t}`iofinova2023pruned`, Table 1,
# report mean accuracy and AUC (in %) by sparsity:

# %%
paper_t1 = pd.DataFrame(
    {"paper accuracy (%)": [90.4, 90.8, 91.0, 91.3, 91.5, 91.5, 91.1],
     "paper AUC (%)": [80.5, 81.0, 81.3, 81.5, 81.5, 81.0, 79.7]},
    index=xs)
ours = by_sparsity[["accuracy", "auc"]].rename(columns={"accuracy": "our accuracy (%)", "auc": "our AUC (%)"}) * 100
ours.index = xs
compare = pd.concat([paper_t1, ours.round(1)], axis=1)
compare.index.name = f"sparsity ({NOTE})"
compare

# %%
paper_other = pd.DataFrame({
    "paper": [0.90, 0.81, 0.054, 0.013, -23.0, -35.0],
    "ours": [by_sparsity.loc[0.0, "tcb"], by_sparsity.loc[0.995, "tcb"], by_sparsity.loc[0.0, "ece"],
             by_sparsity.loc[0.995, "ece"], -100 * float(reduction["human 5%"]),
             -100 * float(reduction["human 10%"])],
}, index=["TCB, dense", "TCB, 99.5%", "ECE, dense (10 bins)", "ECE, 99.5% joint",
          "mean BA change, 5% human override at 99.5% (%)", "mean BA change, 10% human override at 99.5% (%)"])
paper_other.index.name = NOTE
paper_other.round(3)

# %% [markdown]
# The paper's findings, as it reports them: accuracy stays flat (even rises slightly) up to 99%
# sparsity and AUC only drops at 99.5% (Table 1); TCB worsens from 0.90 to 0.81; ECE *improves*
# from 0.054 to 0.013; uncertainty roughly doubles; label interrelation rises from $R^2$ 0.31 to
# 0.36; BA rises a little between 90 and 95% and more beyond; threshold calibration almost removes
# BA up to 90%; and overriding the 5% (10%) most uncertain examples of the 99.5% model with human
# labels lowers its mean BA by 23% (35%) {cite:p}`iofinova2023pruned`. The same table also lists
# CPU throughput with a sparsity-aware engine (DeepSparse), 130 items/s dense against 403 at
# 99.5%; `benchmarks/bench_pruning.py` shows that stock PyTorch, which multiplies masked dense
# tensors, gains nothing from unstructured sparsity.
#
# Our quick profile uses synthetic faces, a network some 500 times smaller and a few epochs, so
# only the *direction* of the effects can be compared, and with three seeds only large effects
# are trustworthy. The full profile runs the paper's setting (GMP-RI, ResNet18, CelebA).

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
# A fractional `amount` is applied to the *surviving* weights, so 0.99 of the remaining 10% are
# removed: $0.9 + 0.1\cdot 0.99 = 0.999$. `global_magnitude_prune` passes the absolute number of
# extra weights to remove, so it lands on 0.99.
# :::
#
# :::{exercise}
# :label: ex-single-joint
# Increase `seeds` to 5 and `dense_epochs` to 8 in the quick settings. Does the single-attribute
# model now amplify bias more than the joint one for `earrings` w.r.t. `angular`, as the paper
# finds for CelebA? Report the spread across seeds.
# :::
#
# :::{solution} ex-single-joint
# :class: dropdown
# Compute the BA column per seed (`pd.DataFrame(single_stats)`), not just the mean. The paper's
# explanation — extra heads force a richer shared representation — predicts a higher BA for the
# single model; whether the gap exceeds the seed-to-seed spread at this data size is the point
# of the exercise.
# :::
#
# :::{exercise}
# :label: ex-override-random
# Replace the uncertainty ranking in the override by a random choice of 5% and 10% of the test
# examples. How much of the BA reduction remains? What does this say about where biased
# predictions of sparse models live?
# :::
#
# :::{solution} ex-override-random
# :class: dropdown
# Build a random boolean mask with the same number of entries per column and apply
# `np.where(mask, Y_TEST, pred)`. Random overrides fix only about 5–10% of the errors, spread
# evenly, and reduce BA far less: the uncertain examples are where the sparse model's errors (and
# the CIEs) concentrate.
# :::
#
# :::{exercise}
# :label: ex-calibration-k
# `calibrate_thresholds` takes the $k$-th largest validation logit and predicts `logit > threshold`.
# How many validation examples are predicted positive? What happens for an attribute with no
# validation positives?
# :::
#
# :::{solution} ex-calibration-k
# :class: dropdown
# $k-1$ when logits are distinct (the $k$-th sits on the threshold), fewer with ties at the
# threshold. With $k=0$ the threshold is the largest validation logit: no validation example is
# positive, but a test example with a higher logit still is.
# :::

# %% [markdown]
# ## Summary
#
# - Global magnitude pruning with `torch.nn.utils.prune` ranks all conv and linear weights together;
#   the cubic schedule and one snapshotting run give models at every sparsity.
# - Accuracy hides what sparsity does: the systematic-bias metrics (TCB, uncertainty, ECE,
#   interrelation) move first, and BA follows.
# - A backdoor makes a planted shortcut measurable with BA.
# - Threshold calibration and overriding the dense model's most uncertain examples are cheap
#   countermeasures that need only the dense model (and, for overrides, a label source).
# - Unstructured sparsity needs a sparse inference engine to be faster; stock PyTorch is not.
#
# See the bibliography for {cite:t}`iofinova2023pruned` and the work it builds on
# {cite:p}`hooker2020characterising,guo2017calibration`.

# %%
glue("chapter_seconds", time.perf_counter() - T0)
print(f"chapter compute time: {time.perf_counter() - T0:.0f} s")
