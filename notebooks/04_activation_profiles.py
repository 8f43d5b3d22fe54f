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
# # 4. Neuron Activation Profiles and topographic maps
#
# A linear probe (Chapter 3) answers *whether* a layer separates groups of people. This chapter
# asks *how* the layer's activations differ between the groups, and shows it as a picture: one
# small "brain map" per group, in which every feature map (channel) of a layer has a fixed place
# and a colour that says how much more or less than usual it fires for that group. We follow
# Krug & Stober {cite:p}`krug2025intersectional` (Sec. 4.2 and 5.4): Neuron Activation Profiles
# (NAPs) of the 126 intersections of three variables, a UMAP layout relaxed by a particle
# simulation, and a table of maps laid out like the table of group counts.
#
# ```{admonition} Learning objectives
# :class: tip
# After this chapter you can
# 1. compute a NAP (group mean minus the expected activation) by hand and in batches, for
#    intersectional groups and for unions of groups;
# 2. explain how a topographic layout is built (UMAP of each channel's profile, then the
#    attraction/repulsion relaxation) and write its update step;
# 3. choose a layer with a cheap separability criterion and say what it misses;
# 4. read a table of topographic maps with the paper's guide: which groups look alike, which
#    variable dominates, and what a shared colour scale hides or shows;
# 5. tell what a map of synthetic data can and cannot say about real people.
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
from scipy.optimize import brentq

import fairlib
from fairlib import naps as N
from fairlib import sweep
from fairlib.naps import neuron_activation_profiles, union_profiles
from fairlib.notebook import glue
from fairlib.topomap import color_limit, force, plot_map_grid, plot_map_grids, relax, render_maps, topographic_layout

# The settings of both profiles live in fairlib.naps.SETTINGS. quick: SynthFaces (FairFace's
# 126-group schema, 32 x 32) and Chapter 3's small CNN trained on an unrelated task (accessories);
# full: FairFace's training split capped at 640 per group and torchvision's ImageNet ResNet-50 at
# 224 x 224 (fetch the data first with `python -m data_scripts.fetch fairface`).
cfg = fairlib.select(N.SETTINGS, PROFILE)
rng = fairlib.seed_everything(SEED)
device = fairlib.get_device()
NOTE = fairlib.profile_note(PROFILE)
print(f"profile={PROFILE}, device={device}: {cfg}")


# %% [markdown]
# **Compute and data.** The next cell prints this profile's compute plan (`python -m fairlib.sweep
# plan` gives the detail). The full and paper profiles read fairface from the data root; the next cell
# fetches what is missing (it prints the download size) and does nothing in the quick profile. On
# Colab, `use_drive()` first puts the data root, the image cache and the sweep's finished runs on
# Google Drive (`FAIRLIB_DATA`, `FAIRLIB_CACHE`, `FAIRLIB_RESULTS`): after a disconnect, a new
# session reuses the data and resumes the sweep where it stopped.

# %%
from fairlib.plan import plan

print(plan("04_activation_profiles", PROFILE).summary())  # runs, T4-hours and peak memory, computed from the code
if PROFILE != "quick":
    from data_scripts.fetch import ensure
    from fairlib.notebook import use_drive

    use_drive()
    ensure(["fairface"])

# %% [markdown]
# ## The idea
#
# Feed many faces through a network and look at one layer. Each face gives a vector of
# activations; each **group** of faces (say, *palette P3, age 20-29, style A*) gives a cloud of
# such vectors. If the layer "knows" nothing about the groups, all clouds sit in the same place.
# If it encodes them, the clouds' centres move apart. A **Neuron Activation Profile** is that
# centre, measured relative to the centre of everything: it tells, channel by channel, what is
# special about the group.
#
# A layer has tens to thousands of channels, far too many to read as numbers. The paper arranges
# them on a plane so that channels that respond alike to the groups lie close together, then
# colours the plane by each group's NAP: red where the group activates a region more than
# average, blue where less. Two groups whose maps look alike are hard for the layer to tell
# apart; a variable along which the maps change is one the layer encodes.
#
# Krug & Stober ask this of networks trained on ImageNet, i.e. for **object recognition**, and
# shown FairFace portraits they were never trained on {cite:p}`krug2025intersectional`. The
# question is whether a network trained for *something else* still arranges people by race,
# age and gender. The quick profile asks the same question of a small network trained to spot
# accessories (glasses, hats, ...) on synthetic faces and then shown synthetic faces labelled
# with three other variables; a network with random weights is the control.

# %% [markdown]
# ## The method
#
# **NAPs.** Let $A_l(x)$ be the activations of layer $l$ for input $x$, and $\mathbf G$ a set of
# disjoint groups (here the 126 intersections). A group's NAP is its mean activation minus a
# reference, the *expected activation*:
#
# $$\overline{A_l(G)} = \frac{1}{|G|}\sum_{x\in G} A_l(x), \qquad
# NAP_l(G) = \overline{A_l(G)} - \mathbb E(\overline{A_l}).$$
#
# The paper writes $\mathbb E$ as the mean over all instances of all groups, i.e. the
# group-size-weighted mean of the group means,
# $\mathbb E_{\text{overall}} = \sum_{G}\frac{|G|}{\sum_{H}|H|}\,\overline{A_l(G)}$; the authors'
# code (`iNNtrospect`, `src/naps.py`) computes the unweighted mean of the group means,
# $\mathbb E_{\text{group}} = \frac{1}{|\mathbf G|}\sum_{G}\overline{A_l(G)}$, every group counting once.
# The two agree when the groups are equally large and differ otherwise: with $\mathbb E_{\text{group}}$
# a large group does not pull the reference towards itself, so a small group's NAP is not
# dwarfed by it. This is also why the paper normalises a **union** of groups (all groups with
# age 20-29, say) with the *same* $\mathbb E$ of the 126 intersections (Sec. 5.4): a union's own
# size-weighted mean would be a different reference. We follow the code
# (`neuron_activation_profiles(..., expected="group_mean")`, the default; `expected="overall"`
# gives the paper's formula), so the unweighted NAPs sum to zero, and the $\eta^2$ below, a
# variance decomposition, is always taken around the overall mean. For maps we average each
# channel over its spatial positions first, so a NAP is one number per channel.
# `fairlib.naps.StreamingNAPs` accumulates per-group sums batch by batch, so memory stays at
# (groups × channels) however many images pass through.
#
# A tiny example by hand: one channel, groups *a* = {1, 3} and *b* = {10}, so the group means are
# 2 and 10. The authors' reference is $\mathbb E_{\text{group}} = 6$, giving $NAP(a) = -4$ and
# $NAP(b) = 4$; the paper's formula gives $\mathbb E_{\text{overall}} = 14/3$, $NAP(a) = 2 - 14/3$ and
# $NAP(b) = 10 - 14/3$:

