"""The 1D experiment's trainer: the checkpointed chunk loop, results, reports and eval mode.

``train_and_evaluate(config, workdir)`` trains the grid of `plan.plan_runs` chunk by chunk
(`program.train_chunk`), saving an Orbax checkpoint (parameters of every finished model + the
results so far) at most every ``config.checkpoint_every_secs`` and at the end; rerunning with
the same workdir resumes after the last saved chunk. ``evaluate(config, workdir)`` restores
the parameters and recomputes every model's val and test MSE without training.
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np
from absl import logging

from regcls_jax.data import synthetic1d
from regcls_jax.families.synthetic1d import figures, plan, program, report, selected
from regcls_jax.train_lib import checkpoint, guards, metric_writers, pytrees, sharding
from regcls_jax.train_lib import workdir as workdir_lib

# Fields that define the models of a grid; a checkpoint only resumes a run with the same ones.
_PLAN_FIELDS = (
  "scenarios",
  "samplings",
  "functions",
  "versions",
  "methods",
  "num_classes",
  "balanced",
  "lam",
  "lr",
  "scale",
  "hidden",
  "epochs",
  "batch_size",
  "weight_decay",
  "peers",
  "share_methods",
  "data",
  "logits_budget",
  "drop_last",
  "pair_init",
  "noise_levels",
  "view_jitter",
)


# Bump when the order in which chunks are planned changes: it invalidates old checkpoints.
_PLAN_VERSION = 5  # 5: 2**18 logits per CPU device (chunk sizes of K = 64, 256)


def _row(run: plan.Run, metrics: dict, i: int, group: str, index: int) -> dict:
  return dict(
    scenario=run.scenario,
    sampling=run.sampling,
    function=run.function,
    version=run.version,
    seed=run.seed,
    method=run.method,
    num_classes=run.num_classes,
    balanced=run.balanced,
    lam=run.lam,
    lr=run.lr,
    noise=run.noise,
    val_mse=float(metrics["val_mse"][i]),
    test_mse=float(metrics["test_mse"][i]),
    train_loss=float(metrics["train_loss"][i, -1]),
    group=group,
    index=index,
  )


def _concat_groups(parts: dict[str, list[dict]]) -> dict[str, dict[str, np.ndarray]]:
  return {g: {k: np.concatenate([p[k] for p in ps]) for k in ps[0]} for g, ps in parts.items()}


@guards.preemptible
def train_and_evaluate(
  config, workdir: str, preemption: guards.Preemption | None = None
) -> list[dict]:
  """Trains the grid, writes results.csv, summary.md, fig3.png and the checkpoint.

  A resume with another config refuses before any file is written. SIGTERM saves the
  checkpoint after the chunk in flight and returns (reports are written by the run that
  finishes the grid); the same command resumes.
  """
  workdir_lib.prepare_workdir(workdir)
  runs = plan.plan_runs(config)
  mesh = sharding.models_mesh()
  cache = plan.DatasetCache(synthetic1d.Sizes(**config.data))
  chunks = plan.plan_chunks(runs, mesh.devices.size, config, size_of=cache.train_size)

  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
  rows: list[dict] = []
  parts: dict[str, list[dict]] = {}
  done = 0
  if ckpt.latest_step() is not None:
    params, meta = ckpt.restore()
    workdir_lib.check_resume(meta, config, _PLAN_FIELDS, ckpt.directory, _PLAN_VERSION)
    done, rows = int(meta["chunks_done"]), list(meta["rows"])
    parts = {g: [p] for g, p in params.items()}
    logging.info("resuming after chunk %d/%d (%d models restored)", done, len(chunks), len(rows))
  workdir_lib.write_config(config, workdir)

  logging.info(
    "1D grid: %d models in %d chunks on %d %s device(s)",
    len(runs),
    len(chunks),
    mesh.devices.size,
    jax.devices()[0].platform,
  )
  progress = plan.Progress(chunks)
  for chunk in chunks[:done]:
    progress.skip(chunk)
  last_save = time.perf_counter()
  try:
    for i in range(done, len(chunks)):
      chunk = chunks[i]
      t = time.perf_counter()
      params, metrics = program.train_chunk(chunk, cache, config, mesh)
      first = sum(len(next(iter(p.values()))) for p in parts.get(chunk.group, []))
      for j, r in enumerate(chunk.runs[: chunk.num_real]):
        rows.append(_row(r, metrics, j, chunk.group, first + j))
      parts.setdefault(chunk.group, []).append(pytrees.flatten(params))
      progress.update(i, len(chunks), chunk, time.perf_counter() - t)
      last = i + 1 == len(chunks)
      if (
        last
        or preemption.requested
        or time.perf_counter() - last_save > config.checkpoint_every_secs
      ):
        parts = {g: [p] for g, p in _concat_groups(parts).items()}
        meta = dict(
          chunks_done=i + 1,
          rows=rows,
          **workdir_lib.resume_meta(config, _PLAN_FIELDS, _PLAN_VERSION),
        )
        ckpt.save(i + 1, {g: p[0] for g, p in parts.items()}, meta)
        last_save = time.perf_counter()
      if preemption.requested and not last:
        logging.warning(
          "SIGTERM: stopped after chunk %d/%d and saved %s; run the same command again to resume",
          i + 1, len(chunks), ckpt.directory,
        )  # fmt: skip
        return rows
  finally:
    ckpt.close()
  write_reports(rows, config, workdir)
  if config.get("plot_predictions"):
    write_predictions(rows, _concat_groups(parts), config, cache, os.path.join(workdir, "fig7.png"))
  return rows


def write_reports(rows, config, workdir: str, suffix: str = "") -> None:
  """results.csv, summary.md, fig3.png and selected.md; with a lambda sweep lambda.md and
  fig4.png; with several noise levels noise.md and fig5.png; with baselines methods.md and
  methods.png."""
  scenarios = [s for s in synthetic1d.SCENARIOS if s in config.scenarios]
  samplings = [s for s in synthetic1d.SAMPLINGS if s in config.samplings]
  report.write_results_csv(rows, os.path.join(workdir, f"results{suffix}.csv"))
  title = f"1D grid '{config.get('grid', 'custom')}': {len(rows)} models, {config.epochs} epochs"
  levels = plan.noise_levels(config)
  # Fig. 3 / Tab. 1 at one noise level: data.noise_std when the sweep holds it.
  level = config.data.noise_std if config.data.noise_std in levels else levels[0]
  fig3_rows = [r for r in rows if r["scenario"] != "noisy" or r["noise"] == level]
  metric_writers.write_text(
    os.path.join(workdir, f"summary{suffix}.md"),
    report.summary_markdown(fig3_rows, scenarios, samplings, title),
  )
  report.plot_fig3(fig3_rows, scenarios, samplings, os.path.join(workdir, f"fig3{suffix}.png"))
  names = (f"results{suffix}.csv", f"summary{suffix}.md", f"fig3{suffix}.png")
  if {"reg", "regcls"} <= {r["method"] for r in fig3_rows}:  # the models validation selects
    metric_writers.write_text(
      os.path.join(workdir, f"selected{suffix}.md"),
      selected.selected_markdown(fig3_rows, scenarios, samplings, title),
    )
    names += (f"selected{suffix}.md",)
  if figures.lambda_sweep(fig3_rows):
    metric_writers.write_text(
      os.path.join(workdir, f"lambda{suffix}.md"),
      figures.lambda_markdown(fig3_rows, scenarios, samplings, title),
    )
    figures.plot_fig4(fig3_rows, scenarios, samplings, os.path.join(workdir, f"fig4{suffix}.png"))
    names += (f"lambda{suffix}.md", f"fig4{suffix}.png")
  if len(levels) > 1 and "noisy" in scenarios:
    metric_writers.write_text(
      os.path.join(workdir, f"noise{suffix}.md"), figures.noise_markdown(rows, samplings, title)
    )
    figures.plot_fig5(rows, samplings, os.path.join(workdir, f"fig5{suffix}.png"))
    names += (f"noise{suffix}.md", f"fig5{suffix}.png")
  if {r["method"] for r in rows} - {"reg", "regcls"}:  # baselines: the methods comparison
    metric_writers.write_text(
      os.path.join(workdir, f"methods{suffix}.md"),
      report.methods_markdown(rows, scenarios, samplings, title),
    )
    report.plot_methods(rows, scenarios, samplings, os.path.join(workdir, f"methods{suffix}.png"))
    names += (f"methods{suffix}.md", f"methods{suffix}.png")
  logging.info("wrote %s", ", ".join(os.path.join(workdir, n) for n in names))


def write_predictions(rows, flat_params: dict, config, cache: plan.DatasetCache, path: str) -> None:
  """fig7.png: the predictions over x in [-1, 1] of reg, reg+cls and reg+cls bal. (the
  variants' best (K, lambda) on validation) for every dataset of the rows (paper Fig. 7)."""
  chosen = figures.prediction_models(rows)
  positions = sorted(p for models in chosen.values() for p in models.values())
  x = np.linspace(-1.0, 1.0, 2001, dtype=np.float32)
  by_group: dict[str, list[int]] = {}
  for p in positions:
    by_group.setdefault(rows[p]["group"], []).append(p)
  predictions = {}
  for group, members in by_group.items():
    runs = [plan.Run.from_row(rows[p]) for p in members]
    template = program.param_template(config.hidden, runs[0].num_classes)
    stacked = pytrees.take(
      pytrees.unflatten(template, flat_params[group]), [rows[p]["index"] for p in members]
    )
    out = program.predict_group(group, runs, stacked, x, cache, config)
    predictions.update(zip(members, out))
  datasets = {}
  for key in chosen:
    train = cache.get(*key).train
    datasets[key] = (train.x, train.y, synthetic1d.functions()[key[2]](x.astype(np.float64)))
  figures.plot_fig7(rows, predictions, x, datasets, path)
  logging.info("wrote %s", path)


def evaluate(config, workdir: str) -> list[dict]:
  """Recomputes val and test MSE of every model from the checkpoint; writes results_eval.csv."""
  workdir_lib.check_workdir(workdir)
  ckpt_dir = os.path.join(workdir, "checkpoints")
  params, meta = checkpoint.restore_for_eval(ckpt_dir)
  rows = [dict(r) for r in meta["rows"]]
  cache = plan.DatasetCache(synthetic1d.Sizes(**config.data))
  mesh = sharding.models_mesh()
  by_group: dict[str, list[int]] = {}
  for i, r in enumerate(rows):
    by_group.setdefault(r["group"], []).append(i)
  for group, members in by_group.items():
    members.sort(key=lambda i: rows[i]["index"])  # row i's parameters are at params[index]
    if [rows[i]["index"] for i in members] != list(range(len(members))):
      raise ValueError(f"checkpoint in {ckpt_dir}: rows of group {group} do not index 0..n-1")
    runs = [plan.Run.from_row(rows[i]) for i in members]
    template = program.param_template(config.hidden, runs[0].num_classes)
    stacked = pytrees.unflatten(template, params[group])
    val, test = program.evaluate_group(group, runs, stacked, cache, config, mesh)
    for i, v, t in zip(members, val, test):
      rows[i]["val_mse"], rows[i]["test_mse"] = float(v), float(t)
  write_reports(rows, config, workdir, suffix="_eval")
  if config.get("plot_predictions"):
    write_predictions(rows, params, config, cache, os.path.join(workdir, "fig7_eval.png"))
  trained = {(r["group"], r["index"]): r["test_mse"] for r in meta["rows"]}
  diff = max(abs(trained[(r["group"], r["index"])] - r["test_mse"]) for r in rows)
  logging.info("eval: %d models; max |test MSE - trained run's| = %.3g", len(rows), diff)
  return rows
