"""The two kinds of thing ``conf/protocol/<name>.yaml`` builds (its ``_target_``).

* :class:`~speechret.evaluate.protocols.Protocol` — a *retrieval protocol*: ``build(data)`` turns
  the evaluation set into a :class:`~speechret.evaluate.protocols.Trial` (queries, database,
  relevance); the runner scores the checkpoint's deep hash and the baselines on it
  (:func:`speechret.evaluate.retrieval.run_retrieval`).
* :class:`Study` — an evaluation that is not one query/database ranking (``hash_length``,
  ``encryption``, ``retrieval_time``: :mod:`speechret.evaluate.studies`): it runs itself,
  ``run(context) -> Result``, and goes through the same report writer.

The runner tells them apart by type (:func:`kind_of`); anything else is a
:class:`~speechret.errors.ConfigError` naming the ``protocol`` key.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Literal

from speechret.errors import ConfigError
from speechret.evaluate.protocols import Protocol

if TYPE_CHECKING:
    from speechret.evaluate.report import Result
    from speechret.evaluate.runner import Context

__all__ = ["Protocol", "Study", "kind_of"]


class Study(abc.ABC):
    """Base class of the self-running evaluations: ``run(ctx)`` → a
    :class:`~speechret.evaluate.report.Result` (flat metrics, report sections, plots), given the
    run's :class:`~speechret.evaluate.runner.Context` (config, output folder, checkpoint and
    evaluation-set loaders); ``describe()`` → the report's header lines.
    """

    name = "study"

    @abc.abstractmethod
    def run(self, ctx: Context) -> Result:
        """Run the study; write its plots under ``ctx.out_dir``."""

    def describe(self) -> dict[str, Any]:
        return {}


def describe(evaluation: Protocol | Study) -> dict[str, Any]:
    """``evaluation.describe()``; ``{}`` for an evaluation without one."""
    fn = getattr(evaluation, "describe", None)
    return dict(fn()) if callable(fn) else {}


def kind_of(evaluation: Any, key: str = "protocol") -> Literal["study", "protocol"]:
    """``"study"`` for a :class:`Study`, ``"protocol"`` for a retrieval :class:`Protocol`; a
    :class:`~speechret.errors.ConfigError` naming ``key`` for anything else.  A class that is both
    (a Protocol with a ``run`` method) runs itself, as a study."""
    if isinstance(evaluation, Study):
        return "study"
    if isinstance(evaluation, Protocol):
        return "protocol"
    raise ConfigError(f"{key}: builds a {type(evaluation).__module__}.{type(evaluation).__qualname__}, which is "
                      "neither a retrieval protocol (speechret.evaluate.protocols.Protocol: build(data) -> Trial) "
                      "nor a study (speechret.evaluate.base.Study: run(context) -> Result)")