# %%
toy = np.array([[1.0], [10.0], [3.0]])
toy_group, _, toy_labels = neuron_activation_profiles(toy, ["a", "b", "a"])  # expected="group_mean"
toy_overall = neuron_activation_profiles(toy, ["a", "b", "a"], expected="overall")[0]
pd.DataFrame({"group": toy_labels, "NAP (authors' code)": toy_group[:, 0], "by hand": [-4.0, 4.0],
              "NAP (paper's formula)": toy_overall[:, 0], "by hand ": [2 - 14 / 3, 10 - 14 / 3]})

# %% [markdown]
# **Layout.** Each channel $k$ is described by its *profile vector* across the groups,
# $v_k = (NAP_l(G_1)_k, \dots, NAP_l(G_{126})_k)$, where each $NAP_l(G)_k$ is the channel's whole
# $H\times W$ map, so $v_k$ has $126\cdot H\cdot W$ values (the authors' code; the spatially
# averaged profile, 126 values, is the cheaper alternative: pass those to `topographic_layout`).
# UMAP maps these vectors to 2-D, and the
# coordinates are scaled to $[0, 1]$, each axis separately. UMAP leaves clumps and gaps, so the channels are then
# treated as particles that push each other apart at short range and pull together at long
# range, with
#
# $$f(d) = \underbrace{1.5\,(d+1)^{-3}}_{\text{attraction}} - \underbrace{15\,e^{-d/2}}_{\text{repulsion}}$$
#
# ($f<0$ pushes apart). At step $s$ of $n = 1000$, with $c_s = \tfrac12(\tanh x_s + 1)$ and
# $x_s$ running evenly from $-3$ to $6$ (a schedule that starts gently and ends at full
# strength), every particle moves by
#
# $$p_i \leftarrow p_i + \frac{1}{N}\sum_{j=1}^{N} (p_j - p_i)\,\frac{c_s\, f(d_{ij})}{2},
# \qquad d_{ij} = \max(\lVert p_j - p_i\rVert, 0.01),$$
#
# and the result is scaled to $[0, 1]$ again (`fairlib.topomap.relax`). The paper's text averages
# over the $N-1$ other particles; its public implementation, which we follow, averages over all
# $N$ (the $j=i$ term is zero), a constant factor $(N-1)/N$.
#
# **Rendering.** For each group, each channel's NAP value is placed at the channel's position and
# linearly interpolated onto a 100 × 100 grid (`render_maps`). All maps of a layer share one
# colour scale, symmetric around 0 (blue: below the expected activation, white: at it, red: above),
# so equal colours mean equal values in every map. Its end is the larger magnitude of the 0.5th
# and 99.5th percentile of all NAP values (`color_limit(..., "percentile")`), which keeps a few
# outliers from washing out the rest; the plain alternative is the largest absolute value
# (`"max"`).
#
# What the force does at each distance:

# %%
d_zero = brentq(force, 1.0, 100.0)
glue("force_zero", d_zero)
# what the steps do to a layout that starts inside the unit square: 256 particles, uniform start,
# the chapter's number of steps, without the final rescaling
demo = relax(np.random.default_rng(SEED).random((256, 2)), n_steps=cfg["relax_steps"], rescale=False)
pair_d = np.linalg.norm(demo[:, None] - demo[None], axis=-1)[np.triu_indices(len(demo), 1)]
glue("demo_steps", cfg["relax_steps"])
glue("demo_span", float((demo.max(axis=0) - demo.min(axis=0)).max()))
glue("demo_beyond", float(np.mean(pair_d > d_zero)))
d = np.linspace(0, 40, 800)
fig, ax = plt.subplots(figsize=(6, 2.8))
ax.plot(d, force(d), color="k")
ax.axhline(0, color="0.6", lw=0.8)
ax.axvspan(0, np.sqrt(2), color="C0", alpha=0.2, label="inside the unit square")
ax.axvline(d_zero, color="C3", ls="--", lw=0.8, label="f = 0")
ax.set_yscale("symlog", linthresh=1e-6)
ax.set(xlabel="distance d", ylabel="f(d) (symmetric log scale)",
       title="Pairwise force of the layout (f < 0: repulsion)")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# The force changes sign only once, far away, at $d \approx$ {glue:text}`force_zero:.1f`: closer
# pairs repel, the more strongly the closer they are, farther pairs attract weakly. A layout that
# starts inside the unit square (distances up to $\sqrt 2$, shaded) therefore first spreads out,
# and far beyond it: 256 particles started uniformly in the square span
# {glue:text}`demo_span:.0f` units after {glue:text}`demo_steps` steps, and
# {glue:text}`demo_beyond:.0%` of their pairs end farther apart than the force's zero, where the
# weak attraction holds them. The final rescaling (each axis to $[0, 1]$ separately, as the
# authors' code) brings the layout back into the square.

