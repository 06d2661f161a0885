"""Project settings: hooks and the configuration loader.

See https://docs.kedro.org/en/stable/configure/configuration_basics/ for the defaults.
"""

import os

from medlstm.core.preflight import PreflightChecksHook
from medlstm.tracking.hooks import (
    ExperimentPerPipelineHook,
    RunLockHook,
    TrackingServerCheckHook,
)
from medlstm.tracking.offline import TrackingOutboxHook
from medlstm.tracking.run_page import RunPageHook

# Tuple order does not decide which hook runs first; pluggy's tryfirst/trylast does.
HOOKS = (
    TrackingServerCheckHook(),
    RunLockHook(),
    ExperimentPerPipelineHook(),
    PreflightChecksHook(),
    TrackingOutboxHook(),
    RunPageHook(),
)


def _tracking_uri(default: str) -> str:
    """MLFLOW_TRACKING_URI when set (a team server), else the embedded default."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default


CONFIG_LOADER_ARGS = {
    # Kedro keeps `oc.env` for credentials only; this resolver reads one variable.
    "custom_resolvers": {"tracking_uri": _tracking_uri},
    "base_env": "base",
    "default_run_env": "local",
    # An environment (conf/full) overrides single keys of a parameters block
    # instead of replacing the whole block.
    "merge_strategy": {"parameters": "soft"},
    "config_patterns": {
        "mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"],
    },
}
