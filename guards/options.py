"""Operator settings of the screener: what the host provides, as opposed to what a policy says."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = ["GuardOptions", "NemoLLM"]


class NemoLLM(BaseModel):
    """An OpenAI-compatible LLM endpoint for NeMo's self-check rails (off unless set)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(description="Endpoint base URL, e.g. `http://127.0.0.1:8000/v1`.")
    model: str = Field(description="Model name the endpoint serves.")
    engine: str = Field("openai", description="NeMo `models[].engine` for the endpoint.")
    api_key_env: str | None = Field(
        None, description="Environment variable holding the endpoint's key, if it needs one."
    )


class GuardOptions(BaseModel):
    """How the screener is set up on this host; one per process, from the service settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spacy_model_path: Path | None = Field(
        None,
        description="Directory of an official spaCy pipeline (e.g. an unpacked "
        "`en_core_web_lg`). When set, Presidio runs it and PERSON, LOCATION, ORGANIZATION and "
        "NRP become detectable. Must exist: a missing path would make Presidio try a download.",
    )
    hash_secret: SecretStr | None = Field(
        None,
        description="Secret keying the `hash` operator: salt = HMAC-SHA256(secret, tenant), so "
        "a value maps to the same pseudonym within a tenant and to different ones across "
        "tenants. Unset: a random per-process secret (pseudonyms change on restart).",
    )
    nemo_llm: NemoLLM | None = Field(
        None, description="LLM endpoint for NeMo self-check rails; none means LLM rails are off."
    )
    offload_chars: int = Field(
        4096,
        ge=0,
        description="Texts longer than this are scanned in a worker thread, off the event loop.",
    )

    @field_validator("spacy_model_path")
    @classmethod
    def _model_path_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not (value / "meta.json").is_file():
            raise ValueError(f"no spaCy pipeline (meta.json) at {value}")
        return value

    @field_validator("hash_secret")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("hash_secret must be at least 16 characters")
        return value