# %% [markdown]
# ## Data and networks
#
# The paper uses FairFace's training split with race (7) × age (9) × gender (2) = 126
# intersectional groups, capped at 640 images per group. The quick profile renders SynthFaces
# with the same schema, palette (7) × age (9) × style (2), whose default group sizes copy
# FairFace's age skew and make three intersections rare, and caps them in proportion
# (80 of 10,000 images as 640 of FairFace's 86,744). SynthFaces' variables are neutral visual
# factors, not properties of people.

# %%
VARS = cfg["variables"]
ns = N.nap_sample(cfg["dataset"], cfg["data_options"], VARS, cap=cfg["cap"], seed=SEED)
data, table, keep, groups_kept = ns.data, ns.table, ns.keep, ns.groups
capped = table[VARS].copy()
capped["count"] = np.bincount(groups_kept, minlength=len(table))
glue("n_images", len(keep))
glue("n_groups", int((capped["count"] > 0).sum()))
glue("min_group", int(capped["count"].min()))
glue("max_group", int(capped["count"].max()))
capped.pivot_table(index=VARS[0], columns=VARS[2:0:-1], values="count", aggfunc="sum", observed=False)

# %% [markdown]
# The capped set has {glue:text}`n_images:,.0f` images in {glue:text}`n_groups:.0f` groups of
# {glue:text}`min_group:.0f` to {glue:text}`max_group:.0f` images. The maps below use this
# table's arrangement: rows are the first variable, columns the third then the second.
#
# **The networks.** The paper's networks were trained on ImageNet, for objects, and never saw
# a label about people. The quick profile's network must likewise be trained on a task that has
# nothing to do with palette, age or style. We use the same networks as Chapter 3:
# `fairlib.probes.build_network("small_cnn")` trains the course's small CNN
# (`fairlib.probes.train_unrelated_cnn`) to detect twelve accessories and expressions (glasses,
# hat, smile, beard, ...) on SynthFaces' multi-attribute faces, rendered with no link between
# these attributes and anything else. Those faces show every palette, a range of ages and both
# hair lengths, drawn at random and never labelled: the network sees the variation that defines
# our groups, but nothing in its loss rewards encoding it. Whatever it encodes about the groups
# is a side effect, as for an ImageNet model shown FairFace. The **control** is the same
# architecture with its random initial weights (the trained network's starting point), never
# trained: it shows what the architecture alone passes on from the pixels. The full profile
# loads torchvision's ImageNet ResNet-50 and a randomly initialised ResNet-50 (`"vgg16"` and
# `"inception_v3"` work the same way, with their layer presets).

# %%
# one run of the sweep per network (trained, random): stream every analysed layer's NAPs, keep eta^2
runs = sweep.run(N.run_layer_shares, N.layer_shares_grid(PROFILE),
                 store=sweep.default_store("04_activation_profiles", "layer_shares"))
task_auc = runs.loc[runs.trained, "task_auc"].iloc[0]  # NaN for ImageNet weights: their task is ImageNet
glue("task_note", f"it learned its own task, with a held-out ROC AUC averaging {task_auc:.2f} over the twelve "
     "attributes (0.5 is chance)" if np.isfinite(task_auc) else
     "its task is ImageNet classification (torchvision's weights), which this chapter does not evaluate again")
LAYERS = N.analysed_layers(cfg["network"])  # the final average pool is the last block's spatial mean again
print("layers:", list(LAYERS))

# %% [markdown]
# The trained network: {glue:text}`task_note`.
#
# ## Streaming NAPs over all layers
#
# One pass over the capped faces, in batches: every requested layer of both networks is reduced
# to per-channel spatial means inside its forward hook, and each layer's `StreamingNAPs` adds the
# batch to its per-group sums. Nothing of size (images × channels) is kept, which is what lets
# the full profile run over FairFace at 224 × 224 on one GPU.

# %%
chance = (len(table) - 1) / (len(keep) - 1)
shares = pd.concat([pd.DataFrame({"network": "trained" if r.trained else "random", "layer": r.layer,
                                  "channels": r.channels, f"eta2 (all {len(table)} groups)": r.eta2_all,
                                  **{f"eta2 ({v})": r[f"eta2_{v}"] for v in VARS}})
                    for _, r in runs.iterrows()], ignore_index=True)
candidates = shares[(shares.network == "trained") & (shares.channels >= cfg["min_channels"])]
LAYER = candidates.loc[candidates[f"eta2 (all {len(table)} groups)"].idxmax(), "layer"]
print("chosen layer:", LAYER)
# the maps need the chosen layer's NAPs themselves: one more pass, through that layer only
nets = {m: N.shared_network(cfg["network"], trained=m == "trained", seed=SEED, task=cfg["task"], device=device)
        for m in ("trained", "random")}  # the sweep's own networks, not built (or trained) again
naps = {m: N.stream_naps(net.model, torch.utils.data.Subset(data, keep), groups_kept, {LAYER: LAYERS[LAYER]},
                         transform=net.transform, batch_size=cfg["batch_size"], num_workers=cfg["num_workers"],
                         device=device) for m, net in nets.items()}
# the layout, as the authors' code, uses each channel's NAPs at every spatial position (groups x H x W
# values per channel); the maps show each channel's spatial mean
naps_full = {m: N.stream_naps(net.model, torch.utils.data.Subset(data, keep), groups_kept,
                              {LAYER: LAYERS[LAYER]}, transform=net.transform, batch_size=cfg["batch_size"],
                              num_workers=cfg["num_workers"], device=device, spatial="full")
             for m, net in nets.items()}

