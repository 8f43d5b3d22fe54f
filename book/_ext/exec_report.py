"""Print each notebook's execution time at the end of a book build.

myst-nb records how long every executed notebook took; this extension prints that record as a
table and writes it to ``<outdir>/../execution_times.csv`` so CI logs show it and budgets
(e.g. "Chapter 1 executes in at most 60 s") can be checked against measured numbers.
"""

from __future__ import annotations

import csv
from pathlib import Path


def _report(app, exception) -> None:
    if exception is not None:
        return
    from myst_nb.sphinx_ import NbMetadataCollector

    rows = []
    for docname, data in sorted(NbMetadataCollector.get_doc_data(app.env).items()):
        exec_data = data.get("exec_data")
        if exec_data:
            rows.append((docname, exec_data.get("method", ""), exec_data.get("runtime"), exec_data.get("succeeded")))
    if not rows:
        print("\nexecution times: no notebook was executed in this build")
        return
    width = max(len(r[0]) for r in rows)
    print("\nNotebook execution times")
    print(f"{'notebook':<{width}}  {'method':<8}  {'seconds':>8}  ok")
    for name, method, runtime, ok in rows:
        seconds = "-" if runtime is None else f"{runtime:.1f}"
        print(f"{name:<{width}}  {method:<8}  {seconds:>8}  {'yes' if ok else 'NO'}")
    total = sum(r[2] or 0 for r in rows)
    print(f"{'total':<{width}}  {'':<8}  {total:>8.1f}")
    out = Path(app.outdir).parent / "execution_times.csv"
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["notebook", "method", "seconds", "succeeded"])
        writer.writerows(rows)


def setup(app):
    app.connect("build-finished", _report)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
