#!/usr/bin/env python3
"""Lab stand-in for provider-portal.

Serves http://127.0.0.1:8080 (inside the onboard-lab netns); the lab nginx terminates TLS for
https://<slug>.my and proxies here with the Host header intact.

For Host "<slug>.my" it looks the tenant up in the platform database and answers 200 with
"Signed in as <display_name> (<slug>)" and the tenant's org context (the context switcher), or
404 "no such tenant". A slug names a Person (users.slug); when no Person has it but an Org does,
the page signs in as the Org's owner in that Org's context.

The lookup runs psql over the Unix socket as platform_app (SELECT on users/orgs/org_members
only), binding the slug with `-v slug=...` and `:'slug'`: the slug is never interpolated into SQL.

Also: GET /healthz -> 200 "ok" (no database access).

Certificate names: nginx serves one lab-CA certificate for all portal hosts. Clients do not accept
a wildcard right under a single-label TLD (*.my), so the certificate lists every <slug>.my. With
--refresh-cmd, a background thread polls the tenant slugs every --refresh-interval seconds and
runs the command (scripts/lab portal-cert) whenever a slug is missing from
<lab-dir>/portal/portal.names, so a newly onboarded tenant gets a valid name within seconds.

Usage: portal.py --lab-dir DIR [--listen 127.0.0.1] [--port 8080] [--refresh-cmd CMD]
Environment used by psql: PGHOST (socket dir), PGPORT, PGUSER, PGDATABASE, PGPASSFILE/PGPASSWORD.
"""

import argparse
import html
import http.server
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time

SLUG_HOST = re.compile(r"^([a-z0-9-]+)\.my$")

LOOKUP_SQL = r"""
WITH target AS (
    SELECT u.id, u.slug, u.display_name, NULL::uuid AS org_id
      FROM users u WHERE u.slug = :'slug'
    UNION ALL
    SELECT u.id, u.slug, u.display_name, o.id
      FROM orgs o JOIN users u ON u.id = o.owner_id
     WHERE o.slug = :'slug' AND NOT EXISTS (SELECT 1 FROM users WHERE slug = :'slug')
)
SELECT json_build_object(
    'slug', t.slug,
    'display_name', t.display_name,
    'org_context', t.org_id,
    'orgs', coalesce((
        SELECT json_agg(json_build_object(
                   'id', o.id, 'slug', o.slug, 'name', o.name, 'role', m.role,
                   'members', (SELECT json_agg(json_build_object(
                                          'slug', mu.slug, 'display_name', mu.display_name,
                                          'role', mm.role) ORDER BY mm.role DESC, mu.slug)
                                 FROM org_members mm JOIN users mu ON mu.id = mm.user_id
                                WHERE mm.org_id = o.id))
                   ORDER BY o.slug)
          FROM org_members m JOIN orgs o ON o.id = m.org_id
         WHERE m.user_id = t.id), '[]'::json))
  FROM target t
 LIMIT 1;
"""


class LookupError_(Exception):
    pass


def lookup(slug):
    """Return the tenant dict for slug, or None. Raises LookupError_ on database trouble."""
    try:
        proc = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", "slug=" + slug, "-f", "-"],
            input=LOOKUP_SQL,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise LookupError_(str(err)) from err
    if proc.returncode != 0:
        raise LookupError_(proc.stderr.strip() or "psql exit %d" % proc.returncode)
    out = proc.stdout.strip()
    return json.loads(out) if out else None


def tenant_slugs():
    """All user and org slugs (a set), or None when the database cannot be read."""
    try:
        proc = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-c", "SELECT slug FROM users UNION SELECT slug FROM orgs"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return {line.strip() for line in proc.stdout.splitlines() if re.match(r"^[a-z0-9-]+$", line.strip())}


def cert_refresher(lab_dir, cmd, interval):
    names_file = os.path.join(lab_dir, "portal", "portal.names")
    while True:
        delay = interval
        slugs = tenant_slugs()
        if slugs:
            try:
                with open(names_file, encoding="utf-8") as fh:
                    names = set(fh.read().strip().split(","))
            except OSError:
                names = set()
            missing = sorted(s for s in slugs if "DNS:%s.my" % s not in names)
            if missing:
                sys.stderr.write("portal: certificate lacks %s; running %s\n" % (", ".join(missing), cmd))
                sys.stderr.flush()
                try:
                    rc = subprocess.run(shlex.split(cmd), stdin=subprocess.DEVNULL, timeout=300).returncode
                except (OSError, subprocess.TimeoutExpired) as err:
                    rc = str(err)
                if rc != 0:
                    sys.stderr.write("portal: certificate refresh failed (%s); retrying in 30s\n" % rc)
                    delay = 30
        time.sleep(delay)


def render(tenant):
    esc = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>provider-portal</title></head><body>',
        "<h1>provider-portal</h1>",
        '<p id="identity">Signed in as %s (%s)</p>' % (esc(tenant["display_name"]), esc(tenant["slug"])),
    ]
    orgs = tenant.get("orgs") or []
    if orgs:
        parts.append('<h2>Org context</h2><ul id="orgs">')
        for org in orgs:
            current = " (current)" if org["id"] == tenant.get("org_context") else ""
            parts.append(
                '<li data-org="%s">%s (%s), %s%s<ul>'
                % (esc(org["slug"]), esc(org["name"]), esc(org["slug"]), esc(org["role"]), current)
            )
            for member in org.get("members") or []:
                parts.append(
                    '<li data-member="%s">%s (%s), %s</li>'
                    % (esc(member["slug"]), esc(member["display_name"]), esc(member["slug"]), esc(member["role"]))
                )
            parts.append("</ul></li>")
        parts.append("</ul>")
    else:
        parts.append('<p id="orgs">No org memberships.</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "lab-portal/1"

    def _send(self, code, body, ctype="text/html; charset=utf-8"):
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, "ok\n", "text/plain; charset=utf-8")
            return
        host = (self.headers.get("Host") or "").strip().lower()
        host = re.sub(r":\d+$", "", host).rstrip(".")
        match = SLUG_HOST.match(host)
        if not match:
            self._send(404, "no such tenant\n", "text/plain; charset=utf-8")
            return
        try:
            tenant = lookup(match.group(1))
        except LookupError_ as err:
            sys.stderr.write("portal: lookup failed for %r: %s\n" % (host, err))
            self._send(503, "tenant lookup failed\n", "text/plain; charset=utf-8")
            return
        if tenant is None:
            self._send(404, "no such tenant\n", "text/plain; charset=utf-8")
            return
        self._send(200, render(tenant))

    do_HEAD = do_GET

    def log_message(self, fmt, *args):
        sys.stderr.write("portal: %s %s\n" % (self.address_string(), fmt % args))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-dir", required=True, help="lab directory (for the process list)")
    parser.add_argument("--listen", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--refresh-cmd", help="command that re-issues the portal certificate")
    parser.add_argument("--refresh-interval", type=float, default=2.0)
    args = parser.parse_args()
    if args.refresh_cmd:
        threading.Thread(
            target=cert_refresher, args=(args.lab_dir, args.refresh_cmd, args.refresh_interval), daemon=True
        ).start()
    server = http.server.ThreadingHTTPServer((args.listen, args.port), Handler)
    server.daemon_threads = True
    sys.stderr.write("portal: listening on %s:%d (lab %s)\n" % (args.listen, args.port, args.lab_dir))
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
