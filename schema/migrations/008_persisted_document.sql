-- RULES.md section 8: operation documents by the SHA-256 of their text. Automatic
-- persisted queries store any document a client sends with its hash; `billgraph documents
-- add` stores and trusts one. Only trusted documents run under --trusted-documents-only.
CREATE TABLE persisted_document (
    sha256     bytea PRIMARY KEY CHECK (octet_length(sha256) = 32),
    body       text NOT NULL,
    trusted    boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
