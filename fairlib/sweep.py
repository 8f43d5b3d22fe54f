"""Experiments as data: grids of configurations, run once each, kept in a resumable store.

A chapter's experiment is a module-level *run function* ``fn(**config) -> dict`` (one training
run, one probe, one pruning target…) and a *grid*: the list of configurations to run it on.
:func:`run` calls the function once per configuration and keeps each finished result as one
JSON file in a *store* directory, so that an interrupted sweep (a Colab disconnect, a preempted
job) resumes where it stopped: configurations whose file exists are never run again.

The store
---------
``store/<key>.json``
    One finished configuration: ``{"key", "function", "config", "result", "fairlib_version",
    "duration_s", "host", "finished"}``. ``key`` is :func:`config_key` of the configuration: a
    hash of its canonical JSON (sorted keys), so the same configuration gets the same file name in
    any process and whatever the order of its keys. Files are written to a temporary name and
    renamed, so a crash never leaves a half-written result.
``store/failed/<key>.json``
    A configuration whose run raised: the configuration and the traceback. The sweep goes on
    with the others and :func:`run` raises :class:`SweepError` at the end, naming the failures;
    ``retry_failed=True`` runs them again.

:func:`load` reads every finished row of a store, so a notebook can draw its figures from a
store that a longer run (another machine, several Colab sessions) filled.

Experiments
-----------
A method module declares each of its chapter's experiments once, with :func:`register`:
the run function and its grid for each profile (``grid(profile) -> list[dict]``). The chapter
then calls ``sweep.run(fn, grid(PROFILE), store=default_store(chapter, name))`` and draws from the
returned frame; :func:`experiments` lists them (the command line and the compute plans use it).

``store/checkpoints/<key>/``
    The engine checkpoints of a configuration still running (or interrupted): see below. Removed
    when its result is written.

Executors
---------
``executor="local"`` runs the configurations in this process, in order. ``executor="ray"`` makes
every configuration a Ray task that requests ``resources`` (e.g. ``{"num_gpus": 1, "num_cpus":
4}``): on the Ray cluster at ``RAY_ADDRESS`` (or one this process already joined), else on a local
instance sized to the machine, started and stopped by :func:`run`. Results travel back to this
process (the driver), which alone writes the store, so workers need no shared file system; a
worker that dies (out of memory, a preempted node) is recorded under ``store/failed/`` like a
run that raised. Ray is optional: ``pip install "fairlib[ray]"``. An executor is a small
replaceable part (see :data:`EXECUTORS`): it receives the pending configurations and yields
``(index, outcome)`` pairs as they finish.

Within-run checkpoints
----------------------
A long run (hundreds of epochs) should not start again from nothing after a preemption. While a
configuration runs, every call of the training engine (:func:`fairlib.training.train`) inside it
that is not given a checkpoint file gets one, ``store/checkpoints/<key>/train-<n>.pt`` (the
``n``-th engine run of the configuration, so a re-run finds the same file for the same call), and
saves into it every ``FAIRLIB_CHECKPOINT_S`` seconds (default 300) and after its last epoch when
it ran that long. When the configuration is submitted again, each engine run resumes from its
file: finished ones return at once, the interrupted one continues from its last save, and the
result is the one an uninterrupted run gives. Under Ray the files go to the driver through a
small actor and come back to whichever worker runs the configuration next.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import shutil
import socket
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["grid", "run", "load", "config_key", "default_store", "register", "experiments", "Experiment",
           "SweepError", "EXECUTORS", "RAY_RESOURCES", "current_run", "main"]

_FAILED = "failed"


class SweepError(RuntimeError):
    """Some configurations of a sweep raised; the others finished and are in the store."""

    def __init__(self, message: str, failed: list[dict]):
        super().__init__(message)
        self.failed = failed


# --------------------------------------------------------------------------- grids and keys
def grid(**axes: Sequence[Any]) -> list[dict[str, Any]]:
    """The Cartesian product of the given value lists, in a stable order.

    The first axis varies slowest: ``grid(a=[1, 2], b=["x", "y"])`` is
    ``[{a: 1, b: "x"}, {a: 1, b: "y"}, {a: 2, b: "x"}, {a: 2, b: "y"}]``.

    Raises
    ------
    TypeError
        An axis is not a list, tuple, range or 1-D array of values (a bare string or number).
    ValueError
        An axis is empty (the product would be empty).
    """
    names = list(axes)
    if not names:
        raise ValueError("axes: pass at least one axis, e.g. grid(seed=[0, 1, 2])")
    values = []
    for name in names:
        v = axes[name]
        if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, (Sequence, range, np.ndarray)):
            raise TypeError(f"{name}: expected a list of values for this axis, got {type(v).__name__} {v!r}; "
                            f"wrap a single value in a list: {name}=[{v!r}]")
        v = list(v)
        if not v:
            raise ValueError(f"{name}: the axis is empty, so the grid would be empty")
        values.append(v)
    return [dict(zip(names, combo)) for combo in product(*values)]


def _plain(value: Any, where: str, *, allow_nan: bool) -> Any:
    """``value`` as plain JSON data (numpy scalars and arrays, tuples converted)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if not allow_nan and not math.isfinite(value):
            raise ValueError(f"{where}: {value} cannot be part of a configuration (not finite)")
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]", allow_nan=allow_nan) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            out[k] = _plain(v, f"{where}.{k}", allow_nan=allow_nan)
        return out
    raise TypeError(f"{where}: {type(value).__name__} {value!r} is not JSON-serialisable; use numbers, strings, "
                    "booleans, None, or lists and dicts of them")


