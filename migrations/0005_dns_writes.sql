-- The DNS records the bot wrote itself (RFC 2136 updates into a zone of `dns.update`), so
-- /dns-check can say which records are the bot's, and by which run.

CREATE TABLE dns_writes (
    id          bigserial PRIMARY KEY,
    -- The Provider domain the records are for, as DomainName normalises it.
    domain      text NOT NULL CHECK (domain = lower(domain) AND domain <> ''),
    -- The zone updated and its primary server.
    zone        text NOT NULL,
    server      text NOT NULL,
    -- The record as written: owner name (no final dot), type, TTL and value as served.
    name        text NOT NULL,
    rtype       text NOT NULL,
    ttl         integer NOT NULL,
    value       text NOT NULL,
    -- The values of that RRset the update deleted (replaced), if any.
    replaced    text[] NOT NULL DEFAULT '{}',
    run_id      uuid NOT NULL REFERENCES runs(id),
    written_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dns_writes_domain ON dns_writes (domain, written_at);