# %% [markdown]
# ## Which layer?
#
# The paper draws maps for the layer in which linear probes separate the 126 groups best
# (Chapter 3). Training a probe per layer is the expensive way to find it. A cheap criterion
# comes for free from the NAPs: the **between-group share of variance**
#
# $$\eta^2_l = \frac{\sum_G |G|\,\lVert NAP_l(G)\rVert^2}{\sum_x \lVert A_l(x) - \mathbb E(\overline{A_l})\rVert^2}
# \in [0, 1]$$
#
# (`fairlib.naps.variance_share`): the part of the layer's spread that lies *between* the group
# centres rather than within the groups. A linear classifier can only separate groups whose
# centres differ relative to their spread, so a layer with a larger $\eta^2$ is, roughly, one in
# which a probe has more to work with. It is a proxy, not the probe: it ignores correlations
# between channels (a probe can use a direction in which groups differ little but vary even
# less), it sees spatial means rather than 8 × 8 maps, and with $g$ groups and $N$ images it is
# about $(g-1)/(N-1)$ even when nothing is encoded (the dotted line). We pick the layer with the
# largest $\eta^2$ among layers with at least 16 channels (fewer give no map worth drawing).

# %%
glue("eta_chance", chance)
best = shares.set_index(["network", "layer"])
glue("eta_trained", best.loc[("trained", LAYER), f"eta2 (all {len(table)} groups)"])
glue("eta_random", best.loc[("random", LAYER), f"eta2 (all {len(table)} groups)"])
for i, v in enumerate(VARS):  # var0..var2: palette, age, style (full: race, age, gender)
    glue(f"eta_var{i}", best.loc[("trained", LAYER), f"eta2 ({v})"])
    glue(f"eta_var{i}_random", best.loc[("random", LAYER), f"eta2 ({v})"])
shares.round(3)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
for ax, m in zip(axes, ["trained", "random"]):
    part = shares[shares.network == m]
    for col, style in [(f"eta2 (all {len(table)} groups)", "-o")] + [(f"eta2 ({v})", "--.") for v in VARS]:
        ax.plot(range(len(part)), part[col], style, label=col.replace("eta2 ", "").strip("()"))
    ax.axhline(chance, color="0.5", ls=":", label="no-effect level (g-1)/(N-1)")
    ax.axvline(list(LAYERS).index(LAYER), color="C3", lw=0.8)
    ax.set_xticks(range(len(LAYERS)), list(LAYERS), rotation=30, ha="right", fontsize=8)
    ax.set_title(f"{m} network", fontsize=9)