def _check_config(config: Any, index: int | None = None) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        at = f" {index}" if index is not None else ""
        raise TypeError(f"configs[{at.strip()}]: expected a dict of parameters, got {type(config).__name__}")
    out = {}
    for key, value in config.items():
        if not isinstance(key, str):
            raise TypeError(f"config key {key!r}: keys must be strings (they become keyword arguments)")
        out[key] = _plain(value, key, allow_nan=False)
    return out


def _canonical(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def config_key(config: Mapping[str, Any]) -> str:
    """The stable file name (without ``.json``) of a configuration.

    The first 20 hex digits of the SHA-256 of its canonical JSON (sorted keys, no whitespace):
    the same configuration gives the same key in any process, whatever the order of its keys.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config: expected a dict of parameters, got {type(config).__name__}")
    return hashlib.sha256(_canonical(_check_config(config)).encode()).hexdigest()[:20]


# --------------------------------------------------------------------------- experiments
@dataclass(frozen=True)
class Experiment:
    """One experiment of a chapter: ``fn(**config) -> dict`` and ``grid(profile) -> list[dict]``."""

    chapter: str
    name: str
    fn: Callable[..., Mapping[str, Any]]
    grid: Callable[[str], list[dict]]
    description: str = ""
    #: ``cost(config) -> list[fairlib.plan.Stage]``: the work of one configuration (compute plans).
    cost: Callable[[Mapping[str, Any]], list] | None = None

    def configs(self, profile: str) -> list[dict]:
        from fairlib.config import get_profile

        return self.grid(get_profile(profile))


_EXPERIMENTS: dict[tuple[str, str], Experiment] = {}


def register(chapter: str, name: str, fn: Callable[..., Mapping[str, Any]], grid: Callable[[str], list[dict]],
             description: str = "", *, cost: Callable[[Mapping[str, Any]], list] | None = None) -> Experiment:
    """Declare an experiment of ``chapter`` (a notebook's file stem, e.g. ``"05_pruning_bias"``).

    ``cost(config) -> list[fairlib.plan.Stage]`` describes the work of one configuration, phase by
    phase, for the compute plans (:func:`fairlib.plan.plan`, ``python -m fairlib.sweep plan``).
    """
    for arg, value in (("chapter", chapter), ("name", name)):
        _check_name(value, arg)
    if not callable(fn):
        raise ValueError(f"fn: expected a run function fn(**config) -> dict, got {type(fn).__name__}")
    if not callable(grid):
        raise ValueError(f"grid: expected a function grid(profile) -> list of configurations, "
                         f"got {type(grid).__name__}")
    if getattr(fn, "__qualname__", "").count("<locals>"):
        raise ValueError(f"fn: {fn.__qualname__} is not a module-level function; other processes must be able "
                         "to import it")
    if cost is not None and not callable(cost):
        raise ValueError(f"cost: expected a function cost(config) -> list of fairlib.plan.Stage, "
                         f"got {type(cost).__name__}")
    experiment = Experiment(chapter, name, fn, grid, description, cost)
    _EXPERIMENTS[(chapter, name)] = experiment
    return experiment


def _check_name(value: Any, name: str) -> str:
    """A chapter or experiment name: a non-empty string that is also a folder name."""
    if not isinstance(value, str) or not value.strip() or "/" in value or "\\" in value or value in (".", ".."):
        raise ValueError(f"{name}: expected a non-empty name without '/' (e.g. '02_bias_amplification'), "
                         f"got {value!r}")
    return value


def experiments(chapter: str | None = None) -> dict[str, Experiment]:
    """The registered experiments (importing every method module first), of one chapter or all.

    Keys are ``"<chapter>/<name>"`` (all chapters) or ``"<name>"`` (one chapter).
    """
    import importlib

    for module in ("synthetic", "amplification", "probes", "naps", "pruning", "invariance", "transfer"):
        importlib.import_module(f"fairlib.{module}")
    if chapter is None:
        return {f"{c}/{n}": e for (c, n), e in sorted(_EXPERIMENTS.items())}
    found = {n: e for (c, n), e in sorted(_EXPERIMENTS.items()) if c == chapter}
    if not found:
        chapters = sorted({c for c, _ in _EXPERIMENTS})
        raise ValueError(f"chapter: no experiments registered for {chapter!r}; chapters with experiments: {chapters}")
    return found


# --------------------------------------------------------------------------- store
def _store_dir(store: str | os.PathLike) -> Path:
    if store is None:
        raise TypeError("store: a directory is required (e.g. fairlib.sweep.default_store('chapter'))")
    path = Path(store)
    if path.exists() and not path.is_dir():
        raise ValueError(f"store: {path} is a file; pass a directory (it holds one JSON file per configuration)")
    return path


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """``write(fh)`` into a temporary file beside ``path``, then rename it: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write_json(path: Path, payload: dict) -> None:
    _atomic_write(path, lambda fh: json.dump(payload, fh, indent=1), mode="w")


def _function_name(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _read_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"store: cannot read {path} ({exc}); delete the file to run its configuration again") from exc


def load(store: str | os.PathLike) -> pd.DataFrame:
    """Every finished row of a store: config columns, then result columns, then ``duration_s``.

    Rows are in the order the configurations finished. An empty or missing store gives an empty
    frame.
    """
    path = _store_dir(store)
    records = [_read_record(p) for p in path.glob("*.json")] if path.is_dir() else []
    records.sort(key=lambda r: (r.get("finished", ""), r.get("key", "")))
    return pd.DataFrame([_row(r) for r in records])


def _row(record: dict) -> dict:
    return {**record["config"], **record["result"], "duration_s": record.get("duration_s")}


def default_store(chapter: str, experiment: str = "main") -> Path:
    """Where a chapter's experiment keeps its results.

    The book build (``FAIRLIB_BOOK`` set) always gets a fresh temporary directory: a rendered
    chapter must never show stale results. Temporary stores live in one folder per process,
    removed when the process (the notebook's kernel) exits. Otherwise ``$FAIRLIB_RESULTS/<chapter>/<experiment>``
    when ``FAIRLIB_RESULTS`` is set (in Colab, a folder on Google Drive, so that a reconnect
    resumes where the sweep stopped), else a fresh temporary directory.
    """
    _check_name(chapter, "chapter")
    _check_name(experiment, "experiment")
    results = os.environ.get("FAIRLIB_RESULTS")
    if results and not os.environ.get("FAIRLIB_BOOK"):
        return Path(results).expanduser() / chapter / experiment
    return Path(tempfile.mkdtemp(prefix=f"{chapter}-{experiment}-", dir=_session_root()))


_SESSION_ROOT: Path | None = None


def _session_root() -> Path:
    """One temporary folder per process for its fresh stores, removed when the process exits."""
    global _SESSION_ROOT
    if _SESSION_ROOT is None or not _SESSION_ROOT.exists():
        import atexit
        import shutil

        _SESSION_ROOT = Path(tempfile.mkdtemp(prefix="fairlib-stores-"))
        atexit.register(shutil.rmtree, _SESSION_ROOT, True)
    return _SESSION_ROOT


# --------------------------------------------------------------------------- within-run checkpoints
_CHECKPOINTS = "checkpoints"


def checkpoint_seconds() -> float:
    """Seconds between the engine's saves inside a sweep run: ``FAIRLIB_CHECKPOINT_S`` (default 300)."""
    raw = os.environ.get("FAIRLIB_CHECKPOINT_S", "300")
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"FAIRLIB_CHECKPOINT_S: expected a number of seconds >= 0 (0: after every epoch), got {raw!r}")
    return value


@dataclass
class RunContext:
    """The configuration a sweep is running in this process (:func:`current_run`).

    ``directory`` holds its engine checkpoints; ``on_save(path)`` is called after each save (the
    Ray executor sends the file to the driver). :meth:`next_checkpoint` names the engine runs in
    call order.
    """

    key: str
    directory: Path
    every_s: float
    on_save: Callable[[Path], None] | None = None
    calls: int = 0

    def next_checkpoint(self) -> Path:
        self.calls += 1
        return self.directory / f"train-{self.calls - 1}.pt"


_CURRENT: RunContext | None = None


def current_run() -> RunContext | None:
    """The sweep configuration running in this process, or ``None`` outside :func:`run`."""
    return _CURRENT


# --------------------------------------------------------------------------- executors
@dataclass
class _Outcome:
    result: dict | None = None
    error: str | None = None  # the formatted traceback when the run raised
    duration_s: float = 0.0


def _call(fn: Callable, config: dict, context: RunContext | None = None) -> _Outcome:
    global _CURRENT
    start = time.perf_counter()
    previous, _CURRENT = _CURRENT, context
    try:
        result = fn(**config)
    except Exception:
        return _Outcome(error=traceback.format_exc(), duration_s=time.perf_counter() - start)
    finally:
        _CURRENT = previous
    return _Outcome(result=result, duration_s=time.perf_counter() - start)


def _local(fn: Callable, pending: list[tuple[int, dict, str]], *, store: Path,
           **_: Any) -> Iterator[tuple[int, _Outcome]]:
    """Run each configuration in this process, in order; checkpoints go straight into the store."""
    every = checkpoint_seconds()
    for index, config, key in pending:
        yield index, _call(fn, config, RunContext(key, store / _CHECKPOINTS / key, every))


#: The task options a configuration may request from Ray (``resources=`` of :func:`run`).
RAY_RESOURCES = ("num_cpus", "num_gpus", "memory", "resources", "accelerator_type", "max_retries")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError('executor="ray" needs Ray, an optional dependency: pip install "fairlib[ray]" '
                          '(or pip install "ray>=2.9")') from None
    return ray


def _check_resources(resources: Any) -> dict[str, Any]:
    if resources is None:
        return {}
    if not isinstance(resources, Mapping):
        raise ValueError(f'resources: expected a dict such as {{"num_gpus": 1, "num_cpus": 4}}, got {resources!r}')
    unknown = sorted(set(resources) - set(RAY_RESOURCES))
    if unknown:
        raise ValueError(f"resources: unknown option(s) {unknown}; Ray tasks take {list(RAY_RESOURCES)}")
    for k in ("num_cpus", "num_gpus", "memory"):
        v = resources.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real) or v < 0):
            raise ValueError(f"resources: {k} must be a number >= 0, got {v!r}")
    return dict(resources)


