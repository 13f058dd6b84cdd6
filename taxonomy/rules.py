"""Labeling rules: which evidence votes for which category, in every dimension the classifier labels.

The rules are data, written from the taxonomy's definitions and the study's findings (a CUDA
out-of-memory error is a memory-exhaustion impact of GPU usage; "lower than reported" on the
original data is a reproducibility defect with lower accuracy). They serve twice: the built-in
labeler adds up their votes, and weak supervision treats each rule as a labeling function whose
accuracy is estimated from how it agrees with the others.
"""

from __future__ import annotations

from dataclasses import dataclass

# The six taxonomy dimensions the classifier labels, and the two filter questions before them.
LABEL_DIMENSIONS = ("stage", "manifestation", "impact", "code_error", "root_cause", "reporter")
FILTER_DIMENSIONS = ("issue_type", "reengineering")
ALL_DIMENSIONS = (*FILTER_DIMENSIONS, *LABEL_DIMENSIONS)
# Filter labels (not taxonomy dimensions): what kind of issue, and whether it is a reengineering defect.
FILTER_LABELS = {"issue_type": ("defect", "feature", "question"), "reengineering": ("yes", "no")}


@dataclass(frozen=True)
class Rule:
    """If any of ``when`` (evidence keys ``kind:label``) is present, vote ``votes`` with ``weight``."""

    name: str
    when: frozenset[str]
    votes: dict[str, str]
    weight: float = 1.0


def _rule(name: str, when: str, weight: float = 1.0, **votes: str) -> Rule:
    return Rule(name, frozenset(when.split()), votes, weight)