axes[0].set_ylabel(r"between-group share $\eta^2$")
axes[0].legend(fontsize=7)
fig.suptitle(f"Separability per layer (red line: chosen layer); unions of one variable dashed\n{NOTE}", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# In the trained network the groups account for {glue:text}`eta_trained:.3f` of the variance in
# the chosen layer, against {glue:text}`eta_random:.3f` in the same layer of the random
# network and about {glue:text}`eta_chance:.3f` expected from noise alone. The per-variable
# columns split this up: each is the share of the unions that share one variable. Compare them
# before looking at any map: they predict which variable the maps will change along.
#
# ## Topographic maps of all intersectional groups
#
# The layout is computed from the 126 intersectional NAPs of the chosen layer (UMAP, then
# {glue:text}`demo_steps` relaxation steps); every map below uses it, one figure per
# {glue:text}`split_var` so that the maps stay readable. A map of a group with fewer than 5 images carries
# its count ("n=3") in a grey corner: it is mostly noise.

# %%
profiles, expected, labels = naps["trained"][LAYER].result()
group_table = table.iloc[labels][VARS].reset_index(drop=True)  # rows present, in NAP order
group_table["count"] = naps["trained"][LAYER].means()[1]  # images per group in the capped sample
positions = topographic_layout(naps_full["trained"][LAYER].result()[0], n_steps=cfg["relax_steps"], seed=SEED)
maps = render_maps(profiles, positions)
lim = color_limit(profiles, "percentile")
lim_max = color_limit(profiles, "max")
glue("lim_pct", lim)
glue("lim_max", lim_max)
glue("lim_ratio", lim_max / lim)
# one figure per level of the two-level variable: 126 maps in one grid are too small to read
glue("split_var", VARS[2])
figs = plot_map_grids(maps, group_table, split=VARS[2], rows=VARS[0], cols=VARS[1], vmax=lim, cell=1.0,
                      title=f"NAPs of all {len(labels)} groups, trained network, layer {LAYER} "
                            f"(scale ±{lim:.2g}, 0.5/99.5 percentile)\n{NOTE}")
plt.show()  # shows every figure of the list

# %% [markdown]
# Where do the channels sit? Each dot is one channel; the colour is its profile's variance over
# the groups. The interpolated maps are only defined inside the dots' hull (white outside).

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(3.4, 3.2))
sc = ax.scatter(*positions.T, c=profiles.var(axis=0), cmap="viridis", s=18)
fig.colorbar(sc, ax=ax, label="variance of the channel's NAP over groups")
ax.set(xticks=[], yticks=[], aspect="equal", title=f"Channel layout, {LAYER}\n{NOTE}")
ax.title.set_fontsize(8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Unions: one variable at a time
#
# Unions average over the variables they leave out, so each map is steadier than an intersectional
# one (more images) and isolates one variable or one pair. They are normalised with the same expected
# activation and drawn on the same colour scale as the intersectional maps, so a union that looks
# paler than its members is paler: averaging over the other variables cancels part of each
# group's profile.

# %%
unions = {}
# every single variable and every pair with the first (as the paper: race, age, gender, race x age,
# race x gender), plus the third within the second
for by in [[VARS[0]], [VARS[1]], [VARS[2]], [VARS[0], VARS[1]], [VARS[0], VARS[2]], [VARS[2], VARS[1]]]:
    u_prof, u_table = union_profiles(naps["trained"][LAYER], table=table, by=by)
    unions[" x ".join(by)] = (u_prof, u_table)
    fig = plot_map_grid(render_maps(u_prof, positions), u_table, rows=by[:-1], cols=by[-1], vmax=lim,
                        cell=1.0, title=f"Unions by {' x '.join(by)}, layer {LAYER} (same scale)\n{NOTE}")
    plt.show()
# all unions in one table: which union, its categories, its images and its NAP's size
combined = pd.concat([t.assign(union=name, **{"NAP norm": np.linalg.norm(pr.reshape(len(pr), -1), axis=1)})
                      for name, (pr, t) in unions.items()], ignore_index=True)
combined = combined[["union", *VARS, "count", "NAP norm"]]
combined.style.format(precision=3, na_rep="all").hide(axis="index").set_caption(
    f"Every union map of layer {LAYER}: its categories ('all': averaged over), images and NAP norm ({NOTE})")

# %% [markdown]
# ## Percentile or maximum: the colour limit
#
# The percentile limit is {glue:text}`lim_pct:.3g`; the largest absolute NAP value is
# {glue:text}`lim_max:.3g`, {glue:text}`lim_ratio:.2f` times as large. With the maximum as the
# end of the scale, every colour of the same maps (here the unions by the second variable) is that
# many times paler: contrast goes to the few extreme values. The percentile limit saturates those few (they are
# drawn in the darkest colour though they lie beyond it), which is the trade the paper makes to
# see the rest.

# %%
u_prof, u_table = unions[VARS[1]]
u_maps = render_maps(u_prof, positions)
for name, vmax in (("0.5/99.5 percentile", lim), ("absolute maximum", lim_max)):
    fig = plot_map_grid(u_maps, u_table, rows=[], cols=VARS[1], vmax=vmax, cell=1.0,
                        title=f"Unions by {VARS[1]}, scale end = {name} (±{vmax:.2g})\n{NOTE}")
    plt.show()
glue("saturated", float(np.mean(np.abs(profiles) > lim)))

# %% [markdown]
# Under the percentile limit {glue:text}`saturated:.3%` of the intersectional NAP values lie
# beyond the scale's end.
#
# ## The random network, for comparison
#
# The same pipeline on the untrained network, with its own layout and its own colour limit.
# Its activations are on a different overall scale (its colour limit is
# {glue:text}`random_lim:.3g` against {glue:text}`lim_pct:.3g`), so compare the *patterns*
# (which categories look alike) with the trained network's, not the colours' strength; the
# scale-free $\eta^2$ above is the number to compare.

# %%
r_profiles = naps["random"][LAYER].result()[0]
r_positions = topographic_layout(naps_full["random"][LAYER].result()[0], n_steps=cfg["relax_steps"], seed=SEED)
r_lim = color_limit(r_profiles, "percentile")
glue("random_lim", r_lim)
r_prof_u, r_table_u = union_profiles(naps["random"][LAYER], table=table, by=[VARS[2], VARS[1]])
fig = plot_map_grid(render_maps(r_prof_u, r_positions), r_table_u, rows=VARS[2], cols=VARS[1], vmax=r_lim,
                    cell=1.0, title=f"Random network, unions by {VARS[2]} x {VARS[1]}, layer {LAYER} "
                                    f"(scale ±{r_lim:.2g})\n{NOTE}")
plt.show()

# %% [markdown]
# ## The paper's layers (full profile)
#
# Besides the layer our $\eta^2$ criterion picks, the full profile draws the layers the paper
# shows, for all three of its ImageNet networks: VGG16 `block4_pool`, ResNet-50
# `conv5_block1_out` and InceptionV3 `mixed7` (`fairlib.naps.PAPER_LAYERS`). Each network passes
# over the same capped faces once; its full-resolution NAPs give the layout, their spatial means
# the maps. The quick profile's small CNN has none of these layers, so this section is empty there.

# %%
if PROFILE != "quick":
    from fairlib.activations import layer_preset

    for network, layer in N.PAPER_LAYERS.items():
        net = N.shared_network(network, trained=True, seed=SEED, device=device)
        full = N.stream_naps(net.model, torch.utils.data.Subset(data, keep), groups_kept,
                             {layer: layer_preset(network)[layer]}, transform=net.transform,
                             batch_size=cfg["batch_size"], num_workers=cfg["num_workers"], device=device,
                             spatial="full")[layer]
        prof_full, _, present = full.result()
        prof = prof_full.mean(axis=tuple(range(2, prof_full.ndim)))  # each channel's spatial mean
        pos = topographic_layout(prof_full, n_steps=cfg["relax_steps"], seed=SEED)
        tab = table.iloc[present][VARS].reset_index(drop=True)
        tab["count"] = full.means()[1]
        vmax = color_limit(prof, "percentile")
        figs = plot_map_grids(render_maps(prof, pos), tab, split=VARS[2], rows=VARS[0], cols=VARS[1],
                              vmax=vmax, cell=1.0,
                              title=f"{network}, the paper's layer {layer} (scale ±{vmax:.2g})\n{NOTE}")
        plt.show()
else:
    print("quick profile: the paper's layers belong to VGG16, ResNet-50 and InceptionV3 (full profile only)")

# %% [markdown]
# ## How to read the maps
#
# The paper's guide (Sec. 5.4 of {cite:p}`krug2025intersectional`, paraphrased) compares maps,
# never reads one alone:
#
# - **Alike maps, hard to tell apart.** If every category of a variable gives about the same
#   pattern, the layer hardly distinguishes them: little bias along that variable.
# - **Some alike, others different.** If a subset of categories shares a pattern that the rest do
#   not, the network is likely to confuse the members of the subset with each other: categories
#   that are really distinct get merged.
# - **All different.** If every category has its own pattern, the groups are easy to tell apart.
#   That is a bias in the sense of encoded group information, but it also means no group's
#   treatment is simply copied from another's.
# - Whether any of this is harmful depends on the task: a loan decision should not be able to
#   tell the groups apart, a medical one may need to.
#
# To check a visual reading, compare NAP vectors directly. Below, the cosine similarity between
# the NAPs of the second variable's unions: a band along the diagonal means neighbouring
# categories look alike and the pattern changes gradually. Cosine ignores size, so a union whose
# NAP is nearly zero (a category close to the typical image) can point in any direction.

# %%
u_prof, u_table = unions[VARS[1]]
unit = u_prof / np.linalg.norm(u_prof, axis=1, keepdims=True)
cos = unit @ unit.T
names = u_table[VARS[1]].astype(str).tolist()

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(5.2, 4.2))
im = ax.imshow(cos, cmap="bwr", vmin=-1, vmax=1)
ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
ax.set_yticks(range(len(names)), names, fontsize=7)
fig.colorbar(im, ax=ax, label="cosine similarity of NAPs")
ax.set_title(f"{VARS[1]} unions, layer {LAYER}\n{NOTE}", fontsize=8)
fig.tight_layout()
plt.show()

