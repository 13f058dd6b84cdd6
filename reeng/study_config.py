"""The schema of a study config (``reeng study CONFIG``): one pydantic model per section.

Every section rejects keys it does not know, so a typo (``corpuss``, ``treshold``, ``titel``)
is an error instead of a silently ignored setting. A key left empty in the YAML (``limit:``)
means "the default". To add a setting, add one line to its section's class; to add a section,
write its class and add one line to :class:`StudyConfig`.

Stages keep reading plain mappings (``ctx.section("corpus").get("limit")``):
:func:`validate_config` returns the config with values converted to their declared types and
only the keys the user wrote, so a stage's own defaults still apply.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reeng.errors import ReengError


class Section(BaseModel):
    """A config section: known keys only; ``key:`` with no value is the same as leaving it out."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_empty(cls, data: Any) -> Any:
        if data is None:
            return {}
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class GoldConfig(Section):
    defects: str | None = None  # the study's defect sheet (CSV); empty: the published file
    non_reengineering: str | None = None


class AgreementConfig(Section):
    sheet_a: str | None = None
    sheet_b: str | None = None


class CorpusConfig(Section):
    source: Literal["auto", "github", "offline"] = "auto"
    repos: Literal["gold"] | list[str] = "gold"
    api_url: str = "https://api.github.com"
    api: Literal["graphql", "rest"] = "graphql"
    max_wait: float = Field(3600, ge=0)
    offline: str = "denchmark"
    limit: int | None = Field(None, ge=1)

    @field_validator("repos", mode="before")
    @classmethod
    def _repos(cls, value: Any) -> Any:
        if value == "gold":
            return value
        if not isinstance(value, list) or not value or not all(isinstance(r, str) and r.count("/") == 1 for r in value):
            raise ValueError("either `gold` or a list of OWNER/REPO names, one or more")
        return value


class ClassifyConfig(Section):
    threshold: float = Field(0.5, ge=0, le=1)
    embedding_model: str | None = None  # a local sentence-transformers folder (optional): the text models also read embeddings
    issue_type_model: str | None = None  # a model trained on issues labeled bug / feature / question (optional): defect or not


class ReproduceConfig(Section):
    select: str | None = None
    names: list[str] = []
    cases: list[str] = []
    device: str = "auto"
    dtype: str = "fp32"
    repeat: int = Field(5, ge=1)


class AnalysisConfig(Section):
    title: str | None = None
    compare: Literal["auto", "paired", "corpus_vs_study", "none"] = "auto"  # issue 10: human vs machine labels
    formats: list[Literal["png", "pdf", "svg"]] = ["png"]  # issue 10: figure formats, png first (the report embeds it)


class ReleaseConfig(Section):
    title: str | None = None
    version: str | None = None
    license: str | None = None
    salt_file: str | None = None
    keep_identities: bool = False
    include_machine_defects: bool = False
    authors: list[str] = []




class ReuseConfig(Section):
    """The model-reuse lab (``analysis/reuse``): SeaM, defect inheritance, decomposition."""

    enabled: bool = True
    setting: Literal["tiny", "small", "large"] = "small"
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    seeds: list[Annotated[int, Field(ge=0, le=2**32 - 1)]] = []  # what numpy and scikit-learn accept
    experiments: list[Literal["seam", "inherit", "decompose"]] = []


class StudyConfig(Section):
    name: str | None = None
    out: str | None = None
    stages: list[str] | None = None
    gold: GoldConfig = GoldConfig()
    agreement: AgreementConfig = AgreementConfig()
    corpus: CorpusConfig = CorpusConfig()
    classify: ClassifyConfig = ClassifyConfig()
    reproduce: ReproduceConfig = ReproduceConfig()
    reuse: ReuseConfig = ReuseConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    release: ReleaseConfig = ReleaseConfig()

    @field_validator("stages")
    @classmethod
    def _stages(cls, value: list[str] | None) -> list[str] | None:
        from reeng.study import STAGES

        unknown = [s for s in value or [] if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}")
        return value


def _section_model(loc: tuple[Any, ...]) -> type[BaseModel]:
    model: type[BaseModel] = StudyConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            break
    return model


def _allowed(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


def _describe(error: dict[str, Any]) -> str:
    """One problem, naming its key and what is allowed there."""
    loc = tuple(error["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        model = _section_model(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        where = f"in section `{'.'.join(str(p) for p in loc[:-1])}`" if len(loc) > 1 else "at the top level"
        return f"unknown key `{loc[-1]}` {where} (allowed: {_allowed(model)}){hint}"
    if kind == "literal_error":
        return f"{key}: {value!r} is not allowed (allowed: {error['ctx']['expected'].replace(chr(39), '')})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{key}: must be a mapping of settings, got {type(value).__name__} (allowed keys: {_allowed(_section_model(loc))})"
    message = str(error["msg"]).removeprefix("Value error, ").replace("Input should be", "should be")
    return f"{key}: {message} (got {value!r:.60})"


def validate_config(raw: Any, source: str = "study config") -> dict[str, Any]:
    """The config, checked against the schema; a :class:`ReengError` naming every problem otherwise."""
    if not isinstance(raw, dict):
        raise ReengError(f"{source}: a study config is a mapping of settings, got {type(raw).__name__}")
    try:
        model = StudyConfig.model_validate(raw)
    except ValidationError as exc:
        problems = list(dict.fromkeys(_describe(e) for e in exc.errors()))
        raise ReengError(f"{source}: " + "; ".join(problems)) from None
    return model.model_dump(exclude_unset=True)
