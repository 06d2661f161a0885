"""Kedro namespaces that group a pipeline's nodes without renaming its data."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline


def group(package: str, name: str, nodes: list[Node | Pipeline]) -> Pipeline:
    """Nodes in the namespace ``<package>.<name>``: a collapsible group in kedro viz,
    node names ``<package>.<name>.<node>``; dataset and parameter names stay as they
    are, so catalogs, ``params:`` keys and MLflow metric names do not change."""
    return Pipeline(
        nodes, namespace=f"{package}.{name}", prefix_datasets_with_namespace=False
    )