# %%
glue("cos_adjacent", np.mean(np.diag(cos, 1)))
glue("cos_far", np.mean(cos[np.triu_indices(len(cos), 3)]))
glue("cos_ends", cos[0, -1])
# how one-dimensional are the 126 NAPs? share of their size-weighted spread along the first
# principal direction (a map that is one colour almost everywhere is such a direction)
w = np.sqrt(naps["trained"][LAYER].means()[1])[:, None]
sv = np.linalg.svd(w * profiles, compute_uv=False)
glue("pc1_share", sv[0] ** 2 / np.sum(sv ** 2))

# contrast of the third variable within each category of the second, e.g. |NAP(B, age) - NAP(A, age)|,
# beside the distance that sampling noise alone gives two groups of those sizes
i_prof, i_table = unions[f"{VARS[2]} x {VARS[1]}"]
contrast = N.category_contrast(i_prof, i_table, within=VARS[1], contrast=VARS[2],
                               total_variance=naps["trained"][LAYER].total_variance().sum())
ratio = contrast.loc["contrast"] / contrast.loc["noise level"]
glue("contrast_min", contrast.loc["contrast"].min())
glue("contrast_max", contrast.loc["contrast"].max())
glue("n_above_noise", int((ratio > 2).sum()))
glue("n_cats", len(ratio))
glue("reading_scope", NOTE)
for i, v in enumerate(VARS):
    glue(f"var{i}", v)
glue("small_bins", ", ".join(contrast.loc["noise level"].nlargest(2).index.astype(str)))
contrast.round(3)

# %% [markdown]
# **Our reading** ({glue:text}`reading_scope`). In the chosen layer of the trained network, the
# between-group shares by variable are {glue:text}`eta_var0:.3f` ({glue:text}`var0`),
# {glue:text}`eta_var1:.3f` ({glue:text}`var1`) and {glue:text}`eta_var2:.3f` ({glue:text}`var2`); for the random network
# {glue:text}`eta_var0_random:.3f`, {glue:text}`eta_var1_random:.3f` and
# {glue:text}`eta_var2_random:.3f`. Neighbouring age unions have a mean cosine similarity of
# {glue:text}`cos_adjacent:.2f`, ages three or more bins apart {glue:text}`cos_far:.2f`, and the
# two extreme bins (0-2 and 70+) {glue:text}`cos_ends:.2f` with each other. Red blocks along the
# diagonal of the matrix are runs of neighbouring ages that the layer treats alike and sets
# apart from the rest, the paper's "some alike, others different"; a narrow band would mean a
# gradual change. Keep the reference in mind: a NAP is measured against the mean of the 126 group
# means, each group counting once (the authors' reference), not against the mean over all images,
# which the frequent middle ages would dominate even after capping (count table); a category can
# still look "different" simply by being far from the typical group. Where maps are
# nearly one colour, the groups differ mostly in how strongly they drive the whole layer: here
# the first principal direction of the NAPs carries {glue:text}`pc1_share:.2f` of their
# size-weighted spread. The style contrast within an age ranges from
# {glue:text}`contrast_min:.3f` to {glue:text}`contrast_max:.3f` (table above), and it exceeds
# twice the sampling-noise level in {glue:text}`n_above_noise:.0f` of {glue:text}`n_cats:.0f`
# age bins. Read the two rows together: the age bins with the fewest images
# ({glue:text}`small_bins`) have the widest noise level, so part of their contrast is noise. The
# network was never told about any of these variables. (In the quick profile, SynthFaces draws
# style equally strongly at every age, so there a contrast above noise that varies with age comes
# from how the network combines style with the age cues.)
#
# ## Compare with the paper
#
# **The paper's setting and findings** {cite:p}`krug2025intersectional` (not ours): NAPs of the
# 126 race × age × gender groups of FairFace's training split (86,744 images; groups from 22 to
# 2,972 images, capped at 640), in VGG16, ResNet50 and InceptionV3 with ImageNet weights; maps
# for the layer the probes single out: VGG16 layer 4 (`block4_pool`), ResNet50 layer 15
# (`conv5_block1_out`), InceptionV3 layer 9 (`mixed7`). Its findings, paraphrased:
#
# - across all three models, age differences are the most pronounced, stronger than race and
#   gender; activations change continuously from one age bin to the next, and the youngest
#   (0-2) and oldest (70+) bins stand out most from their neighbours;
# - gender differences appear mostly for middle ages, which the authors give as 10-59 and link
#   to cues such as hair style, make-up and facial hair;
# - race differences are weaker and inconsistent across ages and genders; the models tend to
#   confuse Latino_Hispanic, White, Indian and Middle Eastern.
#
# | | the paper (FairFace, ImageNet CNNs) | this run (chosen layer) |
# |---|---|---|
# | dominant variable | age, in every model | $\eta^2$ palette {glue:text}`eta_var0:.3f`, age {glue:text}`eta_var1:.3f`, style {glue:text}`eta_var2:.3f` |
# | along age | continuous change between adjacent bins | adjacent cosine {glue:text}`cos_adjacent:.2f` vs far {glue:text}`cos_far:.2f` |
# | second variable of two levels | gender differs mostly at middle ages | style contrast {glue:text}`contrast_min:.3f` to {glue:text}`contrast_max:.3f`, above 2× noise in {glue:text}`n_above_noise:.0f` of {glue:text}`n_cats:.0f` age bins |
# | untrained control | not studied | $\eta^2$ {glue:text}`eta_random:.3f` vs trained {glue:text}`eta_trained:.3f` |
#
# The quick profile reproduces the *method*, not the findings: SynthFaces' cue strengths are set
# by the renderer, so which variable dominates says how visible we made it and how the small
# network reacts to it. What carries over is the question and the reading. The random control
# is our addition; it is a reminder that a network need not be trained for a group cue to pass
# it on, since colour and texture survive random convolutions, and that "encoded" has to be
# judged against that baseline. The full profile runs the same code on FairFace with
# ResNet-50, where the table can be filled with real numbers and compared with the paper's
# Figure 8.
#
# **Where we differ from the paper.**
#
# | | the paper {cite:p}`krug2025intersectional` (text, and the authors' code `iNNtrospect`) | this chapter | why |
# |---|---|---|---|
# | data and networks | FairFace's training split capped at 640 images per group; Keras ImageNet VGG16, ResNet50, InceptionV3 | quick: SynthFaces (capped at 80 per group) and a small CNN trained on an unrelated task; full: FairFace with the same cap, torchvision's ImageNet weights | the quick profile runs offline on a CPU; torchvision's weights are not Keras's |
# | expected activation | text: mean over all instances; code: unweighted mean of the group means | the code's (`expected="group_mean"`); the text's with `expected="overall"` | the paper's argument for normalising unions with the intersectional $\mathbb E$ (Sec. 5.4) needs the code's reading |
# | layer | the layer the probes single out (VGG16 `block4_pool`, ResNet50 `conv5_block1_out`, InceptionV3 `mixed7`) | the convolutional layer with the largest $\eta^2$ (our criterion), and in full also the paper's three layers | the quick profile's small CNN has none of the paper's layers |
# | layout input | each channel's full-resolution NAPs over all groups; features whose largest magnitude over channels is at most 0.01 dropped (code) | the same (`topographic_layout(..., min_feature=0.01)`) | — |
# | relaxation | text: the force $f(d)$, 1000 steps, mean over the $N-1$ other particles; code: 100 steps by default, mean over all $N$, a $\tanh$ schedule $c_s$, a factor ½, unnormalised directions $p_j - p_i$, distances clipped at 0.01 | {glue:text}`demo_steps` steps and the code's schedule, factor, directions and clipping | the text's number of steps; the rest is only in the code; the mean over $N$ scales every step by $(N-1)/N$ |
# | maps | one table of 126 maps; colours interpolated | one figure per level of the two-level variable (`plot_map_grids`); NAP values interpolated, then coloured | 126 maps in one figure are too small to read at a page's width; interpolating values keeps the colour scale exact |
# | small groups | every group drawn alike | maps of groups with fewer than 5 images marked with their count | a mean of so few images is mostly noise |
# | random control | not studied | the same architecture with random weights | a cue can pass through a network that learned nothing |

