-- Which tenant each Provider site belongs to: the one place ownership guards, /cert and
-- /verify (and later an abandon runbook and a fleet of VPSes) read it from.

CREATE TABLE sites (
    -- The site's apex, as DomainName normalises it (lowercase ASCII, no final dot).
    domain       text PRIMARY KEY CHECK (domain = lower(domain) AND domain <> ''),
    -- The tenant it belongs to.
    slug         text NOT NULL,
    -- The VPS that serves it (the config's vps.name when it was recorded).
    vps          text NOT NULL,
    -- The run that created the site (deploy-config) or adopted it (adopt-site).
    run_id       uuid NOT NULL REFERENCES runs(id),
    how          text NOT NULL CHECK (how IN ('created', 'adopted')),
    -- For an adoption: the slug on record before, if the bot had one.
    adopted_from text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sites_slug ON sites (slug);
