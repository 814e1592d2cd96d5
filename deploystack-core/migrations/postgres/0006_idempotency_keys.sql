-- Idempotency keys (deploystack_core::repository::IdempotencyKeys): the answer of a create
-- request, kept for a day under the key its client chose, so a retry gets the same answer
-- instead of a second resource.
--
-- A row is first a reservation (`fingerprint` NULL, `locked_until` set) and, once its
-- request has answered, a record of that answer. `token` identifies the reservation, so a
-- request whose lock expired cannot complete over the retry that took it over.
CREATE TABLE idempotency_keys (
    scope        text COLLATE "C" NOT NULL,
    key          text COLLATE "C" NOT NULL,
    token        text        NOT NULL,
    created_at   timestamptz NOT NULL,
    locked_until timestamptz,
    fingerprint  text,
    status       integer,
    -- The kept response headers as a JSON array of [name, value] pairs.
    headers      text,
    body         bytea,
    PRIMARY KEY (scope, key)
);

-- Purging expired records.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