# %% [markdown]
# ## Exercises
#
# :::{exercise}
# :label: ex-predict-random
# Before looking at the random network's maps: which variable do you expect a network with
# *random* weights to encode most strongly in SynthFaces, and why? Check with the $\eta^2$ table.
# :::
#
# :::{solution} ex-predict-random
# :class: dropdown
# Random convolutions with ReLUs still pass on local colour and contrast statistics, so the cue
# that changes the colour of large areas (palette: the skin colour) survives best; age (greyness
# of the hair, thin wrinkle lines) and style (hair shape) are smaller or finer. Training on
# the accessory task can amplify or suppress these. Compare `eta2 (palette)` between the two networks in
# the table; the numbers depend on the seed, so argue from the table, not from memory.
# :::
#
# :::{exercise}
# :label: ex-union-reference
# The paper normalises unions with the expected activation of the 126 intersectional groups.
# Show that if $\mathbb E$ is the group-size-weighted mean (the paper's formula,
# `expected="overall"`), computing it from the unions instead gives exactly the same vector. Does
# the same hold for the unweighted mean of group means that the chapter uses by default?
# :::
#
# :::{solution} ex-union-reference
# :class: dropdown
# A union's size-weighted mean is $\sum_{G\subseteq U}|G|\overline{A(G)}/|U|$, and weighting the
# unions by $|U|$ gives $\sum_U\sum_{G\subseteq U}|G|\overline{A(G)}/\sum_G|G|$: the mean over
# all instances again. For the *unweighted* mean of group means (each group counting once, the
# chapter's default) it does not hold: 126 small and large groups averaged with equal weight
# differ from 9 age unions averaged with equal weight when group sizes are unequal. Check: for
# unions computed with `expected="overall"`,
# `np.tensordot(u_table["count"] / u_table["count"].sum(), u_prof, 1)` is zero up to rounding;
# for the chapter's unions it equals $\mathbb E_{\text{overall}} - \mathbb E_{\text{group}}$,
# which is not zero here because the capped groups are unequal.
# :::
#
# :::{exercise}
# :label: ex-small-groups
# The smallest capped groups have only a few images. Which maps in the big table do you trust
# least, and how would you show that a pattern in one of them is noise? (Hint: split a group's
# images into halves and compare the two halves' NAPs with the NAP of a neighbouring group.)
# :::
#
# :::{solution} ex-small-groups
# :class: dropdown
# The rare intersections (see the count table) give NAPs that are means of one to a handful of
# images, so their maps carry the images' own variation. If the NAPs of two random halves of a
# group differ from each other as much as the group differs from its neighbours, the map's
# pattern is not a property of the group. The paper faces the same issue with its 22-image group;
# capping large groups does not help small ones.
# :::
#
# ### Graded exercises
#
# The three exercises below are graded automatically when your instructor hands out this chapter
# as an assignment (see the instructor guide). Write your code in place of the
# `raise NotImplementedError(...)` line; in the book, the solution is folded away.
#
# :::{exercise}
# :label: ex-naps-code
# Write `my_naps(acts, groups)` without fairlib: for activations of shape `(N, C)` and `N` group
# labels, return `(profiles, expected)` with one row per group in sorted label order (shape
# `(G, C)`) and the expected activation (shape `(C,)`), with the **paper's formula** for
# $\mathbb E$ (the mean over all examples; *The method*), as
# `neuron_activation_profiles(acts, groups, expected="overall")` does. (The default, the authors'
# unweighted reference, agrees with it only when every group is equally large.)
# :::

