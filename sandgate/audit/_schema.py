"""The tables, indexes and append-only triggers of both backends (schema version 1).

Three tables: `audit_records` (the chain; `prev_hash` UNIQUE so it cannot fork),
`audit_checkpoints` (signed statements, keyed by seq and reason) and `audit_head` (one row:
the last seq, hash and time handed out). Triggers refuse UPDATE and DELETE (and, on
PostgreSQL, TRUNCATE) except deleting records, and superseded checkpoints, that a `prune`
checkpoint covers; the head row may only move forward.
"""

from __future__ import annotations

from sandgate.audit.chain import GENESIS

__all__ = ["POSTGRES_SCHEMA", "SCHEMA_VERSION", "SQLITE_SCHEMA"]

SCHEMA_VERSION = 1


def _tables(seq: str) -> str:
    """The three tables, their indexes and the genesis head row; `seq` is the sequence type."""
    return f"""
CREATE TABLE audit_records (
    seq {seq} PRIMARY KEY, id TEXT NOT NULL UNIQUE, time TEXT NOT NULL,
    action TEXT NOT NULL, verdict TEXT, status TEXT, tenant TEXT, key_id TEXT, key_name TEXT,
    policy_name TEXT, policy_hash TEXT, request_id TEXT, client TEXT,
    content TEXT NOT NULL, details TEXT NOT NULL,
    prev_hash TEXT NOT NULL UNIQUE, hash TEXT NOT NULL
);
CREATE INDEX audit_records_time ON audit_records (time);
CREATE INDEX audit_records_tenant ON audit_records (tenant, seq);
CREATE INDEX audit_records_key ON audit_records (key_id, seq);
CREATE INDEX audit_records_action ON audit_records (action, seq);
CREATE TABLE audit_checkpoints (
    seq {seq} NOT NULL, reason TEXT NOT NULL, hash TEXT NOT NULL, time TEXT NOT NULL,
    mac TEXT NOT NULL, PRIMARY KEY (seq, reason)
);
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1), seq {seq} NOT NULL, hash TEXT NOT NULL, time TEXT
);
INSERT INTO audit_head VALUES (1, 0, '{GENESIS}', NULL);
"""


SQLITE_SCHEMA = (
    _tables("INTEGER")
    + f"""
CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: UPDATE refused'); END;
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
WHEN NOT EXISTS (SELECT 1 FROM audit_checkpoints WHERE reason = 'prune' AND seq >= OLD.seq)
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE refused outside prune'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only: UPDATE refused'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
WHEN NOT EXISTS (SELECT 1 FROM audit_checkpoints c WHERE c.reason = 'prune' AND c.seq > OLD.seq)
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only: DELETE refused'); END;
CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head WHEN NEW.seq <= OLD.seq
BEGIN SELECT RAISE(ABORT, 'audit head only moves forward'); END;
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN SELECT RAISE(ABORT, 'audit head cannot be deleted'); END;
PRAGMA user_version = {SCHEMA_VERSION};
"""
)
POSTGRES_SCHEMA = (
    _tables("BIGINT")
    + """
CREATE FUNCTION sandgate_audit_guard() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF TG_TABLE_NAME = 'audit_records' AND EXISTS (
            SELECT 1 FROM audit_checkpoints c WHERE c.reason = 'prune' AND c.seq >= OLD.seq
        ) THEN
            RETURN OLD;
        END IF;
        IF TG_TABLE_NAME = 'audit_checkpoints' AND EXISTS (
            SELECT 1 FROM audit_checkpoints c WHERE c.reason = 'prune' AND c.seq > OLD.seq
        ) THEN
            RETURN OLD;
        END IF;
    ELSIF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'audit_head' THEN
        IF NEW.seq > OLD.seq THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'sandgate audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_records_guard BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION sandgate_audit_guard();
CREATE TRIGGER audit_checkpoints_guard BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION sandgate_audit_guard();
CREATE TRIGGER audit_head_guard BEFORE UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION sandgate_audit_guard();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION sandgate_audit_guard();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION sandgate_audit_guard();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION sandgate_audit_guard();
"""
)
