"""Fabricated credentials in each provider's published format, for the secrets comparison.

None is a live credential. Each sample is (text, expected type of the `secrets` detector).
"""

from __future__ import annotations

__all__ = ["SECRET_SAMPLES"]

_GH = "ghp_" + "R2d2C3poBb8" * 3 + "xyz"
SECRET_SAMPLES: list[tuple[str, str]] = [
    ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "AWS_ACCESS_KEY"),
    ("AWS_ACCESS_KEY_ID=ASIAY34FZKBOKMUTVV7A", "AWS_ACCESS_KEY"),
    ('aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"', "AWS_SECRET_KEY"),
    (f"token: {_GH}", "GITHUB_TOKEN"),
    ("GH=github_pat_11ABCDEFG0" + "x1Y2z3" * 12, "GITHUB_TOKEN"),
    ("glpat-Xk3nDq9vLm2Pz8RtYw4B", "GITLAB_TOKEN"),
    ("slack_token = 'xoxb-2048-4096-AbCdEfGhIjKlMnOp'", "SLACK_TOKEN"),
    (
        "https://hooks.slack.com/services/T0ABCDEF1/B0ABCDEF2/abcdefghijklmnopqrstuvwx",
        "SLACK_TOKEN",
    ),
    ("stripe.api_key = 'sk_live_4eC39HqLyjWDarjtT1zdp7dc'", "STRIPE_KEY"),
    ("key=AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "GOOGLE_API_KEY"),
    ("OPENAI_API_KEY=sk-proj-" + "Ab3dE" * 10, "OPENAI_API_KEY"),
    (
        "openai.api_key = 'sk-" + "Zx9Yw8Vu7T" * 2 + "T3BlbkFJ" + "Qr5St6Uv7W" * 2 + "'",
        "OPENAI_API_KEY",
    ),
    ("ANTHROPIC_API_KEY=sk-ant-api03-" + "Zq9_w" * 19, "ANTHROPIC_API_KEY"),
    ("HF_TOKEN=hf_" + "AbCdEfGhIj" * 3 + "KlMn", "HUGGINGFACE_TOKEN"),
    (
        "//registry.npmjs.org/:_authToken=npm_" + "a1B2c3D4e5" * 3 + "F6g7H8",
        "PACKAGE_REGISTRY_TOKEN",
    ),
    ("SENDGRID=SG." + "a" * 22 + "." + "b" * 43, "SENDGRID_KEY"),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----",
        "PRIVATE_KEY",
    ),
    (
        "Cookie: jwt=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        "JWT",
    ),
    ("curl -H 'Authorization: Bearer 7f3kQ9vLm2Pz8RtYw4BxN6cJ' https://api", "BEARER_TOKEN"),
    ("DATABASE_URL=postgres://app:S3cr3t-Pa55@db.internal:5432/app", "PASSWORD"),
    ("mysql://root:hunter2hunter2@127.0.0.1/db", "PASSWORD"),
    ("Server=db;User Id=sa;Password=Tr0ub4dor&3;", "PASSWORD"),
    ('db_password = "correct-horse-battery"', "PASSWORD"),
    ("export PGPASSWORD=hunter2hunter2", "PASSWORD"),
    ('CLIENT_SECRET = "9dK2mQ7vX4pL8zR1"', "SECRET"),
    (
        "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=" + "A" * 86 + "==",
        "AZURE_STORAGE_KEY",
    ),
]
