-- The notifier's tables (clair-api.md 4.3), in schema "notifier" (search_path set by the runner).

-- A notification set: what one update operation changed for the indexed manifests.
CREATE TABLE notification (
    id uuid PRIMARY KEY
);

-- One notification of a set; `body` is its JSON without the id (which is this row's id).
CREATE TABLE notification_body (
    id uuid PRIMARY KEY,
    notification_id uuid NOT NULL REFERENCES notification (id) ON DELETE CASCADE,
    body jsonb NOT NULL
);
-- Pages walk a set in body id order.
CREATE INDEX notification_body_set_idx ON notification_body (notification_id, id);

-- The matcher's update operations this notifier has processed.
CREATE TABLE notifier_update_operation (
    uo_id uuid PRIMARY KEY,
    updater text NOT NULL,
    ts timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifier_update_operation_updater_idx ON notifier_update_operation (updater, ts);

CREATE TYPE receipt_status AS ENUM ('created', 'delivered', 'delivery_failed', 'deleted');

-- One per processed update operation: where its notification set is in its delivery.
CREATE TABLE receipt (
    notification_id uuid PRIMARY KEY REFERENCES notification (id) ON DELETE CASCADE,
    uo_id uuid NOT NULL REFERENCES notifier_update_operation (uo_id) ON DELETE CASCADE,
    status receipt_status NOT NULL,
    ts timestamptz NOT NULL DEFAULT now(),
    details jsonb,
    -- Not in Clair, which retries a failed delivery on every tick forever: failures so far,
    -- and when the next attempt is due (exponential backoff with a cap, see delivery/).
    attempts integer NOT NULL DEFAULT 0,
    retry_at timestamptz
);
CREATE UNIQUE INDEX receipt_uo_idx ON receipt (uo_id);
CREATE INDEX receipt_status_idx ON receipt (status);
