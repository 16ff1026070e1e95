"""Distributed pair synthesis: teacher actors on Ray Data writing to a shared pair store.

    report = synthesize_pairs("builtin://scenes", 96, 256, 0, teacher_spec=spec,
                              concept="winter", prompt="make it winter", store="s3://pairs/p")
    sources, targets = report.load()

synthesize_batch (trainers.data.pairs) is the unit each actor maps; keys and the local
layout are PairStore's, so the single-machine path and this one share a cache.
"""

from trainers.synthesis.concepts import ConceptSource, check_teachers, synthesize_concepts
from trainers.synthesis.faults import CrashOnceTeacher, crash_once_factory
from trainers.synthesis.plan import Chunk, plan_chunks, plan_keys
from trainers.synthesis.report import SynthesisReport, WorkerStats
from trainers.synthesis.runner import actor_gpus, available_actors, synthesize_pairs, teacher_options
from trainers.synthesis.stores import LocalPairSink, PairSink, load_pairs, open_pair_store

__all__ = [
    "Chunk",
    "ConceptSource",
    "CrashOnceTeacher",
    "LocalPairSink",
    "PairSink",
    "SynthesisReport",
    "WorkerStats",
    "actor_gpus",
    "check_teachers",
    "available_actors",
    "crash_once_factory",
    "load_pairs",
    "open_pair_store",
    "plan_chunks",
    "plan_keys",
    "synthesize_concepts",
    "synthesize_pairs",
    "teacher_options",
]