RULES: tuple[Rule, ...] = (
    # Failures read from tracebacks.
    _rule("import_error", "exception:import", 1.5, issue_type="defect", stage="environment", manifestation="basic",
          impact="crash", code_error="external_interface", root_cause="wrong_environment_configuration"),
    _rule("library_api_error", "exception:library_api", 1.5, issue_type="defect", stage="environment",
          manifestation="basic", impact="crash", code_error="external_interface", root_cause="api_defect"),
    _rule("cuda_error", "exception:cuda", 1.2, issue_type="defect", stage="environment", impact="crash",
          manifestation="basic", root_cause="gpu_usage", code_error="external_interface"),
    _rule("out_of_memory", "exception:cuda_oom claim:oom", 1.5, issue_type="defect", impact="memory_exhaustion",
          root_cause="gpu_usage", code_error="memory_exhaustion", manifestation="basic"),
    _rule("size_mismatch", "exception:size_mismatch claim:size_mismatch", 1.5, issue_type="defect", stage="modeling",
          impact="crash", root_cause="model_weight", code_error="assignment_initialization"),
    _rule("shape_error", "exception:shape claim:shape", 1.0, issue_type="defect", impact="crash",
          code_error="data_structure", root_cause="corrupt_data", stage="data_pipeline"),
    _rule("file_error", "exception:file exception:os", 1.0, issue_type="defect", impact="crash",
          code_error="internal_interface", stage="data_pipeline", root_cause="data_preprocessing"),
    _rule("index_key_error", "exception:key exception:index", 0.8, issue_type="defect", impact="crash",
          code_error="internal_interface", stage="data_pipeline"),
    _rule("type_value_error", "exception:type exception:value", 0.8, issue_type="defect", impact="crash",
          code_error="data_structure"),
    _rule("zero_division", "exception:zero_division", 1.0, issue_type="defect", impact="numerical_instability",
          code_error="checking"),
    _rule("other_exception", "exception:runtime exception:other exception:assertion exception:not_implemented",
          0.6, issue_type="defect", impact="crash", manifestation="basic"),
    _rule("syntax_error", "exception:syntax", 1.0, issue_type="defect", code_error="syntax_error", impact="crash"),
    _rule("crash_words", "claim:crash", 0.5, issue_type="defect", impact="crash", manifestation="basic"),
    # Claims in the reporter's prose.
    _rule("cannot_reproduce", "claim:cannot_reproduce", 1.5, issue_type="defect", manifestation="reproducibility",
          impact="lower_accuracy", stage="training", reporter="re_user"),
    _rule("lower_than_reported", "claim:lower_than_reported metric:*", 1.0, issue_type="defect",
          impact="lower_accuracy", stage="training", root_cause="hyperparameters",
          code_error="algorithm_method"),
    _rule("slow", "claim:slow", 1.0, issue_type="defect", impact="lower_speed", code_error="timing_optimization",
          root_cause="gpu_usage"),
    _rule("hang", "claim:hang", 1.2, issue_type="defect", impact="hang", manifestation="basic"),
    _rule("nan_loss", "claim:nan", 1.2, issue_type="defect", impact="numerical_instability", stage="training",
          root_cause="training_configuration"),
    _rule("wrong_output", "claim:wrong_output", 1.0, issue_type="defect", impact="incorrect_functionality",
          code_error="algorithm_method"),
    _rule("nondeterminism", "claim:random", 0.8, impact="numerical_instability"),
    _rule("corrupt_data", "claim:corrupt_data", 1.0, impact="data_corruption", stage="data_pipeline",
          root_cause="training_data_quality"),
    # What the reporter did with the model.
    _rule("custom_dataset", "dataset:custom", 1.2, reporter="adaptor", manifestation="evolutionary",
          stage="data_pipeline", reengineering="yes"),
    _rule("benchmark_dataset", "dataset:coco dataset:voc dataset:imagenet dataset:cityscapes dataset:kitti", 0.6,
          reporter="re_user", reengineering="yes"),
    _rule("modified_model", "activity:modified", 1.2, reporter="enhancer", manifestation="evolutionary",
          reengineering="yes"),
    _rule("ported_model", "activity:ported", 1.2, reporter="replicator", reengineering="yes"),
    _rule("default_run", "activity:default_run", 0.8, reporter="re_user", reengineering="yes"),
    _rule("multi_gpu", "hardware:multi_gpu", 1.0, root_cause="gpu_usage", stage="training"),
    _rule("installation", "activity:install version:*", 0.8, stage="environment",
          root_cause="wrong_environment_configuration", code_error="external_interface"),
    _rule("documentation", "activity:docs", 0.6, root_cause="documentation"),
    _rule("feature_request", "activity:feature", 1.5, issue_type="feature", reengineering="no"),
    _rule("question", "activity:question", 0.8, issue_type="question"),
    # Which part of the pipeline the thread talks about.
    _rule("weights", "component:weights", 0.7, stage="modeling", root_cause="model_weight", reengineering="yes"),
    _rule("config", "component:config", 0.6, code_error="configuration", root_cause="training_configuration"),
    _rule("evaluation", "component:evaluation", 0.6, root_cause="evaluation", stage="training"),
    _rule("hyperparameters", "component:hyperparameter flag:batch-size flag:lr flag:img flag:img-size", 0.6,
          root_cause="hyperparameters", stage="training", reengineering="yes"),
    _rule("optimizer", "component:optimizer", 0.6, root_cause="optimizer", stage="training"),
    _rule("loss", "component:loss", 0.5, root_cause="loss_function", stage="training", reengineering="yes"),
    _rule("data_pipeline", "component:data", 0.6, stage="data_pipeline", root_cause="data_preprocessing",
          reengineering="yes"),
    _rule("layers", "component:layer", 0.6, stage="modeling", root_cause="layer_properties", reengineering="yes"),
    _rule("training_loop", "component:training command:train.py", 0.5, stage="training", reengineering="yes"),
    _rule("gpu", "component:gpu hardware:gpu_model", 0.4, root_cause="gpu_usage"),
    _rule("export", "component:export", 0.6, stage="environment", code_error="external_interface",
          root_cause="api_defect", reporter="enhancer"),
)

# The study's most frequent category per dimension (Jiang et al. 2024): a weak default so that a
# thread with no evidence still leans the way most defects go, never enough to pass the threshold.
PRIORS: dict[str, str] = {
    "issue_type": "defect", "reengineering": "yes", "stage": "environment", "manifestation": "basic",
    "impact": "crash", "code_error": "external_interface", "root_cause": "api_defect", "reporter": "re_user",
}
PRIOR_WEIGHT = 0.3


def firing_rules(keys: set[str] | dict[str, float]) -> list[Rule]:
    """The rules whose evidence is present (a ``kind:*`` key stands for any label of that kind)."""
    present = set(keys)
    return [r for r in RULES if r.when & present]


def check_rules(categories: dict[str, list[str]]) -> list[str]:
    """Votes naming a category the dimension does not have (empty when the rules are consistent)."""
    problems = []
    for rule in RULES:
        for dim, cat in rule.votes.items():
            if cat not in categories.get(dim, ()):
                problems.append(f"{rule.name}: {dim}={cat}")
    return problems
