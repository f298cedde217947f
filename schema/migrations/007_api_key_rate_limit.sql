-- RULES.md section 8: each API key spends a budget of points per minute; 0 means none.
ALTER TABLE api_key ADD COLUMN rate_limit integer NOT NULL DEFAULT 6000 CHECK (rate_limit >= 0);
