/**
 * The dashboard page served by the admin API at `/`. It holds no data: its script reads the
 * token from the URL fragment (never sent to a server or written to a log), opens the live event
 * stream with it and calls `/api/` with it. Everything a worktree controls (names, paths,
 * headers, file problems) is put into the page with `textContent`/text nodes, never as HTML, and
 * the Content-Security-Policy allows only this page's own script and style (no CDN, no fonts).
 */
import { createHash } from 'node:crypto';
import { PROOF_CONTEXT, PROOF_PATH } from './admin-proof.js';

/**
 * The page's half of the proof (admin-proof.ts), on WebCrypto (http://127.0.0.1 is a secure
 * context): the hex HMAC-SHA256 a daemon holding `token` and listening on `port` gives for `nonce`.
 * A constant of its own so that a unit test can run it against the daemon's half.
 */
export const PROOF_SCRIPT = `
function hex(buffer) {
  return Array.prototype.map.call(new Uint8Array(buffer), function (b) { return (b < 16 ? '0' : '') + b.toString(16); }).join('');
}
function expectedProof(token, nonce, port) {
  var encoder = new TextEncoder();
  return crypto.subtle.importKey('raw', encoder.encode(token), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
    .then(function (key) { return crypto.subtle.sign('HMAC', key, encoder.encode(${JSON.stringify(PROOF_CONTEXT)} + nonce + ':' + port)); })
    .then(hex);
}
`;

const STYLE = `
:root{--fg:#1d2330;--muted:#5b6475;--line:#dde1e8;--bg:#f6f7f9;--card:#fff;--local:#0a7a55;--remote:#2756c5;--warn:#a35b00;--bad:#b42318;--focus:#7c3aed}
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:var(--fg);background:var(--bg)}
header{display:flex;gap:1rem;align-items:center;padding:.6rem 1.2rem;background:#1d2330;color:#fff}
header h1{font-size:1.1rem;margin:0}header .meta{color:#c5cad3;font-size:.85rem}
.pill{border-radius:1rem;padding:.1rem .6rem;font-size:.8rem;font-weight:600}
.pill.live{background:#0a7a55}.pill.down{background:#b42318}.pill.wait{background:#a35b00}
main{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1.1fr);gap:1rem;padding:1rem 1.2rem}
@media (max-width:1100px){main{grid-template-columns:minmax(0,1fr)}}
section.card{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:.8rem 1rem;margin-bottom:1rem;overflow-x:auto}
h2{font-size:1rem;margin:0 0 .3rem}h3{font-size:.9rem;margin:.6rem 0 .3rem}
.sub{color:var(--muted);font-size:.8rem;word-break:break-all}
table{border-collapse:collapse;width:100%}td,th{padding:.25rem .45rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-size:.75rem;text-transform:uppercase;color:var(--muted);font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;border-radius:.3rem;padding:0 .4rem;font-size:.8rem;font-weight:600;border:1px solid currentColor}
.s-local{color:var(--local)}.s-remote{color:var(--remote)}.s-starting,.s-fallback{color:var(--warn)}.s-failed{color:var(--bad)}
.h-healthy{color:var(--local)}.h-unhealthy{color:var(--bad)}.h-starting{color:var(--warn)}.h-not-checked{color:var(--muted)}
button,select,input{font:inherit;padding:.15rem .5rem;border:1px solid #b8bfcc;border-radius:.3rem;background:#fff;color:var(--fg)}
button{cursor:pointer}button.primary{background:var(--remote);border-color:var(--remote);color:#fff}
:focus-visible{outline:3px solid var(--focus);outline-offset:1px}
.row{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:.3rem 0}
.problems{list-style:none;padding:0;margin:.4rem 0}.problems li{border-left:4px solid var(--bad);background:#fdf0ef;padding:.35rem .6rem;margin-bottom:.3rem}
.problems .where{font-family:ui-monospace,monospace;font-weight:600}.problems .fix{color:var(--muted)}
.mem{display:grid;grid-template-columns:9rem 1fr 5.5rem;gap:.15rem .5rem;align-items:center;font-size:.8rem;margin:.4rem 0}
.bar{height:.6rem;background:#eef0f4;border-radius:.3rem;overflow:hidden}.bar span{display:block;height:100%}
.bar .used{background:var(--local)}.bar .declared{background:#7aa2f7}.bar .full{background:#b8bfcc}
#plan{border:2px solid var(--remote)}#plan ul{margin:.3rem 0 .5rem 1.2rem;padding:0}
pre{background:#10141c;color:#e6e6e6;padding:.6rem;border-radius:.4rem;max-height:20rem;overflow:auto;font-size:.78rem;white-space:pre-wrap;word-break:break-all}
#requests tbody tr{cursor:pointer}#requests tbody tr:hover,#requests tbody tr.selected{background:#eef3ff}
#requests td,#requests th{padding:.2rem .3rem}#requests td{font-size:.8rem;white-space:nowrap}#requests td.path{overflow:hidden;text-overflow:ellipsis;max-width:16rem}
.st-2{color:var(--local)}.st-3{color:var(--remote)}.st-4{color:var(--warn)}.st-5,.st-0{color:var(--bad)}
.detail td{font-family:ui-monospace,monospace;font-size:.75rem;word-break:break-all}
.hidden{display:none}
`;

