"""Run the search's trials on Ray Tune: the same candidates and measurements, on a cluster.

Optional (`pip install tinydigits[ray]`). Without RAY_ADDRESS, Ray starts a local cluster on this
machine; with it, trials go to that cluster, whose workers need tinydigits, the toolchain and the
data. Each trial is `search.evaluate_candidate`; the chosen model is then retrained here from its
recipe and seed (same seed, same weights) to be saved as DIR/best. Each finished trial is saved to
DIR/search.json at once; no trial starts after `minutes`.

    rows = search_with_ray(ds, Budget(8192, 2048), Path("runs/search-8k"))
"""
from __future__ import annotations

import os
from pathlib import Path

from .model import Recipe
from .search import Budget, best, candidates, evaluate_candidate, load_progress, row_line, save_best, save_progress

TRIAL_KEYS = ("config", "time_this_iter_s", "time_total_s", "timestamp", "training_iteration", "trial_id", "date",
              "done", "pid", "hostname", "node_ip", "time_since_restore", "iterations_since_restore", "checkpoint_dir_name",
              "experiment_tag", "timesteps_total", "episodes_total", "episode_reward_mean", "should_checkpoint")


def _trial(config: dict) -> dict:
    import tinydigits  # noqa: F401  (Keras backend, in the worker)
    from tinydigits.data import load_dataset

    recipe = Recipe.from_dict(config["recipe"])
    row, _, _ = evaluate_candidate(recipe, load_dataset(recipe.dataset, data_dir=config["data_dir"]), board=config["board"])
    return row


def search_with_ray(ds, budget: Budget, out: Path, base: Recipe = Recipe(), minutes: float = 10.0,
                    max_candidates: int | None = None, progress=print, data_dir: Path | None = None,
                    command: str = "tinydigits search --engine ray", space: str = "all") -> list[dict]:
    """As `search.search`, with each candidate a Ray Tune trial; stops starting trials after `minutes`."""
    from .atomic import claim

    with claim(out, wait=False, command=command):  # one search at a time writes DIR/search.json
        return _search_with_ray(ds, budget, out, base, minutes, max_candidates, progress, data_dir, command, space)


def _search_with_ray(ds, budget: Budget, out: Path, base: Recipe, minutes: float, max_candidates: int | None,
                     progress, data_dir: Path | None, command: str, space: str) -> list[dict]:
    import ray
    from ray import tune

    from .artifacts import resumable_folder
    from .targets import family, find

    family(find(budget.board)).require()
    out = resumable_folder(Path(out).resolve(), "search", command)
    rows = load_progress(out, base, budget.board)
    done = {r["name"] for r in rows}
    todo = [r for r in candidates(budget, base, space) if r.name not in done][:max_candidates]

    class SaveAsTheyCome(tune.Callback):  # search.json and pareto.png after every finished trial
        def on_trial_result(self, iteration, trials, trial, result, **info):
            rows.append({k: v for k, v in result.items() if k not in TRIAL_KEYS})  # the candidate's row, not Ray's own
            save_progress(out, rows, budget, base)
            progress(row_line(rows[-1], budget))

    env = {k: os.environ[k] for k in ("KERAS_BACKEND", "XLA_FLAGS") if k in os.environ}
    if "TINYDIGITS_DATA" in os.environ:  # workers start elsewhere: a relative path would not find the data
        env["TINYDIGITS_DATA"] = os.path.abspath(os.path.expanduser(os.environ["TINYDIGITS_DATA"]))
    ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    try:
        tuner = tune.Tuner(
            tune.with_resources(_trial, {"cpu": 1}),
            param_space={"recipe": tune.grid_search([r.to_dict() for r in todo]),
                         "data_dir": str(Path(data_dir).resolve()) if data_dir else None, "board": budget.board},
            tune_config=tune.TuneConfig(time_budget_s=60 * minutes),
            run_config=tune.RunConfig(storage_path=str(out / "ray"), name="trials", verbose=0,
                                      callbacks=[SaveAsTheyCome()]),
        )
        for result in tuner.fit():
            if result.error:
                raise result.error
    finally:
        ray.shutdown()
    save_progress(out, rows, budget, base)
    chosen = best(rows, budget)
    if chosen is not None and chosen["name"] in {r.name for r in todo}:
        row, result, int8 = evaluate_candidate(Recipe.from_dict(chosen["recipe"]), ds, board=budget.board)
        save_best(result, int8, out, command)
    return rows
