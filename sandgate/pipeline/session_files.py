"""Files of a session's `/work`, top to bottom: `PUT` (the caller's live session -> the path
rules and the policy's caps -> a text file screened at stage `code` -> written in the session's
turn -> one audit record -> 201) and `GET` (-> read in its turn -> a text file screened at stage
`output` -> one audit record -> the bytes).

Exactly as code and output: a `redact` writes (or returns) the file with its findings replaced,
a `block` writes (returns) nothing and answers 403 `screening_blocked`. A file that is not
UTF-8 text is binary and cannot be screened; it is capped and hashed like any other. The audit
record holds the path, size and sha256 of what was written or returned. A node that does not
hold the session hands the call to the worker that does (`session_route`).
"""

from __future__ import annotations

import hashlib

from guards import Action, Stage
from sandbox.base import SessionEnded
from sandbox.bundle import BundleError, safe_relative_path
from sandgate.audit.auditor import Auditor
from sandgate.errors import FileMissing, InvalidInput, PayloadTooLarge, ScreeningBlocked
from sandgate.models import FileWritten
from sandgate.pipeline import session_route
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.screening import Screened, screen_texts
from sandgate.services import Services
from sandgate.sessions.manager import LiveSession
from sandgate.sessions.registry import SessionRecord

__all__ = ["download", "upload"]


def _path(path: str) -> str:
    try:
        return str(safe_relative_path(path))
    except BundleError as exc:
        raise InvalidInput(str(exc), details=[{"loc": ["path"], "msg": str(exc)}]) from None


async def _screened(
    services: Services, caller: Caller, live: LiveSession, path: str, data: bytes, stage: Stage
) -> tuple[bytes, Screened | None]:
    action = "session.file.upload" if stage is Stage.CODE else "session.file.download"
    """`data` as screening at `stage` lets it through; ScreeningBlocked on a `block`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data, None  # binary: not text, nothing to screen
    screened = await screen_texts(
        services.screener,
        {f"file:{path}": text},
        stage,
        live.policy.policy.screening,
        tenant=caller.key.tenant,
        metrics=services.metrics,
    )
    if screened.verdict is Action.BLOCK:
        await _record(services, caller, live, action, path, b"", screened)
        raise ScreeningBlocked(
            f"screening blocked the file: {screened.stage.summary()}",
            details=[f.model_dump(mode="json") for f in screened.stage.findings[:20]],
        )
    return screened.shown(f"file:{path}").encode("utf-8"), screened


async def _record(
    services: Services,
    caller: Caller,
    live: LiveSession,
    action: str,
    path: str,
    data: bytes,
    screened: Screened | None,
) -> None:
    verdict = screened.verdict.value if screened else "allow"
    await caller.record(
        services.auditor,
        Auditor.event(
            action,
            key=caller.key,
            request_id=caller.request_id,
            client=caller.client,
            policy=live.policy,
            verdict=verdict,
            status="withheld" if verdict == "block" else "ok",
            details={
                "session_id": live.record.id,
                "path": path,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "screening": screened.stage.audited() if screened else None,
            },
        ),
    )


async def upload(
    services: Services, caller: Caller, session_id: str, path: str, data: bytes
) -> FileWritten:
    """Write `data` to `/work/<path>` in the caller's session."""
    live = await services.sessions.locate(caller.key, session_id)
    if isinstance(live, SessionRecord):
        return await session_route.upload(services, caller, live, path, data)
    path = _path(path)
    rules = live.policy.policy.sessions
    if len(data) > rules.max_file_bytes:
        raise PayloadTooLarge(
            f"the file is {len(data)} bytes; the policy allows {rules.max_file_bytes}"
        )
    if live.record.files_bytes + len(data) > rules.max_files_bytes:
        raise PayloadTooLarge(
            f"the session's uploads would total {live.record.files_bytes + len(data)} bytes; "
            f"the policy allows {rules.max_files_bytes}"
        )
    await services.auditor.ensure_writable()
    data, screened = await _screened(services, caller, live, path, data, Stage.CODE)
    async with services.sessions.turn(live, services.settings.queue_timeout_s):
        try:
            await live.sandbox.write_file(path, data)
        except SessionEnded as exc:
            raise await services.sessions.lost(live, exc.reason) from None
        except OSError:  # /work is full (its disk cap), or the path is taken by a directory
            raise PayloadTooLarge(
                f"the session's /work could not take {len(data)} bytes at {path!r}"
            ) from None
        await services.sessions.used(live, files_bytes=len(data))
    await _record(services, caller, live, "session.file.upload", path, data, screened)
    return FileWritten(
        path=path,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        screening=screened.stage if screened else None,
    )


async def download(services: Services, caller: Caller, session_id: str, path: str) -> bytes:
    """The bytes of `/work/<path>` in the caller's session, as screening lets them out."""
    live = await services.sessions.locate(caller.key, session_id)
    if isinstance(live, SessionRecord):
        return await session_route.download(services, caller, live, path)
    path = _path(path)
    await services.auditor.ensure_writable()
    limit = live.policy.policy.sessions.max_file_bytes
    async with services.sessions.turn(live, services.settings.queue_timeout_s):
        try:
            data = await live.sandbox.read_file(path, limit)
        except FileNotFoundError:
            raise FileMissing(f"no file {path!r} in the session's /work") from None
        except ValueError:
            raise PayloadTooLarge(f"the file is larger than the policy's {limit} bytes") from None
        except SessionEnded as exc:
            raise await services.sessions.lost(live, exc.reason) from None
        await services.sessions.used(live)
    data, screened = await _screened(services, caller, live, path, data, Stage.OUTPUT)
    await _record(services, caller, live, "session.file.download", path, data, screened)
    return data
