"""The taxonomy as data: every instrument dimension, stable ids, aliases, the JSON form."""

from __future__ import annotations

import json

import pytest

from taxonomy.model import UnknownLabel, label_key, load_taxonomy

EXPECTED_DIMENSIONS = ["framework", "repo_type", "project_type", "reporter", "same_code", "same_data",
                       "stage", "manifestation", "impact", "code_error", "root_cause"]


def test_every_dimension_of_the_instrument_is_present():
    tax = load_taxonomy()
    assert [d.id for d in tax.dimensions] == EXPECTED_DIMENSIONS
    assert tax.version


@pytest.mark.parametrize(("dim", "ids"), [
    ("stage", {"environment", "data_pipeline", "modeling", "training"}),
    ("manifestation", {"basic", "reproducibility", "evolutionary"}),
    ("reporter", {"re_user", "adaptor", "enhancer", "replicator"}),
    ("project_type", {"user_fork", "major_replication", "research_prototype"}),
    ("repo_type", {"zoo", "solo"}),
    ("impact", {"crash", "lower_accuracy", "lower_speed", "numerical_instability", "incorrect_functionality",
                "memory_exhaustion", "data_corruption", "hang", "other"}),
    ("root_cause", {"api_defect", "gpu_usage", "wrong_environment_configuration", "data_preprocessing",
                    "hyperparameters", "training_configuration", "model_weight", "corrupt_data",
                    "training_data_quality", "activation_function", "layer_properties",
                    "missing_redundant_wrong_layer", "network_structure", "multiple_initialization",
                    "optimizer", "loss_function", "evaluation", "other_training_process", "documentation", "other"}),
])
def test_instrument_categories_have_stable_ids(dim, ids):
    dimension = load_taxonomy().dimension(dim)
    labels = {c.id for c in dimension.categories if c.is_label}
    assert ids <= labels


def test_code_error_has_the_eleven_instrument_types_and_marks_the_data_extras():
    dim = load_taxonomy().dimension("code_error")
    assert len([c for c in dim.categories if c.origin == "instrument"]) == 11
    assert dim.category("memory_exhaustion").origin == "data"
    assert dim.category("syntax_error").origin == "data"
    assert "external_interface" in dim.ids and "assignment_initialization" in dim.ids


def test_root_cause_hierarchy_reaches_every_leaf_from_a_group():
    dim = load_taxonomy().dimension("root_cause")
    assert dim.ancestors("layer_properties") == ["layers", "modeling"]
    assert dim.ancestors("gpu_usage") == ["environment"]
    assert set(dim.children("data_pipeline")) == {"data_preprocessing", "corrupt_data", "training_data_quality"}
    assert set(dim.children("training")) == {"optimizer", "loss_function", "evaluation", "hyperparameters",
                                             "training_configuration", "other_training_process"}


def test_low_frequency_is_a_bucket_not_a_category():
    tax = load_taxonomy()
    for dim in ("impact", "root_cause"):
        cat = tax.dimension(dim).category("low_frequency")
        assert cat.origin == "bucket" and not cat.is_label


@pytest.mark.parametrize(("dim", "raw", "expected"), [
    ("framework", "Pytorch", "pytorch"),
    ("framework", "pytorch", "pytorch"),
    ("framework", "\x08PyTorch", "pytorch"),
    ("framework", "_x0008_PyTorch", "pytorch"),
    ("root_cause", "GPU Usage Bug", "gpu_usage"),
    ("root_cause", "GPU usage bug  ", "gpu_usage"),
    ("same_data", "no ", "no"),
    ("project_type", 'User "fork"', "user_fork"),
    ("impact", "Bad Performance (Low Accuracy)", "lower_accuracy"),
    ("impact", "Low frequency type", "low_frequency"),
    ("stage", "Data Pipeline", "data_pipeline"),
])
def test_aliases_normalize_to_ids(dim, raw, expected):
    assert load_taxonomy().dimension(dim).normalize(raw) == expected


def test_unknown_label_names_dimension_and_value():
    with pytest.raises(UnknownLabel, match="stage.*'Deployment'"):
        load_taxonomy().dimension("stage").normalize("Deployment")


def test_label_key_ignores_case_space_and_control_characters():
    assert label_key("  GPU\tUsage  Bug\x08 ") == label_key("gpu usage bug")


def test_taxonomy_show_json_lists_dimensions_with_ids_and_categories(reeng):
    result = reeng("taxonomy", "show", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    stage = next(d for d in payload["dimensions"] if d["id"] == "stage")
    assert [c["id"] for c in stage["categories"]][:4] == ["environment", "data_pipeline", "modeling", "training"]
    assert all(c["definition"] for d in payload["dimensions"] for c in d["categories"])
