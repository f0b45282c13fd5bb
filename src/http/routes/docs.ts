import type { OpenAPIHono } from '@hono/zod-openapi';
import type { AuthEnv } from '../auth.ts';

/**
 * GET /docs: the API reference, rendered in the browser from /openapi.json. Self-contained (no
 * CDN script), so it works on a relay without internet access and under a strict CSP.
 */
const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>asyncrelay API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} .op{border:1px solid #ddd;border-radius:6px;margin:.8rem 0;padding:.6rem .9rem}
.m{display:inline-block;min-width:4.5rem;font-weight:700;font-family:monospace} .p{font-family:monospace}
.get{color:#1769aa}.post{color:#2e7d32} pre{background:#f6f8fa;padding:.6rem;overflow:auto;font-size:13px}
small{color:#666} details summary{cursor:pointer}
</style></head><body>
<h1>asyncrelay API</h1><p><small>Generated from <a href="/openapi.json">/openapi.json</a>. Authenticate with <code>X-API-Key</code> or <code>Authorization: Bearer</code>.</small></p>
<div id="ops">Loading…</div>
<script>
fetch('/openapi.json').then(r => r.json()).then(doc => {
  const root = document.getElementById('ops'); root.textContent = '';
  const schemas = (doc.components && doc.components.schemas) || {};
  const resolve = s => s && s.$ref ? schemas[s.$ref.split('/').pop()] : s;
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const box = document.createElement('div'); box.className = 'op';
      const head = document.createElement('div');
      const m = document.createElement('span'); m.className = 'm ' + method; m.textContent = method.toUpperCase();
      const p = document.createElement('span'); p.className = 'p'; p.textContent = path;
      head.append(m, p); box.append(head);
      if (op.description) { const d = document.createElement('p'); d.textContent = op.description; box.append(d); }
      const body = op.requestBody && op.requestBody.content && op.requestBody.content['application/json'];
      const parts = [['Request body', body && resolve(body.schema)]];
      for (const [code, res] of Object.entries(op.responses || {})) {
        const c = res.content && Object.values(res.content)[0];
        parts.push([code + ' ' + (res.description || ''), c && resolve(c.schema)]);
      }
      for (const [label, schema] of parts) {
        if (!schema) continue;
        const det = document.createElement('details'); const s = document.createElement('summary'); s.textContent = label;
        const pre = document.createElement('pre'); pre.textContent = JSON.stringify(schema, null, 2);
        det.append(s, pre); box.append(det);
      }
      root.append(box);
    }
  }
});
</script></body></html>`;

export function registerDocsRoute(app: OpenAPIHono<AuthEnv>): void {
  app.get('/docs', (c) => c.html(PAGE));
}
