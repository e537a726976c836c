-- The matcher's model (clair-api.md 4.2), with the newest operation of each updater kept in
-- a table maintained by the writer instead of a materialized view refreshed after each update.
CREATE TABLE update_operation (
    id bigserial PRIMARY KEY,
    ref uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    updater text NOT NULL,
    fingerprint text NOT NULL DEFAULT '',
    date timestamptz NOT NULL DEFAULT now(),
    kind text NOT NULL DEFAULT 'vulnerability'
);
CREATE INDEX update_operation_updater_date ON update_operation (updater, kind, id DESC);

CREATE TABLE latest_update_operation (
    updater text NOT NULL,
    kind text NOT NULL,
    uo_id bigint NOT NULL REFERENCES update_operation (id) ON DELETE CASCADE,
    PRIMARY KEY (updater, kind)
);

CREATE TABLE vuln (
    id bigserial PRIMARY KEY,
    hash bytea NOT NULL UNIQUE,
    updater text NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    issued timestamptz,
    links text NOT NULL DEFAULT '',
    severity text NOT NULL DEFAULT '',
    normalized_severity text NOT NULL DEFAULT 'Unknown',
    package_name text NOT NULL,
    package_version text NOT NULL DEFAULT '',
    package_module text NOT NULL DEFAULT '',
    package_arch text NOT NULL DEFAULT '',
    package_kind text NOT NULL DEFAULT '',
    dist_id text NOT NULL DEFAULT '',
    dist_name text NOT NULL DEFAULT '',
    dist_version text NOT NULL DEFAULT '',
    dist_version_code_name text NOT NULL DEFAULT '',
    dist_version_id text NOT NULL DEFAULT '',
    dist_arch text NOT NULL DEFAULT '',
    dist_cpe text NOT NULL DEFAULT '',
    dist_pretty_name text NOT NULL DEFAULT '',
    repo_name text NOT NULL DEFAULT '',
    repo_key text NOT NULL DEFAULT '',
    repo_uri text NOT NULL DEFAULT '',
    fixed_in_version text NOT NULL DEFAULT '',
    arch_operation text NOT NULL DEFAULT '',
    version_kind text NOT NULL DEFAULT '',
    vulnerable_range jsonb
);
CREATE INDEX vuln_package_name ON vuln (package_name, package_kind);

-- The link tables carry no foreign keys: a per-row check costs as much as the link itself on
-- a million-row snapshot. Deleting an operation (or a vuln / enrichment) removes its links
-- through the statement-level triggers below, and ingest.py keeps garbage collection from
-- deleting rows an update is linking (an advisory lock).
CREATE TABLE uo_vuln (
    uo bigint NOT NULL,
    vuln bigint NOT NULL,
    PRIMARY KEY (uo, vuln)
);
CREATE INDEX uo_vuln_vuln ON uo_vuln (vuln, uo);

CREATE TABLE enrichment (
    id bigserial PRIMARY KEY,
    hash bytea NOT NULL UNIQUE,
    updater text NOT NULL,
    tags text[] NOT NULL,
    data jsonb NOT NULL
);
CREATE INDEX enrichment_tags ON enrichment USING gin (tags);

CREATE TABLE uo_enrich (
    uo bigint NOT NULL,
    enrich bigint NOT NULL,
    PRIMARY KEY (uo, enrich)
);
CREATE INDEX uo_enrich_enrich ON uo_enrich (enrich, uo);

CREATE FUNCTION update_operation_unlink() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM uo_vuln WHERE uo IN (SELECT id FROM gone);
    DELETE FROM uo_enrich WHERE uo IN (SELECT id FROM gone);
    RETURN NULL;
END $$;
CREATE TRIGGER update_operation_unlink AFTER DELETE ON update_operation
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION update_operation_unlink();

CREATE FUNCTION vuln_unlink() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM uo_vuln WHERE vuln IN (SELECT id FROM gone);
    RETURN NULL;
END $$;
CREATE TRIGGER vuln_unlink AFTER DELETE ON vuln
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION vuln_unlink();

CREATE FUNCTION enrichment_unlink() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM uo_enrich WHERE enrich IN (SELECT id FROM gone);
    RETURN NULL;
END $$;
CREATE TRIGGER enrichment_unlink AFTER DELETE ON enrichment
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION enrichment_unlink();

CREATE TABLE updater_status (
    updater_name text PRIMARY KEY,
    last_attempt timestamptz NOT NULL DEFAULT now(),
    last_success timestamptz,
    last_run_succeeded boolean NOT NULL DEFAULT false,
    last_attempt_fingerprint text NOT NULL DEFAULT '',
    last_error text NOT NULL DEFAULT ''
);
