"""What the egress package promises the sandbox: proxy variables in both spellings."""

from __future__ import annotations

from sandbox.egress import proxy_env


def test_when_proxy_env_is_built_then_both_spellings_point_at_the_forwarder() -> None:
    env = proxy_env(3128)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        assert env[name] == "http://127.0.0.1:3128"
    assert env["NO_PROXY"] == "" and env["no_proxy"] == ""