# %% tags=["graded", "exercise:ex-naps-code", "hide-input"]
def my_naps(acts, groups):
    # BEGIN SOLUTION
    # HINT: np.unique gives the sorted labels; E is the mean over all rows of acts
    acts, groups = np.asarray(acts, dtype=float), np.asarray(groups)
    overall = acts.mean(axis=0)
    rows = [acts[groups == g].mean(axis=0) - overall for g in np.unique(groups)]
    return np.stack(rows), overall
    # END SOLUTION


# %% tags=["tests", "exercise:ex-naps-code", "remove-cell"]
_p, _e = my_naps(np.array([[1.0], [10.0], [3.0]]), ["a", "b", "a"])
assert np.allclose(_e, [14 / 3]) and np.allclose(_p[:, 0], [2 - 14 / 3, 10 - 14 / 3]), "hand example: E = 14/3"
_a = np.random.default_rng(3).normal(size=(200, 5))
_g = np.random.default_rng(4).integers(0, 6, 200)
_ref = neuron_activation_profiles(_a, _g, expected="overall")
_p, _e = my_naps(_a, _g)
assert np.allclose(_p, _ref[0]) and np.allclose(_e, _ref[1]), "must agree with fairlib.naps (expected='overall')"
assert np.allclose(np.bincount(_g) @ _p, 0), "size-weighted NAPs sum to zero"

# %% [markdown]
# :::{exercise}
# :label: ex-relax-code
# Write `relax_step(p, c)`: one step of the layout update of *The method* for positions `p` of
# shape `(N, 2)` and schedule value `c`, without `fairlib.topomap.relax` (you may use `force`).
# With `c = (tanh(-3) + 1) / 2` it must reproduce `relax(p, n_steps=1, rescale=False)`.
# :::

# %% tags=["graded", "exercise:ex-relax-code", "hide-input"]
def relax_step(p, c):
    # BEGIN SOLUTION
    # HINT: diff[i, j] = p[j] - p[i]; clip the distances at 0.01; average over j (all N)
    p = np.asarray(p, dtype=float)
    diff = p[None, :, :] - p[:, None, :]
    dist = np.maximum(np.linalg.norm(diff, axis=-1), 0.01)
    weight = c * force(dist) / 2
    return p + (diff * weight[..., None]).mean(axis=1)
    # END SOLUTION


# %% tags=["tests", "exercise:ex-relax-code", "remove-cell"]
_c = (np.tanh(-3) + 1) / 2
_two = relax_step(np.array([[0.0, 0.0], [1.0, 0.0]]), _c)
_move = _c * (1.5 / 8 - 15 * np.exp(-0.5)) / 2 / 2
assert np.allclose(_two, [[_move, 0], [1 - _move, 0]]), "two particles at distance 1 repel symmetrically"
_three = np.array([[0.0, 0.0], [0.3, 0.1], [0.2, 0.9]])
assert np.allclose(relax_step(_three, _c), relax(_three, n_steps=1, rescale=False), atol=1e-6)
assert np.allclose(relax_step(_three, 1.0) - _three, 2 * (relax_step(_three, 0.5) - _three)), "the move is linear in c"

# %% [markdown]
# :::{exercise}
# :label: ex-climit-code
# Write `percentile_limit(values)`: the end of the paper's colour scale, i.e. the 0.5th or the
# 99.5th percentile of all finite values, whichever has the larger magnitude, returned as a
# positive number.
# :::

# %% tags=["graded", "exercise:ex-climit-code", "hide-input"]
def percentile_limit(values):
    # BEGIN SOLUTION
    # HINT: drop NaNs first (rendered maps are NaN outside the hull), then np.percentile
    v = np.asarray(values, dtype=float)
    low, high = np.percentile(v[np.isfinite(v)], [0.5, 99.5])
    return float(max(abs(low), abs(high)))
    # END SOLUTION


# %% tags=["tests", "exercise:ex-climit-code", "remove-cell"]
_v = np.concatenate([np.linspace(-1, 1, 1001), [-50.0]])
assert abs(percentile_limit(_v) - color_limit(_v, "percentile")) < 1e-12
assert abs(percentile_limit(np.arange(201.0)) - 199.0) < 1e-9, "99.5th percentile of 0..200 is 199"
assert abs(percentile_limit(np.array([np.nan, -3.0, 1.0, 2.0])) - color_limit(np.array([-3.0, 1.0, 2.0]))) < 1e-12

# %% [markdown]
# ## Summary
#
# - A NAP is a group's mean activation minus an expected activation: the unweighted mean of the
#   group means (the authors' code, our default) or the mean over all instances (the paper's
#   formula, `expected="overall"`); unions of groups use the intersectional reference. `StreamingNAPs` computes them in one batched pass with
#   memory independent of the number of images.
# - A topographic map places each channel by a UMAP of its profile across groups, evens the
#   layout out with a short-range repulsion and long-range attraction, and paints each group's
#   NAP on a shared, 0-symmetric colour scale (0.5/99.5 percentile for contrast).
# - The between-group share of variance $\eta^2$ is a training-free way to pick a layer and to
#   say which variable dominates; it is a proxy for the probes of Chapter 3, and it must be read
#   against its no-effect level and against a random network.
# - Maps are read by comparison: alike maps mean groups the layer confuses, a subset of alike
#   maps means merged categories, all-different maps mean every group is distinguishable. The
#   paper finds age dominant in ImageNet CNNs shown FairFace; our synthetic run shows the method,
#   not a finding about people.
