"""Evidence rules: precise evidence that points at one category, per dimension and per part of the thread.

A rule names exact evidence keys (``exception:cuda_oom``, ``claim:cannot_reproduce``; no
wildcards, no generic words) and the category each dimension would take if the rule were the
whole story. Rules carry no weights: how far to trust a rule is a probability that a model
estimates (:class:`taxonomy.labelers.RuleLabeler` from a prior precision, refined by labels;
the supervised model of :mod:`taxonomy.supervised` as one feature among the n-grams). A rule
may name a category outside the study's label space (impact ``hang``); the label space maps it
into the study's ``low_frequency`` bucket or drops the vote (:mod:`taxonomy.label_space`).

Each dimension reads the part of the thread that decides it (:data:`DIMENSION_PARTS`): what the
reporter saw and who they are from the opening post and their own follow-ups; why it failed
from the whole discussion, where the diagnosis and the fix are.
"""

from __future__ import annotations

from dataclasses import dataclass

from taxonomy.evidence import Evidence

# The six taxonomy dimensions the classifier labels, and the two filter questions before them.
LABEL_DIMENSIONS = ("stage", "manifestation", "impact", "code_error", "root_cause", "reporter")
FILTER_DIMENSIONS = ("issue_type", "reengineering")
ALL_DIMENSIONS = (*FILTER_DIMENSIONS, *LABEL_DIMENSIONS)
# Filter labels (not taxonomy dimensions): what kind of issue, and whether it is a reengineering defect.
FILTER_LABELS = {"issue_type": ("defect", "feature", "question"), "reengineering": ("yes", "no")}
# Which part of the thread decides each dimension: "opening" (the reporter's) or "whole".
DIMENSION_PARTS = {"issue_type": "opening", "reengineering": "opening", "reporter": "opening", "impact": "opening",
                   "manifestation": "opening", "stage": "whole", "root_cause": "whole", "code_error": "whole"}


@dataclass(frozen=True)
class Rule:
    """If any of ``when`` (evidence keys ``kind:label``) is present, point each dimension of ``votes`` at its category."""

    name: str
    when: frozenset[str]
    votes: dict[str, str]


def _rule(name: str, when: str, **votes: str) -> Rule:
    return Rule(name, frozenset(when.split()), votes)


