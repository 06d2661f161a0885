"""The MLflow side of a run: hooks that name and describe runs, register models, keep
one run per project folder, and an offline store for runs that lose their server.

One policy for a tracking failure: **tracking never changes a run's results, and
never loses them without saying so.**

- Before any node: a tracking server that does not answer stops the run in seconds
  with the way out (start it, or unset ``MLFLOW_TRACKING_URI``): nothing has been
  computed yet, so nothing is lost (`hooks.TrackingServerCheckHook`).
- During the run: if the server goes away, what the run would have sent goes to
  ``data/09_tracking_outbox/<run id>/`` and the run finishes; a warning at the end
  names what is waiting and the command that uploads it (`offline`).
- Decoration that is not a result (the run's name, description, dataset inputs,
  registry versions): a failed MLflow call logs a warning naming what is missing and
  the run goes on (`run_page`).

Modules: `hooks` (experiment per pipeline, run lock, server check), `run_page`
(what the MLflow UI shows, model registry), `offline` (the outbox and its upload
command), `pipeline_ml` (training pipelines that log a pyfunc and still run in
parts), `run_info` (pipeline names, dataset paths, tracking URI, read once here).
"""
