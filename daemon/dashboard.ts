/**
 * The dashboard page served by the admin API at `/`. It holds no data: the script reads the
 * token from the URL fragment (never sent to a server or written to a log) and polls
 * `/api/status` with it. `devproxy dashboard` prints the URL.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>devproxy</title>
<style>
body{font:14px system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin-bottom:1.5rem}td,th{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}
.local{color:#0a7}.remote{color:#36c}.bad{color:#c33}code{background:#f4f4f4;padding:0 .2rem}
</style></head>
<body><h1>devproxy</h1><div id="out">loading…</div>
<script>
const token = new URLSearchParams(location.hash.slice(1)).get('token');
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
async function refresh() {
  const out = document.getElementById('out');
  try {
    const res = await fetch('/api/status', { headers: { authorization: 'Bearer ' + token } });
    if (!res.ok) { out.innerHTML = '<p class="bad">' + res.status + ': open the URL printed by <code>devproxy dashboard</code></p>'; return; }
    const status = await res.json();
    out.innerHTML = status.worktrees.map((w) =>
      '<h2>' + esc(w.name) + (w.main ? ' (main)' : '') + ' — ' + esc(w.profile) + '</h2>' +
      w.diagnostics.map((d) => '<p class="bad">' + esc(d.text) + '</p>').join('') +
      '<table><tr><th>service</th><th>route</th><th>target</th><th>health</th></tr>' +
      w.services.map((s) => '<tr><td><a href="' + esc(s.url) + '">' + esc(s.host) + '</a></td><td class="' + s.route + '">' + s.route +
        (s.desired !== s.route ? ' → ' + s.desired : '') + '</td><td>' + esc(s.target ?? s.problem?.message) + '</td><td>' + esc(s.health) + '</td></tr>').join('') +
      '</table>').join('') || '<p>No repository registered: run <code>devproxy init</code> in one.</p>';
  } catch (error) { out.textContent = 'daemon unreachable: ' + error; }
}
refresh(); setInterval(refresh, 2000);
</script></body></html>
`;
