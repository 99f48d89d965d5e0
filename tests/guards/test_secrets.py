"""`secrets` through the real pipeline: the shipped YAML recognizers, text -> (type, span)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from guards import ScreeningConfig, Stage, StageConfig
from guards.rules import RecognizerSpec
from guards.secrets import MARKERS, may_hold_secret, shipped_recognizers
from tests.guards._helpers import spans
from tests.guards.conftest import Screen

# Fabricated values in each provider's published shape; none is a live credential.
GH = "ghp_" + "R2d2C3poBb8" * 3 + "xyz"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
    "-----END OPENSSH PRIVATE KEY-----"
)
FOUND = [
    ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE"),
    (
        'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
        "AWS_SECRET_KEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (f"GITHUB_TOKEN: {GH}", "GITHUB_TOKEN", GH),
    (
        "git clone https://oauth2:glpat-Xk3nDq9vLm2Pz8RtYw4B@gitlab.com/x/y",
        "GITLAB_TOKEN",
        "glpat-Xk3nDq9vLm2Pz8RtYw4B",
    ),
    ("SLACK=xoxb-2048-4096-AbCdEfGhIjKlMnOp", "SLACK_TOKEN", "xoxb-2048-4096-AbCdEfGhIjKlMnOp"),
    (
        "stripe.api_key = 'sk_live_4eC39HqLyjWDarjtT1zdp7dc'",
        "STRIPE_KEY",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    ),
    (
        "key=AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
        "GOOGLE_API_KEY",
        "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    ),
    ("OPENAI_API_KEY=sk-proj-" + "Ab3dE" * 10, "OPENAI_API_KEY", "sk-proj-" + "Ab3dE" * 10),
    (
        "x-api-key: sk-ant-api03-" + "Zq9_w" * 19,
        "ANTHROPIC_API_KEY",
        "sk-ant-api03-" + "Zq9_w" * 19,
    ),
    (f"here:\n{PEM}\nthanks", "PRIVATE_KEY", PEM),
    (f"cookie session={JWT}; path=/", "JWT", JWT),
    ("Authorization: Bearer 7f3kQ9vLm2Pz8RtYw4BxN6cJ", "BEARER_TOKEN", "7f3kQ9vLm2Pz8RtYw4BxN6cJ"),
    ("DATABASE_URL=postgres://app:S3cr3t-Pa55@db.internal:5432/app", "PASSWORD", "S3cr3t-Pa55"),
    ("Server=db;User Id=sa;Password=Tr0ub4dor&3;", "PASSWORD", "Tr0ub4dor&3"),
    ('db_password = "correct-horse-battery"', "PASSWORD", "correct-horse-battery"),
    ("export PGPASSWORD=hunter2hunter2", "PASSWORD", "hunter2hunter2"),
    ('CLIENT_SECRET = "9dK2mQ7vX4pL8zR1"', "SECRET", "9dK2mQ7vX4pL8zR1"),
]


@pytest.mark.parametrize(("text", "kind", "value"), FOUND)
def test_when_code_holds_a_secret_then_type_and_span_are_reported(
    screen: Screen, text: str, kind: str, value: str
) -> None:
    result = screen(text, Stage.INPUT)
    assert (kind, value) in spans(result, text)
    assert result.verdict == "block"


@pytest.mark.parametrize(
    "text",
    [
        "password = getpass.getpass()",
        'password = os.environ["DB_PASSWORD"]',
        "DB_PASSWORD=${DB_PASSWORD}",
        'api_key = "YOUR_API_KEY"',
        "postgres://user:password@localhost/db",
        "token = request.headers.get('authorization')",
        "akiaiosfodnn7example",  # AWS key ids are upper case only
        "the secret of good bread is time",
    ],
)
def test_when_code_only_names_a_secret_then_nothing_is_found(screen: Screen, text: str) -> None:
    config = ScreeningConfig(input=StageConfig(detectors=["secrets"]))
    assert screen(text, Stage.INPUT, config).findings == []


def test_when_secret_is_on_output_then_default_policy_redacts_it(screen: Screen) -> None:
    text = f"token is {GH} ok"
    result = screen(text, Stage.OUTPUT)
    assert result.verdict == "redact"
    assert result.text == "token is <GITHUB_TOKEN> ok"


def test_when_token_is_hidden_with_zero_width_chars_then_it_is_still_found(
    screen: Screen,
) -> None:
    text = "key AKIA\u200bIOSFODNN7\u200dEXAMPLE end"
    result = screen(text)
    assert ("AWS_ACCESS_KEY", "AKIA\u200bIOSFODNN7\u200dEXAMPLE") in spans(result, text)


def test_when_policy_adds_a_pattern_then_it_is_detected(screen: Screen) -> None:
    spec = RecognizerSpec.model_validate(
        {
            "name": "Acme key",
            "supported_entity": "ACME_KEY",
            "patterns": [{"name": "acme", "regex": r"\bacme_[0-9a-f]{16}\b", "score": 0.9}],
        }
    )
    config = ScreeningConfig(
        input=StageConfig(detectors=["secrets"], actions={"ACME_KEY": "redact"}),
        secret_patterns=[spec],
    )
    text = "use acme_0123456789abcdef here"
    result = screen(text, Stage.INPUT, config)
    assert spans(result, text) == {("ACME_KEY", "acme_0123456789abcdef")}
    assert result.text == "use <ACME_KEY> here"
    # The shipped recognizers still run beside it, and other policies do not see it.
    assert screen(text, Stage.INPUT).findings == []


@pytest.mark.parametrize(
    "regex",
    ["(unclosed", "a{2,1}", "(?<=x"],
)
def test_when_policy_pattern_does_not_compile_then_policy_is_rejected(regex: str) -> None:
    with pytest.raises(ValidationError, match="regex does not compile"):
        RecognizerSpec.model_validate(
            {
                "name": "bad",
                "supported_entity": "BAD_KEY",
                "patterns": [{"name": "bad", "regex": regex, "score": 0.5}],
            }
        )


PROSE_PASSWORDS = [
    ("my password is hunter2, don't tell", "hunter2"),
    ("The wifi password is Tr0ub4dor&3.", "Tr0ub4dor&3"),
    ("pwd: xyz9", "xyz9"),
    ("Login bob, Password: S3cret!", "S3cret!"),
    ("PIN=4711 for the door", "4711"),
    ("Das Passwort ist S3hr-geheim.", "S3hr-geheim"),
    ("mot de passe est azerty123", "azerty123"),
]


@pytest.mark.parametrize(("text", "value"), PROSE_PASSWORDS)
def test_when_a_password_is_written_in_prose_then_its_value_is_found(
    screen: Screen, text: str, value: str
) -> None:
    result = screen(text)
    assert ("PASSWORD", value) in spans(result, text)
    assert value not in result.redacted_text


@pytest.mark.parametrize(
    "text",
    [
        "The password is required to log in.",
        "Your password is too short.",
        "def login(user: str, password: str) -> bool:",
        "password: ${DB_PASSWORD}",
        "Enter your PIN: ****",
        "Reset the password is easy: click the link.",
    ],
)
def test_when_prose_only_mentions_a_password_then_nothing_is_found(
    screen: Screen, text: str
) -> None:
    assert not any(f.type == "PASSWORD" for f in screen(text).findings)


def test_when_markers_are_listed_then_every_shipped_recognizer_has_them() -> None:
    assert set(MARKERS) == {spec.name for spec in shipped_recognizers()}


@pytest.mark.parametrize(
    "text", [text for text, _kind, _value in FOUND] + [t for t, _v in PROSE_PASSWORDS]
)
def test_when_a_text_holds_a_secret_then_the_prefilter_lets_it_through(text: str) -> None:
    assert may_hold_secret(text)


def test_when_prose_holds_no_marker_then_presidio_is_not_called() -> None:
    from tests.bench.bench_guards import texts

    assert not may_hold_secret("The quick brown fox jumps over the lazy dog. " * 20)
    assert not may_hold_secret(texts()["clean 1 KB"])