CRASH = {"issue_type": "defect", "impact": "crash", "manifestation": "basic"}
RULES: tuple[Rule, ...] = (
    # Failures read from tracebacks (the exception's class and message).
    _rule("import_error", "exception:import", **CRASH, stage="environment", code_error="external_interface",
          root_cause="wrong_environment_configuration"),
    _rule("library_api_error", "exception:library_api", **CRASH, stage="environment",
          code_error="external_interface", root_cause="api_defect"),
    _rule("cuda_error", "exception:cuda", **CRASH, stage="environment", code_error="external_interface",
          root_cause="gpu_usage"),
    _rule("out_of_memory", "exception:cuda_oom claim:oom", issue_type="defect", impact="memory_exhaustion",
          manifestation="basic", root_cause="gpu_usage", code_error="memory_exhaustion"),
    _rule("size_mismatch", "exception:size_mismatch claim:size_mismatch", **CRASH, stage="modeling",
          root_cause="model_weight", code_error="assignment_initialization"),
    _rule("shape_error", "exception:shape claim:shape", **CRASH, code_error="data_structure"),
    _rule("file_error", "exception:file exception:os", **CRASH, stage="data_pipeline", code_error="internal_interface",
          root_cause="data_preprocessing"),
    _rule("index_key_error", "exception:key exception:index", **CRASH, code_error="internal_interface"),
    _rule("type_value_error", "exception:type exception:value", **CRASH, code_error="data_structure"),
    _rule("zero_division", "exception:zero_division", issue_type="defect", impact="numerical_instability",
          code_error="checking"),
    _rule("syntax_error", "exception:syntax", **CRASH, code_error="syntax_error"),
    _rule("other_exception", "exception:runtime exception:other exception:assertion exception:not_implemented", **CRASH),
    _rule("crash_words", "claim:crash", **CRASH),
    # Claims in the reporter's prose.
    _rule("cannot_reproduce", "claim:cannot_reproduce claim:lower_than_reported", issue_type="defect",
          manifestation="reproducibility", impact="lower_accuracy", stage="training"),
    _rule("low_accuracy", "claim:low_accuracy", issue_type="defect", impact="lower_accuracy"),
    _rule("memory_growth", "claim:memory_growth", issue_type="defect", impact="memory_exhaustion",
          code_error="memory_exhaustion"),
    _rule("slow", "claim:slow", issue_type="defect", impact="lower_speed", code_error="timing_optimization"),
    _rule("hang", "claim:hang", issue_type="defect", impact="hang", manifestation="basic"),
    _rule("nan_loss", "claim:nan", issue_type="defect", impact="numerical_instability", stage="training",
          root_cause="training_configuration"),
    _rule("wrong_output", "claim:wrong_output", issue_type="defect", impact="incorrect_functionality",
          code_error="algorithm_method"),
    _rule("corrupt_data", "claim:corrupt_data", impact="data_corruption", stage="data_pipeline",
          root_cause="training_data_quality"),
    # What the reporter did with the model.
    _rule("custom_dataset", "dataset:custom", reporter="adaptor", manifestation="evolutionary", reengineering="yes"),
    _rule("modified_model", "activity:modified", reporter="enhancer", manifestation="evolutionary", reengineering="yes"),
    _rule("ported_model", "activity:ported", reporter="replicator", reengineering="yes"),
    _rule("default_run", "activity:default_run", reporter="re_user", reengineering="yes"),
    _rule("multi_gpu", "hardware:multi_gpu", root_cause="gpu_usage", stage="training"),
    _rule("installation", "activity:install", stage="environment", root_cause="wrong_environment_configuration",
          code_error="external_interface"),
    _rule("documentation", "activity:docs", root_cause="documentation"),
    _rule("feature_request", "activity:feature", issue_type="feature", reengineering="no"),
    _rule("question", "activity:question", issue_type="question"),
    # Which part of the pipeline the thread names, by its specific terms.
    _rule("weights", "component:weights", stage="modeling", root_cause="model_weight"),
    _rule("config", "component:config", root_cause="training_configuration"),
    _rule("evaluation", "component:evaluation", root_cause="evaluation", stage="training"),
    _rule("hyperparameters", "component:hyperparameter", root_cause="hyperparameters", stage="training"),
    _rule("optimizer", "component:optimizer", root_cause="optimizer", stage="training"),
    _rule("loss", "component:loss", root_cause="loss_function", stage="training"),
    _rule("data_pipeline", "component:data", stage="data_pipeline", root_cause="data_preprocessing"),
    _rule("layers", "component:layer", stage="modeling", root_cause="layer_properties"),
    _rule("export", "component:export", stage="environment", code_error="external_interface", root_cause="api_defect"),
)


def dimension_rules(dimension: str) -> list[Rule]:
    """The rules that point somewhere in one dimension."""
    return [r for r in RULES if dimension in r.votes]


def part_keys(evidence: list[Evidence], part: str) -> set[str]:
    """Evidence keys of one part of a thread: ``opening`` (the reporter's) or ``whole``."""
    return {e.key for e in evidence if part == "whole" or e.section.startswith(part)}


def rule_features(evidence: list[Evidence]) -> dict[str, float]:
    """Binary features of a thread for the supervised model: evidence keys and fired rules, per part."""
    out: dict[str, float] = {}
    for part in ("opening", "whole"):
        keys = part_keys(evidence, part)
        out.update((f"{part}|{k}", 1.0) for k in keys)
        out.update((f"{part}|rule:{r.name}", 1.0) for r in RULES if r.when & keys)
    return out