class _Keeper:
    """A Ray actor on the driver's node: it writes workers' checkpoints into the store and hands them back."""

    def __init__(self, root: str):
        self.root = Path(root) / _CHECKPOINTS

    def save(self, key: str, name: str, data: bytes) -> None:
        _atomic_write(self.root / key / name, lambda fh: fh.write(data))

    def files(self, key: str) -> dict[str, bytes]:
        folder = self.root / key
        return {p.name: p.read_bytes() for p in sorted(folder.glob("*.pt"))} if folder.is_dir() else {}


def _ray_task(fn: Callable, config: dict, key: str, keeper: Any, every: float) -> _Outcome:
    """One configuration on a Ray worker: fetch its checkpoints, run it, send new saves back."""
    import ray

    local = Path(tempfile.mkdtemp(prefix=f"fairlib-{key}-"))
    try:
        for name, data in ray.get(keeper.files.remote(key)).items():
            (local / name).write_bytes(data)

        def on_save(path: Path) -> None:
            ray.get(keeper.save.remote(key, path.name, path.read_bytes()))

        return _call(fn, config, RunContext(key, local, every, on_save))
    finally:
        shutil.rmtree(local, ignore_errors=True)


def _ray(fn: Callable, pending: list[tuple[int, dict, str]], *, store: Path, resources: Mapping[str, Any] | None = None,
         address: str | None = None, num_cpus: int | None = None) -> Iterator[tuple[int, _Outcome]]:
    """Every configuration a Ray task; yields outcomes as tasks finish (a dead worker is an error outcome)."""
    ray = _import_ray()
    options = _check_resources(resources)
    options.setdefault("max_retries", 0)  # a crashed worker is recorded; re-running the sweep resumes it
    started = False
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False)
            started = True
    try:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        keeper = ray.remote(num_cpus=0)(_Keeper).options(scheduling_strategy=here).remote(str(store))
        task = ray.remote(_ray_task).options(**options)
        every = checkpoint_seconds()
        refs = {task.remote(fn, config, key, keeper, every): index for index, config, key in pending}
        while refs:
            # a short timeout: Ctrl-C (KeyboardInterrupt) is only handled between Python calls
            done, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
            if not done:
                continue
            ref = done[0]
            index = refs.pop(ref)
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the worker died, or the task could not run
                outcome = _Outcome(error=f"{type(exc).__name__} (Ray): {exc}")
            yield index, outcome
    finally:
        if started:
            ray.shutdown()


