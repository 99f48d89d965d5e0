"""Redis keys and the Lua scripts that move an execution between states atomically.

    sandgate:jobs            stream, group `workers`: one entry (field `id`) per queued job
    sandgate:deliveries      stream, group `deliverers`: one entry per webhook to deliver
    sandgate:queued          sorted set: ids of jobs not yet started, by time queued
    sandgate:exec:<id>       hash: status, tenant, job, worker, times, response | error, webhook
    sandgate:events:<id>     stream the waiter reads: a streamed job's output (`line`, and
                             `withheld` when screening blocked it), then `end` (status,
                             field, payload) when it ends: the wake-up carries the answer
    sandgate:calls:<c>       stream of the session calls sent to consumer <c> (see `calls`)
    sandgate:worker:<c>      a live consumer's heartbeat (JSON), expiring after `dead_after`
    sandgate:workers         set of consumers that have beaten (pruned of dead ones)
    sandgate:dead[:<tenant>] sorted sets: executions whose webhook was dead-lettered, by time

Every transition is a compare-and-set in one script: only a `queued` job starts (so nothing
runs twice), only the worker that holds a `running` job finishes it, and a job is taken over
as "worker lost" only from the consumer that held it. The keys are on one Redis server (not a
Redis Cluster: the scripts touch several keys).
"""

from __future__ import annotations

__all__ = [
    "CANCEL",
    "DEAD",
    "DELIVERIES",
    "EVENTS_TTL_S",
    "FINISH",
    "JOBS",
    "QUEUED",
    "START",
    "SUBMIT",
    "WORKERS",
    "calls_key",
    "dead_key",
    "events_key",
    "exec_key",
    "worker_key",
]

JOBS = "sandgate:jobs"
DELIVERIES = "sandgate:deliveries"
QUEUED = "sandgate:queued"
WORKERS = "sandgate:workers"
DEAD = "sandgate:dead"


def exec_key(execution_id: str) -> str:
    """The execution's state hash."""
    return f"sandgate:exec:{execution_id}"


def events_key(execution_id: str) -> str:
    """The stream its waiter reads."""
    return f"sandgate:events:{execution_id}"


EVENTS_TTL_S = 600  # a waiter reads the events at once; a poller reads the hash


def worker_key(consumer: str) -> str:
    """A consumer's heartbeat."""
    return f"sandgate:worker:{consumer}"


def calls_key(consumer: str) -> str:
    """The stream of the session calls sent to a consumer."""
    return f"sandgate:calls:{consumer}"


def dead_key(tenant: str) -> str:
    """A tenant's dead letters."""
    return f"{DEAD}:{tenant}"


# KEYS: queued, exec, jobs. ARGV: cap, id, now, job, tenant, ttl, webhook_url.
# An id already there is a retry whose first reply was lost: queued once, never again.
SUBMIT = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], 'status', 'queued', 'tenant', ARGV[5], 'job', ARGV[4],
           'queued_at', ARGV[3], 'webhook_url', ARGV[7])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('XADD', KEYS[3], '*', 'id', ARGV[2])
return 1
"""

# KEYS: exec, queued. ARGV: id, consumer, now, lost_from ('' when freshly delivered).
# Already `running` for this consumer: a retry whose first reply was lost (a consumer gets an
# entry freshly once, and claims it from a given dead consumer once).
START = """
local f = redis.call('HMGET', KEYS[1], 'status', 'worker', 'job', 'queued_at')
if f[1] == 'running' and f[2] == ARGV[2] then
  if ARGV[4] == '' then return {'run', f[3], f[4]} end
  return {'lost', f[3], f[4]}
end
if f[1] == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[2], 'started_at', ARGV[3])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {'run', f[3], f[4]}
end
if f[1] == 'running' and ARGV[4] ~= '' and f[2] == ARGV[4] then
  redis.call('HSET', KEYS[1], 'worker', ARGV[2])
  return {'lost', f[3], f[4]}
end
return {'skip'}
"""

# KEYS: exec, events, deliveries. ARGV: consumer, status, field, payload, now, ttl, id.
FINISH = """
local f = redis.call('HMGET', KEYS[1], 'status', 'worker', 'webhook_url')
if f[1] ~= 'running' or f[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], ARGV[3], ARGV[4], 'finished_at', ARGV[5])
if f[3] and f[3] ~= '' then
  redis.call('HSET', KEYS[1], 'webhook', '{"state":"pending","attempts":0}')
  redis.call('XADD', KEYS[3], '*', 'id', ARGV[7])
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('XADD', KEYS[2], '*', 'end', ARGV[2], 'field', ARGV[3], 'payload', ARGV[4])
redis.call('EXPIRE', KEYS[2], 600)  -- EVENTS_TTL_S
return 1
"""

# KEYS: exec, queued. ARGV: id, error, now.
CANCEL = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[2], 'finished_at', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""
