"""A benign corpus: real text already on disk, plus generated logs and JSON, all deterministic.

Sources (each sampled in sorted order with a fixed seed, so every run sees the same texts):
- prose: the Python reference's topic texts (`pydoc_data.topics`), and README / METADATA
  descriptions of the installed packages, in paragraphs of about 300-1,500 characters;
- Python: chunks of 40 lines of standard-library modules (test suites left out: they hold
  deliberate fake credentials);
- JavaScript: chunks of non-minified .js files found under /usr/lib/node_modules,
  /usr/share/javascript and the virtualenv (how many were found is reported);
- logs and JSON: generated records with timestamps, levels, UUIDs, hashes, durations,
  paths, version numbers and HTTP statuses, but no personal data.

"Benign" is enforced, not assumed: a chunk holding an e-mail address or an IPv4 literal
(real personal data by our own definition) is dropped, and the count is reported.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
import sysconfig
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BenignText", "benign_corpus"]

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_SEED = 20261126


@dataclass(frozen=True)
class BenignText:
    """One benign text and where it came from."""

    kind: str
    source: str
    text: str


def _paragraph_chunks(text: str, low: int = 300, high: int = 1500) -> Iterator[str]:
    chunk = ""
    for paragraph in re.split(r"\n\s*\n", text):
        chunk = f"{chunk}\n\n{paragraph}" if chunk else paragraph
        if len(chunk) >= low:
            yield chunk[:high]
            chunk = ""


def _line_chunks(text: str, lines: int = 40) -> Iterator[str]:
    rows = text.splitlines()
    for start in range(0, len(rows), lines):
        chunk = "\n".join(rows[start : start + lines]).strip()
        if len(chunk) >= 200:
            yield chunk[:3000]


def _sample(items: list[BenignText], count: int, rng: random.Random) -> list[BenignText]:
    return items if len(items) <= count else rng.sample(items, count)


def _prose(rng: random.Random) -> list[BenignText]:
    from pydoc_data.topics import topics

    found = [
        BenignText("prose", f"pydoc:{name}", chunk)
        for name in sorted(topics)
        for chunk in _paragraph_chunks(topics[name])
    ]
    site = Path(sysconfig.get_paths()["purelib"])
    for meta in sorted(site.glob("*.dist-info/METADATA")):
        body = meta.read_text(encoding="utf-8", errors="replace").partition("\n\n")[2]
        found += [
            BenignText("prose", f"metadata:{meta.parent.name}", c) for c in _paragraph_chunks(body)
        ]
    return _sample(found, 400, rng)


def _python(rng: random.Random) -> list[BenignText]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = [
        p
        for p in sorted(stdlib.rglob("*.py"))
        if not {"test", "tests", "idle_test", "site-packages"} & set(p.parts)
    ]
    picked = rng.sample(files, min(150, len(files)))
    found = [
        BenignText("python", str(p.relative_to(stdlib)), chunk)
        for p in picked
        for chunk in _line_chunks(p.read_text(encoding="utf-8", errors="replace"))
    ]
    return _sample(found, 300, rng)


def _javascript(rng: random.Random) -> list[BenignText]:
    roots = [Path("/usr/lib/node_modules"), Path("/usr/share/javascript"), Path(sys.prefix)]
    files = sorted(
        p
        for root in roots
        if root.is_dir()
        for p in root.rglob("*.js")
        if not p.name.endswith(".min.js") and p.is_file() and p.stat().st_size > 1000
    )
    picked = rng.sample(files, min(120, len(files)))
    found = [
        BenignText("javascript", str(p), chunk)
        for p in picked
        for chunk in _line_chunks(p.read_text(encoding="utf-8", errors="replace"))
    ]
    return _sample(found, 200, rng)


def _logs(rng: random.Random, count: int = 200) -> list[BenignText]:
    levels = ["DEBUG", "INFO", "INFO", "INFO", "WARNING", "ERROR"]
    verbs = ["GET", "POST", "PUT", "DELETE"]
    paths = ["/api/v1/items", "/health", "/api/v2/orders/{id}", "/static/app.js", "/login"]
    messages = [
        "request finished",
        "cache miss for key {key}",
        "retrying after timeout ({n}/5)",
        "worker {n} started, pid {pid}",
        "loaded config version {ver}",
        "slow query took {ms} ms",
        "upstream returned {status}",
    ]
    texts = []
    for i in range(count):
        lines = []
        for _ in range(rng.randint(5, 15)):
            stamp = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z"  # noqa: E501
            message = rng.choice(messages).format(
                key=hashlib.sha1(str(rng.random()).encode()).hexdigest()[:12],
                n=rng.randint(1, 9),
                pid=rng.randint(100, 99999),
                ver=f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}",
                ms=rng.randint(1, 9000),
                status=rng.choice([200, 201, 204, 301, 404, 429, 500, 503]),
            )
            path = rng.choice(paths).format(id=rng.randint(1, 10**6))
            lines.append(
                f"{stamp} {rng.choice(levels):7s} [{uuid.UUID(int=rng.getrandbits(128))}] "
                f"{rng.choice(verbs)} {path} {message} duration={rng.random() * 2:.3f}s"
            )
        texts.append(BenignText("log", f"generated:{i}", "\n".join(lines)))
    return texts


def _json(rng: random.Random, count: int = 200) -> list[BenignText]:
    texts = []
    for i in range(count):
        record = {
            "id": str(uuid.UUID(int=rng.getrandbits(128))),
            "created_at": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:00:00Z",
            "version": f"{rng.randint(0, 5)}.{rng.randint(0, 20)}.{rng.randint(0, 50)}",
            "sha256": hashlib.sha256(str(rng.random()).encode()).hexdigest(),
            "count": rng.randint(0, 10**6),
            "ratio": round(rng.random(), 4),
            "tags": rng.sample(["alpha", "beta", "prod", "eu", "batch", "gpu", "cache"], 3),
            "nested": {"retries": rng.randint(0, 5), "timeout_ms": rng.randint(100, 60000)},
            "epoch": rng.randint(1_600_000_000, 1_800_000_000),
        }
        texts.append(
            BenignText("json", f"generated:{i}", json.dumps(record, indent=rng.choice([None, 2])))
        )
    return texts


def benign_corpus() -> tuple[list[BenignText], int]:
    """The benign texts, and how many candidate chunks were dropped for holding PII."""
    rng = random.Random(_SEED)
    candidates = _prose(rng) + _python(rng) + _javascript(rng) + _logs(rng) + _json(rng)
    kept = [t for t in candidates if not (_EMAIL.search(t.text) or _IPV4.search(t.text))]
    return kept, len(candidates) - len(kept)