#: Executors by name: ``executor(fn, pending, *, store, **options)`` yields ``(index, outcome)`` as runs
#: finish; ``pending`` holds ``(index, config, key)``.
EXECUTORS: dict[str, Callable[..., Iterator[tuple[int, _Outcome]]]] = {"local": _local, "ray": _ray}


def _check_result(result: Any, config: dict, fn_name: str) -> dict:
    if not isinstance(result, Mapping):
        raise TypeError(f"{fn_name} returned {type(result).__name__}; a run function must return a dict of "
                        "scalars (or lists of scalars)")
    out = {}
    for key, value in result.items():
        if not isinstance(key, str):
            raise TypeError(f"{fn_name} returned a non-string key {key!r}")
        if key in config:
            raise ValueError(f"{fn_name} returned {key!r}, which is also a configuration key; rename the result")
        value = _plain(value, f"result {key!r}", allow_nan=True)
        if isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, (list, dict)) for v in value)):
            raise TypeError(f"{fn_name}: result {key!r} must be a scalar or a flat list of scalars")
        out[key] = value
    return out


# --------------------------------------------------------------------------- run
def run(
    fn: Callable[..., Mapping[str, Any]],
    configs: Sequence[Mapping[str, Any]],
    *,
    store: str | os.PathLike,
    executor: str = "local",
    resources: Mapping[str, Any] | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    **executor_options: Any,
) -> pd.DataFrame:
    """Run ``fn(**config)`` for every configuration not yet in ``store``; return every row.

    Parameters
    ----------
    fn
        A module-level function (so that other processes can import it) returning a dict of
        scalars or lists of scalars.
    configs
        Dicts of JSON-serialisable values (numpy scalars are accepted and stored as numbers).
    store
        Directory of results (created if missing); see the module docstring.
    executor
        ``"local"`` (in this process, in order), ``"ray"`` (one Ray task per configuration; see the
        module docstring), or another name in :data:`EXECUTORS`. The rows are the same.
    resources
        With ``"ray"``: what each configuration's task requests (:data:`RAY_RESOURCES`, e.g.
        ``{"num_gpus": 1, "num_cpus": 4}``; default one CPU). ``executor_options`` of ``"ray"``:
        ``address`` (else ``RAY_ADDRESS``, else a local instance) and ``num_cpus`` of a local instance.
    retry_failed
        Run configurations recorded under ``store/failed/`` again (by default they are skipped and
        reported).
    progress
        Show a progress bar with the finished and failed counts.

    Returns
    -------
    pandas.DataFrame
        One row per configuration, in the order of ``configs``: the config keys, then the result
        keys, then ``duration_s`` (seconds the run took, when it ran).

    Raises
    ------
    SweepError
        After every other configuration finished, when some raised (now or in an earlier run and
        not retried); its message names them and where the tracebacks are.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor: unknown executor {executor!r}; available: {sorted(EXECUTORS)}")
    if not callable(fn):
        raise TypeError(f"fn: expected a function, got {type(fn).__name__}")
    for arg, value in (("retry_failed", retry_failed), ("progress", progress)):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{arg}: expected True or False, got {value!r}")
    if executor == "local" and executor_options:
        raise ValueError(f"executor_options: the 'local' executor takes no options, got {sorted(executor_options)}; "
                         "check the spelling of run()'s keyword arguments")
    if resources is not None:
        if executor == "local":
            raise ValueError("resources: apply to Ray tasks; pass executor='ray' (the local executor runs in this "
                             "process with what it has)")
        executor_options["resources"] = _check_resources(resources)
    if executor == "ray":
        _import_ray()
    if isinstance(configs, Mapping) or not isinstance(configs, Sequence):
        raise TypeError("configs: expected a list of dicts (e.g. fairlib.sweep.grid(...))")
    checked = [_check_config(c, i) for i, c in enumerate(configs)]
    keys = [config_key(c) for c in checked]
    root = _store_dir(store)
    root.mkdir(parents=True, exist_ok=True)
    failed_dir = root / _FAILED
    fn_name = _function_name(fn)

    records: dict[str, dict] = {}
    pending: list[tuple[int, dict, str]] = []
    failed: dict[int, str] = {}
    for index, (config, key) in enumerate(zip(checked, keys)):
        if key in records:
            continue  # a duplicated configuration runs once
        done = root / f"{key}.json"
        if done.exists():
            record = _read_record(done)
            if record.get("function") not in (None, fn_name):
                raise ValueError(f"store: {root} holds results of {record['function']}, not {fn_name}; "
                                 "use one store per experiment")
            records[key] = record
        elif (failed_dir / f"{key}.json").exists() and not retry_failed:
            failed[index] = str(failed_dir / f"{key}.json")
        else:
            pending.append((index, config, key))
            records[key] = {}  # reserve, so duplicates are not queued twice

    bar = None
    if progress and pending:
        from fairlib.notebook import progress as make_bar

        bar = make_bar(None, total=len(pending), desc=f"sweep {getattr(fn, '__name__', 'run')}")
    try:
        # nothing pending: no executor (and no Ray instance) is started
        outcomes = EXECUTORS[executor](fn, pending, store=root, **executor_options) if pending else iter(())
        for index, outcome in outcomes:
            config, key = checked[index], keys[index]
            if outcome.error is None:
                try:
                    result = _check_result(outcome.result, config, fn_name)
                except (TypeError, ValueError):
                    outcome = _Outcome(error=traceback.format_exc(), duration_s=outcome.duration_s)
            if outcome.error is not None:
                _atomic_write_json(failed_dir / f"{key}.json", {
                    "key": key, "function": fn_name, "config": config, "traceback": outcome.error,
                    "host": socket.gethostname(), "finished": _now()})
                failed[index] = str(failed_dir / f"{key}.json")
                records.pop(key, None)
            else:
                record = {"key": key, "function": fn_name, "config": config, "result": result,
                          "fairlib_version": _version(), "duration_s": round(outcome.duration_s, 3),
                          "host": socket.gethostname(), "finished": _now()}
                _atomic_write_json(root / f"{key}.json", record)
                (failed_dir / f"{key}.json").unlink(missing_ok=True)
                shutil.rmtree(root / _CHECKPOINTS / key, ignore_errors=True)  # done: its checkpoints are spent
                records[key] = record
            if bar is not None:
                bar.update(1)
                bar.set_postfix(finished=sum(bool(r) for r in records.values()), failed=len(failed))
    finally:
        if bar is not None:
            bar.close()

    if failed:
        names = [checked[i] for i in sorted(failed)]
        lines = "\n".join(f"  {c} -> {failed[i]}" for i, c in zip(sorted(failed), names))
        raise SweepError(f"{len(failed)} of {len(checked)} configurations failed (tracebacks in {failed_dir}); "
                         f"the others are in the store. Fix the cause and run again with retry_failed=True:\n"
                         f"{lines}", failed=names)
    return pd.DataFrame([_row(records[k]) for k in keys])


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _version() -> str:
    from fairlib import __version__

    return __version__


# --------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fairlib.sweep <command>``: ``run``, ``status`` or ``plan`` of one chapter's experiments.

    * ``run NOTEBOOK --profile P --store DIR [--executor ray] [--only NAME] [--num-gpus G] [--num-cpus C]
      [--retry-failed]``: every configuration of the chapter's experiments (or of ``NAME``) not yet in
      ``DIR/<chapter>/<experiment>`` (the layout :func:`default_store` reads under ``FAIRLIB_RESULTS=DIR``,
      so a chapter draws from it), with a progress bar of finished and failed counts;
    * ``status NOTEBOOK --profile P --store DIR [--only NAME]``: done, failed and pending counts per
      experiment and the plan's T4-hours still pending;
    * ``plan NOTEBOOK --profile P [--json] [--stages]``: the compute plan (:mod:`fairlib.plan`).

    Returns the exit status: 0; 1 when configurations failed; 2 for a usage error (an unknown
    chapter, profile or experiment, whose message lists the valid ones).
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m fairlib.sweep",
                                     description="The course's registered experiments (fairlib.sweep).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plan_cmd = commands.add_parser(
        "plan", help="the compute plan of a chapter: runs, FLOPs, T4-hours, peak host and GPU memory",
        description="Print the compute plan of one chapter's registered experiments under a profile.")
    plan_cmd.add_argument("notebook", help="a chapter's file stem, e.g. 05_pruning_bias")
    plan_cmd.add_argument("--profile", default=None,
                          help="quick, full or paper (default: FAIRLIB_PROFILE, else quick)")
    plan_cmd.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    plan_cmd.add_argument("--stages", action="store_true", help="also print each experiment's stages")
    plan_cmd.set_defaults(handler=_plan_command)
    for name, helptext in (("run", "run a chapter's experiments into a store (resumes what is missing)"),
                           ("status", "done, failed and pending configurations of a store, and the pending T4-hours")):
        cmd = commands.add_parser(name, help=helptext, description=helptext)
        cmd.add_argument("notebook", help="a chapter's file stem, e.g. 05_pruning_bias")
        cmd.add_argument("--profile", default=None, help="quick, full or paper (default: FAIRLIB_PROFILE, else quick)")
        cmd.add_argument("--store", default=os.environ.get("FAIRLIB_RESULTS"),
                         help="results root (default: FAIRLIB_RESULTS); DIR/<chapter>/<experiment> holds each "
                              "experiment's store, where a chapter run with FAIRLIB_RESULTS=DIR finds it")
        cmd.add_argument("--only", default=None, metavar="NAME", help="one experiment of the chapter, e.g. rq1")
        if name == "run":
            cmd.add_argument("--executor", default="local", choices=sorted(EXECUTORS))
            cmd.add_argument("--num-gpus", type=float, default=None, help="GPUs per configuration (Ray; default 1 "
                             "when the cluster has GPUs, else 0)")
            cmd.add_argument("--num-cpus", type=float, default=None, help="CPUs per configuration (Ray; default 1)")
            cmd.add_argument("--retry-failed", action="store_true", help="run the recorded failures again")
        cmd.set_defaults(handler=_run_command if name == "run" else _status_command)
    args = parser.parse_args(argv)
    from fairlib.plan import PlanError

    try:
        print(args.handler(args))
    except (PlanError, _UsageError) as exc:  # an unknown chapter, profile or experiment: a usage error
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


class _UsageError(ValueError):
    """A command-line argument names nothing that exists (the message lists what does)."""


def _selected(args: Any) -> tuple[str, str, dict[str, Experiment]]:
    from fairlib.config import get_profile
    from fairlib.plan import _notebook, chapters

    if not args.store:
        raise _UsageError("--store: give a results directory (or set FAIRLIB_RESULTS)")
    try:
        profile = get_profile(args.profile)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    stem = _notebook(args.notebook)
    try:
        found = experiments(stem)
    except ValueError:
        raise _UsageError(f"notebook: no chapter {stem!r}; available: {', '.join(chapters())}") from None
    if args.only is not None:
        if args.only not in found:
            raise _UsageError(f"--only: {stem} has no experiment {args.only!r}; choose from {sorted(found)}")
        found = {args.only: found[args.only]}
    return profile, stem, found


def _run_command(args: Any) -> str:
    profile, stem, found = _selected(args)
    store = Path(args.store).expanduser() / stem
    options: dict[str, Any] = {}
    if args.executor == "ray":
        resources: dict[str, Any] = {}
        if args.num_cpus is not None:
            resources["num_cpus"] = args.num_cpus
        if args.num_gpus is not None:
            resources["num_gpus"] = args.num_gpus
        elif _cluster_gpus() > 0:
            resources["num_gpus"] = 1
        options["resources"] = resources
    elif args.num_gpus is not None or args.num_cpus is not None:
        raise _UsageError("--num-gpus and --num-cpus are what each Ray task requests; add --executor ray")
    lines, failures = [], []
    for name, experiment in found.items():
        configs = experiment.configs(profile)
        try:
            frame = run(experiment.fn, configs, store=store / name, executor=args.executor,
                        retry_failed=args.retry_failed, **options)
            lines.append(f"{name}: {len(frame)} of {len(configs)} configurations done")
        except SweepError as exc:
            failures.append(f"{name}: {exc}")
    if failures:
        raise SweepError("\n".join(lines + failures), failed=[])
    return "\n".join(lines)


def _cluster_gpus() -> float:
    """GPUs of the Ray cluster this run will use (``RAY_ADDRESS`` or a local one), from torch when local."""
    if os.environ.get("RAY_ADDRESS"):
        ray = _import_ray()
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
        return float(ray.cluster_resources().get("GPU", 0))
    import torch

    return float(torch.cuda.device_count())


def _status_command(args: Any) -> str:
    import dataclasses

    from fairlib.plan import _plan_experiment

    profile, stem, found = _selected(args)
    store = Path(args.store).expanduser() / stem
    rows = []
    for name, experiment in found.items():
        configs = experiment.configs(profile)
        keys = list(dict.fromkeys(config_key(c) for c in configs))
        by_key = {config_key(c): c for c in configs}
        done = [k for k in keys if (store / name / f"{k}.json").exists()]
        failed = [k for k in keys if k not in done and (store / name / _FAILED / f"{k}.json").exists()]
        todo = [by_key[k] for k in keys if k not in done]  # failed ones run again with --retry-failed
        hours = float("nan")
        if experiment.cost is not None and todo:
            pending_only = dataclasses.replace(experiment, grid=lambda _profile, todo=todo: todo)
            hours = _plan_experiment(name, pending_only, profile, set()).seconds / 3600
        elif not todo:
            hours = 0.0
        rows.append((name, len(keys), len(done), len(failed), len(keys) - len(done) - len(failed), hours))
    head = f"{'experiment':<24}{'configs':>9}{'done':>7}{'failed':>8}{'pending':>9}{'T4-hours left':>15}"
    out = [f"{args.notebook} ({profile} profile) in {store}", head, "-" * len(head)]
    out += [f"{n:<24}{c:>9,}{d:>7,}{f:>8,}{p:>9,}{h:>15.3g}" for n, c, d, f, p, h in rows]
    out.append("(T4-hours left: the plan's estimate for the configurations not done, failed ones included)")
    return "\n".join(out)


def _plan_command(args: Any) -> str:
    from fairlib import plan

    return plan.main(args.notebook, args.profile, as_json=args.json, stages=args.stages)


if __name__ == "__main__":
    # run as a script this file is __main__, a second copy of the module: the experiments register in
    # fairlib.sweep, so the command line must run there
    import sys

    from fairlib.sweep import main as _main

    sys.exit(_main())
