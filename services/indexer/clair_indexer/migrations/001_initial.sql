-- The indexer's model (clair-api.md 4.1): manifests, layers, per-layer scan artifacts,
-- stored reports, and the manifest index used to answer affected_manifest.
CREATE TABLE manifest (
    id bigserial PRIMARY KEY,
    hash text NOT NULL UNIQUE
);

CREATE TABLE layer (
    id bigserial PRIMARY KEY,
    hash text NOT NULL UNIQUE
);

CREATE TABLE manifest_layer (
    manifest_id bigint NOT NULL REFERENCES manifest (id) ON DELETE CASCADE,
    layer_id bigint NOT NULL REFERENCES layer (id) ON DELETE CASCADE,
    i integer NOT NULL,
    PRIMARY KEY (manifest_id, i)
);
CREATE INDEX manifest_layer_layer_id ON manifest_layer (layer_id);

CREATE TABLE scanner (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    version text NOT NULL,
    kind text NOT NULL,
    UNIQUE (name, version, kind)
);

CREATE TABLE scanned_manifest (
    manifest_id bigint NOT NULL REFERENCES manifest (id) ON DELETE CASCADE,
    scanner_id bigint NOT NULL REFERENCES scanner (id) ON DELETE CASCADE,
    PRIMARY KEY (manifest_id, scanner_id)
);

CREATE TABLE scanned_layer (
    layer_id bigint NOT NULL REFERENCES layer (id) ON DELETE CASCADE,
    scanner_id bigint NOT NULL REFERENCES scanner (id) ON DELETE CASCADE,
    PRIMARY KEY (layer_id, scanner_id)
);

CREATE TABLE indexreport (
    manifest_id bigint PRIMARY KEY REFERENCES manifest (id) ON DELETE CASCADE,
    state text NOT NULL,
    scan_result jsonb NOT NULL
);

CREATE TABLE package (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    kind text NOT NULL DEFAULT '',
    version text NOT NULL DEFAULT '',
    norm_kind text NOT NULL DEFAULT '',
    norm_version text NOT NULL DEFAULT '',
    module text NOT NULL DEFAULT '',
    arch text NOT NULL DEFAULT '',
    UNIQUE (name, version, kind, module, arch)
);

CREATE TABLE package_scanartifact (
    layer_id bigint NOT NULL REFERENCES layer (id) ON DELETE CASCADE,
    package_id bigint NOT NULL REFERENCES package (id) ON DELETE CASCADE,
    source_id bigint REFERENCES package (id) ON DELETE CASCADE,
    scanner_id bigint NOT NULL REFERENCES scanner (id) ON DELETE CASCADE,
    package_db text NOT NULL DEFAULT '',
    repository_hint text NOT NULL DEFAULT '',
    filepath text NOT NULL DEFAULT '',
    cpe text NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX package_scanartifact_unique ON package_scanartifact
    (layer_id, package_id, coalesce(source_id, 0), scanner_id, package_db, filepath);

CREATE TABLE dist (
    id bigserial PRIMARY KEY,
    name text NOT NULL DEFAULT '',
    did text NOT NULL DEFAULT '',
    version text NOT NULL DEFAULT '',
    version_code_name text NOT NULL DEFAULT '',
    version_id text NOT NULL DEFAULT '',
    arch text NOT NULL DEFAULT '',
    cpe text NOT NULL DEFAULT '',
    pretty_name text NOT NULL DEFAULT '',
    UNIQUE (name, did, version, version_code_name, version_id, arch, cpe, pretty_name)
);

CREATE TABLE dist_scanartifact (
    dist_id bigint NOT NULL REFERENCES dist (id) ON DELETE CASCADE,
    scanner_id bigint NOT NULL REFERENCES scanner (id) ON DELETE CASCADE,
    layer_id bigint NOT NULL REFERENCES layer (id) ON DELETE CASCADE,
    PRIMARY KEY (layer_id, scanner_id, dist_id)
);

CREATE TABLE repo (
    id bigserial PRIMARY KEY,
    name text NOT NULL DEFAULT '',
    key text NOT NULL DEFAULT '',
    uri text NOT NULL DEFAULT '',
    cpe text NOT NULL DEFAULT '',
    UNIQUE (name, key, uri, cpe)
);

CREATE TABLE repo_scanartifact (
    repo_id bigint NOT NULL REFERENCES repo (id) ON DELETE CASCADE,
    scanner_id bigint NOT NULL REFERENCES scanner (id) ON DELETE CASCADE,
    layer_id bigint NOT NULL REFERENCES layer (id) ON DELETE CASCADE,
    PRIMARY KEY (layer_id, scanner_id, repo_id)
);

-- Paths a layer deletes (whiteouts) or hides (opaque directories), for coalescing.
CREATE TABLE layer_whiteout (
    layer_id bigint NOT NULL REFERENCES layer (id) ON DELETE CASCADE,
    path text NOT NULL,
    opaque boolean NOT NULL,
    PRIMARY KEY (layer_id, path, opaque)
);

CREATE TABLE manifest_index (
    id bigserial PRIMARY KEY,
    package_id bigint NOT NULL REFERENCES package (id) ON DELETE CASCADE,
    dist_id bigint REFERENCES dist (id) ON DELETE CASCADE,
    repo_id bigint REFERENCES repo (id) ON DELETE CASCADE,
    manifest_id bigint NOT NULL REFERENCES manifest (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX manifest_index_unique ON manifest_index
    (package_id, coalesce(dist_id, 0), coalesce(repo_id, 0), manifest_id);
CREATE INDEX manifest_index_manifest_id ON manifest_index (manifest_id);