const SCRIPT = `
'use strict';
var token = new URLSearchParams(location.hash.slice(1)).get('token') || '';
/* True while the server on this port has proved that it holds the token: only then is the token sent. */
var verified = false;
/* A server that accepts the proof request but never answers it is not the daemon. */
var PROOF_TIMEOUT_MS = 5000;
${PROOF_SCRIPT}
/*
 * Resolves true when the server on this port proves it holds the token for a fresh nonce, false
 * when it answers anything else or nothing in time; rejects when nothing listens. The token is
 * never sent: after a daemon restart another local user may hold the port.
 */
function proveDaemon() {
  var bytes = new Uint8Array(32);
  crypto.getRandomValues(bytes);
  var nonce = hex(bytes);
  var abort = new AbortController();
  var timer = setTimeout(function () { abort.abort(); }, PROOF_TIMEOUT_MS);
  return fetch(${JSON.stringify(PROOF_PATH)} + '?nonce=' + nonce, { cache: 'no-store', signal: abort.signal }).then(function (res) {
    return res.json().then(function (answer) {
      return expectedProof(token, nonce, location.port || '80').then(function (expected) { return res.ok && answer.proof === expected; });
    });
  }).catch(function (error) {
    if (error instanceof TypeError && !abort.signal.aborted) throw error;
    return false;
  }).finally(function () { clearTimeout(timer); });
}
/*
 * The token stays in the address bar only while this port's server is proved to be the daemon: a
 * reload while another program holds the port loads that program's page, which could read it.
 */
function showToken(shown) {
  var wanted = location.pathname + location.search + (shown ? '#token=' + token : '');
  if (wanted !== location.pathname + location.search + location.hash) history.replaceState(null, '', wanted);
}
var state = { status: null, requests: [], selected: null, plan: null, logs: null, filters: { worktree: '', service: '', status: '', text: '' }, renderQueued: false, recording: true };
var MAX_REQUESTS = 1000;

function h(tag, props) {
  var el = document.createElement(tag);
  if (props) Object.keys(props).forEach(function (key) {
    var value = props[key];
    if (value === undefined || value === null || value === false) return;
    if (key === 'class') el.className = value;
    else if (key === 'data') Object.keys(value).forEach(function (k) { el.dataset[k] = value[k]; });
    else if (key.slice(0, 2) === 'on') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, String(value));
  });
  for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
  return el;
}
function append(el, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) { child.forEach(function (c) { append(el, c); }); return; }
  el.append(child instanceof Node ? child : document.createTextNode(String(child)));
}
function fill(id) {
  var el = document.getElementById(id);
  el.replaceChildren();
  for (var i = 1; i < arguments.length; i++) append(el, arguments[i]);
  return el;
}
function safeUrl(url) { return /^https?:\\/\\//.test(url || '') ? url : undefined; }
function bytes(n) {
  if (n === null || n === undefined) return '-';
  var MB = 1048576, GB = 1073741824;
  if (n >= GB) return (n / GB).toFixed(1) + ' GB';
  if (n >= MB) return Math.round(n / MB) + ' MB';
  if (n >= 1024) return Math.round(n / 1024) + ' KB';
  return n + ' B';
}

function api(path, init) {
  if (!verified) return Promise.reject(new Error('not connected to the daemon: the page waits for it to prove itself'));
  init = init || {};
  var headers = { authorization: 'Bearer ' + token };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  return fetch(path, { method: init.method || 'GET', headers: headers, body: init.body === undefined ? undefined : JSON.stringify(init.body), cache: 'no-store', signal: init.signal }).then(function (res) {
    if (init.raw) return res;
    return res.json().catch(function () { return {}; }).then(function (json) {
      if (!res.ok) throw new Error((json.error && json.error.message) || ('the daemon answered ' + res.status));
      return json;
    });
  });
}

function setConnection(kind, text) {
  var pill = document.getElementById('conn');
  pill.className = 'pill ' + kind;
  pill.textContent = text;
}

/* Live feed: fetch, not EventSource, so the token travels in the Authorization header, and only to a proved daemon. */
var retryMs = 250;
function connect() {
  proveDaemon().then(function (genuine) {
    if (!genuine) throw new Error('unproved');
    verified = true;
    showToken(true);
    return api('/api/events', { raw: true });
  }).then(function (res) {
    if (res.status === 401) { setConnection('down', 'token refused'); fill('global', h('ul', { class: 'problems' }, h('li', null, 'The admin token is missing or wrong: open the URL printed by ', h('code', null, 'devproxy dashboard'), '.'))); throw new Error('unauthorized'); }
    if (!res.ok || !res.body) throw new Error('the daemon answered ' + res.status);
    setConnection('live', 'live');
    retryMs = 250;
    var first = true;
    var reader = res.body.getReader();
    var decoder = new TextDecoder();
    var buffer = '';
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) throw new Error('stream ended');
        buffer += decoder.decode(chunk.value, { stream: true });
        var end;
        while ((end = buffer.indexOf('\\n\\n')) >= 0) {
          var block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          var event = 'message', data = '';
          block.split('\\n').forEach(function (line) {
            if (line.indexOf('event: ') === 0) event = line.slice(7);
            else if (line.indexOf('data: ') === 0) data += line.slice(6);
          });
          if (!data) continue;
          if (event === 'status') onStatus(JSON.parse(data));
          else if (event === 'requests') { onRequests(JSON.parse(data), first); first = false; }
        }
        return pump();
      });
    }
    return pump();
  }).catch(function (error) {
    verified = false;
    showToken(false);
    if (error.message === 'unproved') {
      setConnection('down', 'not verified');
      fill('global', h('ul', { class: 'problems' }, h('li', null, 'What answers on port ' + location.port + ' could not prove that it is the devproxy daemon, so the page did not send it the token: another program holds the port, or the daemon moved to another port with a new token. The page keeps trying; run ', h('code', null, 'devproxy dashboard'), ' to open the daemon where it is now.')));
    } else if (document.getElementById('conn').textContent !== 'token refused') setConnection('wait', 'reconnecting…');
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 2000);
  });
}

function onStatus(status) {
  state.status = status;
  var d = status.daemon;
  fill('daemon', 'v' + d.version + ' · pid ' + d.pid + ' · http :' + d.httpPort + (d.httpsPort ? ' · https :' + d.httpsPort : ''));
  renderWorktrees();
  renderFilters();
}
function onRequests(batch, replace) {
  state.requests = replace ? batch : state.requests.concat(batch);
  if (state.requests.length > MAX_REQUESTS) state.requests = state.requests.slice(-MAX_REQUESTS);
  scheduleRequests();
}

function problemList(diagnostics) {
  if (!diagnostics.length) return null;
  return h('ul', { class: 'problems' }, diagnostics.map(function (d) {
    var where = d.line > 0 ? d.file + ':' + d.line + ':' + d.column : d.file;
    return h('li', { class: 'problem', role: 'alert' },
      h('div', null, h('span', { class: d.severity === 'warning' ? 'sev' : 'sev' }, d.severity === 'warning' ? 'warning ' : 'error '), h('span', { class: 'where' }, where), d.field ? ' ' + d.field + ':' : ''),
      h('div', { class: 'msg' }, d.message),
      h('div', { class: 'fix' }, 'fix: ' + d.hint));
  }));
}

function memoryBars(w) {
  var m = w.memory;
  var scale = Math.max(m.fullBytes, m.profileBytes, m.usedBytes || 0, 1);
  function bar(kind, label, value) {
    var fillEl = h('span', { class: kind });
    fillEl.style.width = Math.max(0, Math.min(100, (value || 0) / scale * 100)) + '%';
    return [h('span', null, label), h('span', { class: 'bar', role: 'img', 'aria-label': label + ' ' + bytes(value) }, fillEl), h('span', { class: 'num' }, bytes(value))];
  }
  var saving = m.profileBytes > 0 && m.fullBytes > m.profileBytes ? ' (' + Math.round(m.fullBytes / m.profileBytes) + '× less than full)' : '';
  return h('div', null,
    h('div', { class: 'mem', data: { memory: w.name } },
      bar('used', 'local now', m.usedBytes), bar('declared', 'profile declares', m.profileBytes), bar('full', 'full would need', m.fullBytes)),
    h('div', { class: 'sub' }, saving));
}

function renderWorktrees() {
  var status = state.status;
  var focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : undefined;
  var cards = status.worktrees.map(function (w) {
    var select = h('select', { class: 'profile', 'aria-label': 'profile of ' + w.name, data: { key: 'profile:' + w.path }, onchange: function (e) { planChange(w, { profile: e.target.value }); } },
      w.profiles.map(function (p) { var o = h('option', { value: p }, p); o.selected = p === w.profile; return o; }));
    var rows = w.services.map(function (s) {
      var other = s.desired === 'local' ? 'remote' : 'local';
      var body = {}; body[s.name] = other;
      var actions = [h('button', { type: 'button', class: 'toggle', data: { key: 'toggle:' + w.path + ':' + s.name, service: s.name }, title: 'route ' + s.name + ' ' + other, onclick: function () { planChange(w, { services: body }); } }, 'make ' + other)];
      // Restart and logs exist for the instances devproxy runs (compose, command), not for a port it only routes to.
      if (s.runtime && s.runtime.kind !== 'port') {
        actions.push(h('button', { type: 'button', data: { key: 'restart:' + w.path + ':' + s.name }, onclick: function () { restart(w, s.name); } }, 'restart'));
        actions.push(h('button', { type: 'button', data: { key: 'logs:' + w.path + ':' + s.name }, onclick: function () { followLogs(w, s.name); } }, 'logs'));
      }
      var link = safeUrl(s.httpsUrl || s.url);
      return h('tr', { data: { service: s.name, state: s.state } },
        h('td', null, link ? h('a', { href: link, target: '_blank', rel: 'noopener noreferrer' }, s.name) : s.name),
        h('td', null, h('span', { class: 'badge route s-' + s.state }, s.state)),
        h('td', { class: 'sub' }, s.target || (s.problem ? s.problem.message : '-'), s.insecure ? ' (TLS not verified)' : ''),
        h('td', { class: 'h-' + s.health }, s.health),
        h('td', { class: 'num' }, s.runtime && typeof s.runtime.memoryBytes === 'number' ? bytes(s.runtime.memoryBytes) : '-'),
        h('td', null, h('div', { class: 'row' }, actions)));
    });
    return h('section', { class: 'card worktree', data: { worktree: w.name } },
      h('h2', null, w.name, w.main ? ' (main)' : ''),
      h('div', { class: 'sub location' }, (w.branch ? w.branch + ' · ' : '') + w.path),
      h('div', { class: 'row' }, h('label', null, 'profile ', select)),
      problemList(w.diagnostics),
      memoryBars(w),
      h('table', null, h('thead', null, h('tr', null, ['service', 'route', 'target', 'health', 'memory', ''].map(function (t) { return h('th', null, t); }))), h('tbody', null, rows)));
  });
  fill('worktrees', cards.length ? cards : h('section', { class: 'card' }, 'No repository registered: run ', h('code', null, 'devproxy init'), ' in one.'));
  fill('global', problemList(status.diagnostics));
  if (focused) { var again = document.querySelector('[data-key="' + CSS.escape(focused) + '"]'); if (again) again.focus(); }
}

function planChange(w, change) {
  var body = Object.assign({ path: w.path }, change);
  api('/api/profile/plan', { method: 'POST', body: body }).then(function (plan) {
    state.plan = { body: body, plan: plan };
    renderPlan();
  }, function (error) { showPlanError(w, error); });
}
function showPlanError(w, error) {
  state.plan = null;
  var el = fill('plan', h('h2', null, 'Cannot change ' + w.name), h('p', null, String(error.message || error)), h('button', { type: 'button', onclick: closePlan }, 'close'));
  el.classList.remove('hidden');
  if (state.status) renderWorktrees();
}
function renderPlan() {
  var p = state.plan.plan;
  var list = function (label, items) { return h('li', null, label + ': ' + (items.length ? items.join(', ') : '-')); };
  var overrides = Object.keys(p.services).map(function (s) { return s + '=' + p.services[s]; });
  var apply = h('button', { type: 'button', class: 'primary', id: 'apply', onclick: applyPlan }, 'apply');
  var el = fill('plan',
    h('h2', null, 'Plan for ' + p.worktree + ': profile ' + p.profile + (overrides.length ? ' (' + overrides.join(', ') + ')' : '')),
    h('ul', null,
      p.plan.routes.map(function (r) { return h('li', { class: 'route-change' }, r.service + ': ' + r.from + ' → ' + r.to); }),
      p.plan.routes.length ? null : h('li', null, 'no route changes'),
      list('start', p.plan.start), list('stop', p.plan.stop), list('keep', p.plan.keep),
      h('li', null, 'memory to start: ' + bytes(p.memory.declaredBytes) + ' of ' + bytes(p.memory.availableBytes) + ' available' + (p.memory.exceeds ? ' (does not fit!)' : ''))),
    h('div', { class: 'row' }, apply, h('button', { type: 'button', onclick: closePlan }, 'cancel')));
  el.classList.remove('hidden');
  apply.focus();
}
function applyPlan() {
  var pending = state.plan;
  if (!pending) return;
  var body = Object.assign({ revision: pending.plan.revision }, pending.body);
  api('/api/profile', { method: 'POST', body: body }).then(function (result) {
    fill('plan', h('p', { role: 'status' }, 'Wrote ' + result.file + ': routes follow as soon as devproxy applies it.'), h('button', { type: 'button', onclick: closePlan }, 'close'));
    state.plan = null;
  }, function (error) { fill('plan', h('p', { role: 'alert' }, String(error.message || error)), h('button', { type: 'button', onclick: closePlan }, 'close')); state.plan = null; });
}
function closePlan() {
  state.plan = null;
  document.getElementById('plan').classList.add('hidden');
  if (state.status) renderWorktrees();
}

function restart(w, service) {
  fill('logs-title', 'restarting ' + service + ' in ' + w.name + '…');
  document.getElementById('logs-card').classList.remove('hidden');
  api('/api/restart', { method: 'POST', body: { path: w.path, service: service } }).then(function (r) {
    fill('logs-title', service + ' in ' + w.name + ': ' + ((r.status && r.status.state) || 'restarted'));
  }, function (error) { fill('logs-title', 'restart failed: ' + error.message); });
}
function followLogs(w, service) {
  if (state.logs) state.logs.abort();
  var controller = new AbortController();
  state.logs = controller;
  document.getElementById('logs-card').classList.remove('hidden');
  fill('logs-title', 'logs of ' + service + ' in ' + w.name + ' (following)');
  var out = fill('logs');
  var query = new URLSearchParams({ path: w.path, service: service, lines: '200', follow: '1' });
  api('/api/logs?' + query, { raw: true, signal: controller.signal }).then(function (res) {
    if (!res.ok || !res.body) throw new Error('the daemon answered ' + res.status);
    var reader = res.body.getReader(), decoder = new TextDecoder();
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) return;
        var atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
        out.append(document.createTextNode(decoder.decode(chunk.value, { stream: true })));
        if (atEnd) out.scrollTop = out.scrollHeight;
        return pump();
      });
    }
    return pump();
  }).catch(function (error) { if (error.name !== 'AbortError') out.append(document.createTextNode('\\n[' + error.message + ']')); });
}
function closeLogs() {
  if (state.logs) state.logs.abort();
  state.logs = null;
  document.getElementById('logs-card').classList.add('hidden');
}

function renderFilters() {
  var status = state.status;
  var worktrees = status.worktrees.map(function (w) { return w.name; });
  var services = [];
  status.worktrees.forEach(function (w) { w.services.forEach(function (s) { if (services.indexOf(s.name) < 0) services.push(s.name); }); });
  function options(select, values, label) {
    var current = select.value;
    select.replaceChildren(h('option', { value: '' }, label));
    values.forEach(function (v) { select.append(h('option', { value: v }, v)); });
    select.value = values.indexOf(current) >= 0 ? current : '';
  }
  options(document.getElementById('f-worktree'), worktrees, 'every worktree');
  options(document.getElementById('f-service'), services, 'every service');
}
function matches(r) {
  var f = state.filters;
  if (f.worktree && r.worktree !== f.worktree) return false;
  if (f.service && r.service !== f.service) return false;
  if (f.status && String(Math.floor(r.status / 100)) + 'xx' !== f.status && !(f.status === 'aborted' && r.status === 0)) return false;
  if (f.text) {
    var text = (r.method + ' ' + r.host + r.path + ' ' + r.status).toLowerCase();
    if (text.indexOf(f.text.toLowerCase()) < 0) return false;
  }
  return true;
}
function scheduleRequests() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(function () { state.renderQueued = false; renderRequests(); });
}
function renderRequests() {
  var shown = state.requests.filter(matches).reverse();
  var rows = shown.map(function (r) {
    var time = r.time.slice(11, 23);
    return h('tr', { tabindex: '0', class: r.seq === state.selected ? 'selected' : '', data: { seq: r.seq, path: r.path, route: r.route }, 'aria-label': r.method + ' ' + r.path + ' ' + r.status,
      onclick: function () { showDetail(r.seq); }, onkeydown: function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); showDetail(r.seq); } } },
      h('td', null, time), h('td', null, r.worktree || '-'), h('td', null, r.service || '-'), h('td', null, r.method), h('td', { class: 'path', title: r.host + r.path }, r.path),
      h('td', { class: 'num st-' + Math.floor(r.status / 100) }, r.status === 0 ? 'aborted' : r.status), h('td', { class: 'num' }, r.durationMs + ' ms'),
      h('td', { class: 's-' + r.route }, r.route), h('td', { class: 'num' }, bytes(r.bytes)));
  });
  fill('request-rows', rows);
  fill('request-count', shown.length + ' of ' + state.requests.length + ' shown');
}
function showDetail(seq) {
  state.selected = seq;
  scheduleRequests();
  api('/api/requests/' + seq).then(function (d) {
    function headerTable(title, pairs, note) {
      return [h('h3', null, title), note ? h('p', { class: 'sub' }, note) : null,
        pairs.length ? h('table', { class: 'detail' }, h('tbody', null, pairs.map(function (p) { return h('tr', null, h('td', null, p[0]), h('td', null, p[1])); }))) : h('p', { class: 'sub' }, 'none')];
    }
    var el = fill('detail',
      h('div', { class: 'row' }, h('h2', null, d.method + ' ' + d.host + d.path), h('button', { type: 'button', id: 'detail-close', onclick: closeDetail }, 'close')),
      h('div', { class: 'sub' }, d.time + ' · ' + (d.status === 0 ? 'aborted' : d.status) + ' · ' + d.durationMs + ' ms · ' + d.route + ' · ' + bytes(d.bytes)),
      d.headersOmitted ? h('p', { class: 'sub' }, 'headers too large to keep') : null,
      headerTable('request headers', d.requestHeaders),
      d.injectedHeaders.length ? headerTable('added by devproxy on the remote hop', d.injectedHeaders, 'values are never shown') : null,
      headerTable('response headers', d.responseHeaders));
    el.classList.remove('hidden');
    document.getElementById('detail-close').focus();
  }, function (error) { fill('detail', h('p', null, String(error.message || error))).classList.remove('hidden'); });
}
function closeDetail() {
  var seq = state.selected;
  state.selected = null;
  document.getElementById('detail').classList.add('hidden');
  renderRequests();
  var row = document.querySelector('#request-rows tr[data-seq="' + seq + '"]');
  if (row) row.focus();
}

function setup() {
  ['worktree', 'service', 'status', 'text'].forEach(function (name) {
    document.getElementById('f-' + name).addEventListener('input', function (e) { state.filters[name] = e.target.value; renderRequests(); });
  });
  document.getElementById('record').addEventListener('click', function () {
    api('/api/requests/recording', { method: 'PUT', body: { recording: !state.recording } }).then(function (stats) {
      state.recording = stats.recording;
      var b = document.getElementById('record');
      b.textContent = stats.recording ? 'pause recording' : 'resume recording';
      b.setAttribute('aria-pressed', String(!stats.recording));
    });
  });
  document.getElementById('clear').addEventListener('click', function () { state.requests = []; renderRequests(); });
  document.getElementById('logs-close').addEventListener('click', closeLogs);
  document.addEventListener('keydown', function (e) {
    if (e.key !== 'Escape') return;
    if (!document.getElementById('detail').classList.contains('hidden')) closeDetail();
    else if (!document.getElementById('plan').classList.contains('hidden')) closePlan();
    else closeLogs();
  });
  if (token) { connect(); return; }
  setConnection('down', 'no token');
  fill('global', h('ul', { class: 'problems' }, h('li', null, 'The address has no admin token: open the URL printed by ', h('code', null, 'devproxy dashboard'), '.')));
}
setup();
`;

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** The page's Content-Security-Policy: its own inline script and style only, calls to this origin only. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The page, served at `/` of the admin API. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>devproxy dashboard</title><meta name="referrer" content="no-referrer"><link rel="icon" href="data:,">
<style>${STYLE}</style></head>
<body>
<header><h1>devproxy</h1><span id="conn" class="pill wait" role="status">connecting…</span><span id="daemon" class="meta"></span></header>
<main>
<div>
<div id="global"></div>
<section id="plan" class="card hidden" aria-live="polite"></section>
<div id="worktrees"><section class="card">loading…</section></div>
<section id="logs-card" class="card hidden"><div class="row"><h2 id="logs-title">logs</h2><button type="button" id="logs-close">close</button></div><pre id="logs" tabindex="0"></pre></section>
</div>
<div>
<section class="card" id="requests" aria-label="recent requests">
<h2>Recent requests</h2>
<div class="row">
<select id="f-worktree" aria-label="filter by worktree"><option value="">every worktree</option></select>
<select id="f-service" aria-label="filter by service"><option value="">every service</option></select>
<select id="f-status" aria-label="filter by status class"><option value="">every status</option><option>2xx</option><option>3xx</option><option>4xx</option><option>5xx</option><option value="aborted">aborted</option></select>
<input id="f-text" type="search" placeholder="filter: path, host, method" aria-label="filter by text">
<button type="button" id="record" aria-pressed="false">pause recording</button>
<button type="button" id="clear">clear view</button>
<span id="request-count" class="sub"></span>
</div>
<table><thead><tr><th>time</th><th>worktree</th><th>service</th><th>method</th><th>path</th><th>status</th><th>duration</th><th>route</th><th>bytes</th></tr></thead>
<tbody id="request-rows"></tbody></table>
</section>
<section id="detail" class="card hidden" aria-live="polite"></section>
</div>
</main>
<script>${SCRIPT}</script>
</body></html>
`;
