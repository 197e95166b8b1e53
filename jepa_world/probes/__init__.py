"""Frozen-feature probes: how much do an encoder's features say about a task's state (reach: the
arm's joint angles) and motion? ``python -m jepa_world.probe`` runs them from the command line.

    from jepa_world.probes import ProbeConfig, run_probes, format_table
    report = run_probes(ProbeConfig(encoders=["runs/x/checkpoints/latest", "random:tiny"]))
    print(format_table(report.rows))

Modules: ``heads`` (attentive and linear probes), ``tasks`` (``state`` regression, ``motion``
classification, split by held-out episodes), ``encoders`` (spec strings -> frozen encoders,
feature extraction), ``train`` (one probe's training and metrics), ``runner`` (everything, seeds,
results file), ``config`` (the typed config).
"""

from jepa_world.probes.config import EncoderSpec, ProbeConfig, ProbeDataConfig
from jepa_world.probes.encoders import ProbeEncoder, extract_features, load_encoder
from jepa_world.probes.heads import PROBE_KINDS, AttentiveProbe, LinearProbe, build_probe
from jepa_world.probes.runner import RESULTS_FILE, ProbeReport, format_table, run_probes
from jepa_world.probes.tasks import TASK_NAMES, TaskData, build_task, motion_labels
from jepa_world.probes.train import accuracy, r2_score, train_probe

__all__ = [
    "PROBE_KINDS",
    "RESULTS_FILE",
    "TASK_NAMES",
    "AttentiveProbe",
    "EncoderSpec",
    "LinearProbe",
    "ProbeConfig",
    "ProbeDataConfig",
    "ProbeEncoder",
    "ProbeReport",
    "TaskData",
    "accuracy",
    "build_probe",
    "build_task",
    "extract_features",
    "format_table",
    "load_encoder",
    "motion_labels",
    "r2_score",
    "run_probes",
    "train_probe",
]
