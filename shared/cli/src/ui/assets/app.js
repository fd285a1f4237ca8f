'use strict';
// Weft web UI: the browser half of `weft ui`. A hash-routed single page showing the runs
// list (#/) and one run (#/runs/<id>, #/runs/<id>/steps/<path>): header, actions, plan
// graph, waterfall, steps, step detail, events and JSON, kept live by Server-Sent Events.
// Plain DOM, no framework or build step. Every string from the server goes in through
// textContent or setAttribute, never innerHTML: run inputs and outputs are user data.

/* ---------- constants ---------- */

const RUN_STATUSES = [
  'running', 'completed', 'failed', 'timed_out', 'cancelled', 'compensating',
  'compensated', 'compensation_failed', 'paused', 'budget_exceeded',
];
const TERMINAL = new Set(['completed', 'failed', 'timed_out', 'cancelled', 'compensated', 'compensation_failed']);
// Which instance status a body node shows: the one most worth a look comes first.
const WORST_FIRST = ['failed', 'waiting', 'running', 'retrying', 'pending', 'completed', 'compensated', 'skipped', 'cancelled', 'unknown'];
// How step counts are listed in the header.
const COUNT_ORDER = ['completed', 'compensated', 'failed', 'running', 'waiting', 'retrying', 'pending', 'skipped', 'cancelled', 'unknown'];
// Kinds whose running step waits on something outside any worker.
const WAITING_KINDS = new Set(['signal', 'wait', 'workflow']);
const LIST_LIMITS = ['20', '50', '100', '200'];
const DEFAULT_LIMIT = '50';
const LIST_EVERY_MS = 500;
const CONN_TEXT = { idle: 'idle', connecting: 'connecting', live: 'live', reconnecting: 'reconnecting', ended: 'run over' };
const SVG_NS = 'http://www.w3.org/2000/svg';

/* ---------- DOM helpers ---------- */

const $ = (selector, root = document) => root.querySelector(selector);

function h(tag, props, ...kids) {
  return build(document.createElement(tag), props, kids);
}

function svg(tag, props, ...kids) {
  return build(document.createElementNS(SVG_NS, tag), props, kids);
}

// Props become attributes (`text` sets textContent, `on<type>` adds a listener); null and
// false props and kids are left out, so callers can write `cond && h(...)`.
function build(el, props, kids) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key === 'text') el.textContent = String(value);
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

function fill(el, ...kids) {
  el.replaceChildren();
  return build(el, null, kids);
}

const app = () => $('#app');

/* ---------- formatting ---------- */

const pretty = (value) => JSON.stringify(value, null, 2);
const compact = (value) => (typeof value === 'string' ? value : JSON.stringify(value));
const words = (status) => String(status).replace(/_/g, ' ');

function fmtDuration(ms) {
  if (ms == null || !isFinite(ms)) return '';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

const fmtDate = (ms) => (ms == null ? '' : new Date(ms).toLocaleString());

function fmtClock(ms) {
  if (ms == null) return '';
  const d = new Date(ms);
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

function badge(status, props) {
  return h('span', { class: `badge status-${status}`, ...props }, words(status));
}

/* ---------- paths and links ---------- */

// The definition id of an instance path: `a[0].b[1].c` -> `c`.
function defId(path) {
  const i = path.lastIndexOf('].');
  return i < 0 ? path : path.slice(i + 2);
}

const runHref = (id) => `#/runs/${encodeURIComponent(id)}`;
const stepHref = (runId, path) => `${runHref(runId)}/steps/${encodeURIComponent(path)}`;

function stepLink(path) {
  return h('a', { href: stepHref(run.id, path), class: 'mono step-link' }, path);
}

/* ---------- server ---------- */

async function api(path, options) {
  let res;
  try {
    res = await fetch(path, options);
  } catch (e) {
    return { ok: false, status: 0, error: { message: `cannot reach the server: ${e.message}` } };
  }
  let body = null;
  try {
    body = await res.json();
  } catch (_) {
    // Not JSON: the status line says enough.
  }
  if (res.ok) return { ok: true, status: res.status, body };
  const error = body && body.error ? body.error : { message: `${res.status} ${res.statusText}` };
  return { ok: false, status: res.status, error };
}

function post(path, data) {
  return api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(data) });
}

function setConn(state) {
  const el = $('#conn');
  el.dataset.state = state;
  $('#conn-text').textContent = CONN_TEXT[state] || state;
}

// An EventSource that reports its state in the top bar. EventSource retries by itself
// after a dropped connection, but gives up on an HTTP error; then we retry ourselves.
function live(url, handlers, onReopen) {
  let es = null;
  let closed = false;
  let broken = false;
  let retry = 0;
  const connect = () => {
    es = new EventSource(url);
    es.onopen = () => {
      setConn('live');
      if (broken && onReopen) onReopen();
      broken = false;
    };
    es.onerror = () => {
      if (closed) return;
      broken = true;
      setConn('reconnecting');
      if (es.readyState === EventSource.CLOSED) retry = setTimeout(connect, 3000);
    };
    for (const [type, handle] of Object.entries(handlers)) {
      es.addEventListener(type, (e) => {
        if (!closed) handle(parseData(e.data));
      });
    }
  };
  setConn('connecting');
  connect();
  return {
    close() {
      closed = true;
      clearTimeout(retry);
      if (es) es.close();
    },
    get open() {
      return !closed && es && es.readyState === EventSource.OPEN;
    },
  };
}

function parseData(text) {
  try {
    return JSON.parse(text);
  } catch (_) {
    return null;
  }
}

/* ---------- routing ---------- */

let current = { view: null, id: null };

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  const m = path.match(/^\/runs\/([^/]+)(?:\/steps\/(.+))?\/?$/);
  if (m) return { view: 'run', id: decodeURIComponent(m[1]), step: m[2] == null ? null : decodeURIComponent(m[2]) };
  return { view: 'list', query };
}

function route() {
  const r = parseHash();
  if (r.view === 'run' && current.view === 'run' && current.id === r.id) {
    selectStep(r.step);
    return;
  }
  if (r.view === 'list' && current.view === 'list') {
    applyListQuery(r.query);
    return;
  }
  teardown();
  current = { view: r.view, id: r.id || null };
  if (r.view === 'run') showRun(r.id, r.step);
  else showList(r.query);
}

function teardown() {
  if (list.live) list.live.close();
  clearTimeout(list.timer);
  clearTimeout(list.typing);
  Object.assign(list, { live: null, timer: 0, typing: 0 });
  if (run.live) run.live.close();
  clearInterval(run.tick);
  clearTimeout(run.renderTimer);
  run = freshRun(null, null);
  setConn('idle');
}

function setCrumbs(...kids) {
  fill($('#crumbs'), kids);
}

/* ---------- runs list ---------- */

const list = { filters: null, live: null, timer: 0, typing: 0, lastFetch: 0, token: 0 };

function listFilters(query) {
  const limit = query.get('limit');
  return {
    status: query.get('status') || '',
    workflow: query.get('workflow') || '',
    limit: LIST_LIMITS.includes(limit) ? limit : DEFAULT_LIMIT,
  };
}

// The filters in the hash, so a reload or a shared link keeps them.
function listHash(f) {
  const q = new URLSearchParams();
  if (f.status) q.set('status', f.status);
  if (f.workflow) q.set('workflow', f.workflow);
  if (f.limit !== DEFAULT_LIMIT) q.set('limit', f.limit);
  const qs = q.toString();
  return qs ? `#/?${qs}` : '#/';
}

function showList(query) {
  document.title = 'Weft · runs';
  setCrumbs(h('span', {}, 'runs'));
  list.filters = listFilters(query);
  fill(app(), listSkeleton());
  syncFilterInputs();
  fetchList();
  list.live = live('/api/live', { changed: scheduleListFetch, runs: scheduleListFetch }, scheduleListFetch);
}

function applyListQuery(query) {
  list.filters = listFilters(query);
  syncFilterInputs();
  fetchList();
}

function setFilter(patch) {
  list.filters = { ...list.filters, ...patch };
  // replaceState does not fire hashchange: the page stays, only the list is fetched again.
  history.replaceState(null, '', listHash(list.filters));
  syncFilterInputs();
  fetchList();
}

function listSkeleton() {
  const status = h('select', { id: 'filter-status', name: 'status', onchange: (e) => setFilter({ status: e.target.value }) },
    h('option', { value: '' }, 'all'),
    RUN_STATUSES.map((s) => h('option', { value: s }, words(s))));
  const workflow = h('input', {
    id: 'filter-workflow', name: 'workflow', type: 'search', placeholder: 'exact name', autocomplete: 'off',
    oninput: (e) => {
      clearTimeout(list.typing);
      list.typing = setTimeout(() => setFilter({ workflow: e.target.value.trim() }), 400);
    },
    onchange: (e) => {
      clearTimeout(list.typing);
      if (e.target.value.trim() !== list.filters.workflow) setFilter({ workflow: e.target.value.trim() });
    },
  });
  const limit = h('select', { id: 'filter-limit', name: 'limit', onchange: (e) => setFilter({ limit: e.target.value }) },
    LIST_LIMITS.map((n) => h('option', { value: n }, n)));
  const form = h('form', {
    id: 'filters', class: 'filters',
    onsubmit: (e) => {
      e.preventDefault();
      clearTimeout(list.typing);
      setFilter({ workflow: workflow.value.trim() });
    },
  },
  h('label', {}, 'Status ', status),
  h('label', {}, 'Workflow ', workflow),
  h('label', {}, 'Limit ', limit),
  h('button', { type: 'button', id: 'filter-clear', onclick: () => setFilter({ status: '', workflow: '', limit: DEFAULT_LIMIT }) }, 'Clear'));
  return h('section', { class: 'card runs-list' },
    h('div', { class: 'list-head' }, h('h1', {}, 'Runs'), form),
    h('div', { id: 'run-counts', class: 'counts', 'data-testid': 'run-counts' }),
    h('p', { id: 'list-error', class: 'error-text', hidden: true }),
    h('table', { id: 'runs-table', class: 'table runs' },
      h('thead', {}, h('tr', {}, ['Run', 'Workflow', 'Status', 'Created', 'Duration'].map((t) => h('th', {}, t)))),
      h('tbody', { id: 'runs-body' })),
    h('p', { id: 'runs-empty', class: 'muted empty', hidden: true }, 'No runs match.'));
}

function syncFilterInputs() {
  const f = list.filters;
  $('#filter-status').value = f.status;
  if (document.activeElement !== $('#filter-workflow')) $('#filter-workflow').value = f.workflow;
  $('#filter-limit').value = f.limit;
}

// Trailing throttle: a burst of `changed` costs one fetch per LIST_EVERY_MS.
function scheduleListFetch() {
  if (list.timer) return;
  const wait = Math.max(0, LIST_EVERY_MS - (Date.now() - list.lastFetch));
  list.timer = setTimeout(() => {
    list.timer = 0;
    fetchList();
  }, wait);
}

async function fetchList() {
  list.lastFetch = Date.now();
  const token = ++list.token;
  const f = list.filters;
  const q = new URLSearchParams({ limit: f.limit });
  if (f.status) q.set('status', f.status);
  if (f.workflow) q.set('workflow', f.workflow);
  const res = await api(`/api/runs?${q}`);
  // A slower, older answer must not overwrite a newer one.
  if (token !== list.token || current.view !== 'list') return;
  const error = $('#list-error');
  error.hidden = res.ok;
  if (!res.ok) {
    error.textContent = res.error.message;
    return;
  }
  const body = res.body || {};
  const runs = (Array.isArray(body) ? body : body.runs || []).slice().sort((a, b) => b.created_ms - a.created_ms);
  renderCounts(body.counts || {});
  fill($('#runs-body'), runs.map(runRow));
  $('#runs-empty').hidden = runs.length > 0;
}

function renderCounts(counts) {
  const active = list.filters.status;
  const known = (s) => (RUN_STATUSES.includes(s) ? RUN_STATUSES.indexOf(s) : RUN_STATUSES.length);
  const entries = Object.entries(counts).filter(([, n]) => n > 0).sort(([a], [b]) => known(a) - known(b));
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  const link = (status, text) => h('a', {
    href: '#', class: `count${status === active ? ' active' : ''}${status ? ` status-${status}` : ''}`,
    'data-count-status': status,
    onclick: (e) => {
      e.preventDefault();
      setFilter({ status: status === active ? '' : status });
    },
  }, text);
  const parts = entries.map(([s, n]) => [' · ', link(s, `${words(s)} ${n}`)]);
  fill($('#run-counts'), link('', `all ${total}`), parts);
}

function runRow(r) {
  const duration = r.finished_ms != null
    ? fmtDuration(r.finished_ms - r.created_ms)
    : `${fmtDuration(Date.now() - r.created_ms)} so far`;
  return h('tr', { 'data-run': r.run_id, 'data-status': r.status, 'data-workflow': r.workflow },
    h('td', { class: 'mono' }, h('a', { href: runHref(r.run_id), title: r.run_id }, r.run_id.slice(0, 8))),
    h('td', {}, h('a', {
      href: '#', class: 'workflow-link', title: 'show only this workflow',
      onclick: (e) => {
        e.preventDefault();
        setFilter({ workflow: r.workflow });
      },
    }, r.workflow)),
    h('td', {}, badge(r.status)),
    h('td', {}, fmtDate(r.created_ms)),
    h('td', { class: 'num' }, duration));
}

/* ---------- one run: state and loading ---------- */

function freshRun(id, step) {
  return {
    id, selected: step, record: null, definition: null, graph: null, traceUrl: null,
    events: new Map(), maxSeq: 0, live: null, tick: 0, renderTimer: 0, actionsKey: null, openJson: new Set(),
  };
}

let run = freshRun(null, null);

function showRun(id, step) {
  run = freshRun(id, step);
  document.title = `Weft · run ${id.slice(0, 8)}`;
  setCrumbs(h('a', { href: '#/' }, 'runs'), ' › ', h('span', { class: 'mono', title: id }, id.slice(0, 8)));
  fill(app(), runSkeleton());
  loadRun(id);
}

function runSkeleton() {
  const section = (id, title, ...extra) => h('section', { id, class: 'card' },
    h('div', { class: 'card-head' }, h('h2', {}, title), extra),
    h('div', { id: `${id}-body` }));
  return h('div', { id: 'run-view', class: 'run-view' },
    h('div', { class: 'run-main' },
      h('section', { id: 'run-header', class: 'card' }, h('p', { class: 'muted' }, 'Loading…')),
      h('section', { id: 'run-waiting', class: 'card waiting', hidden: true }),
      h('section', { id: 'run-actions', class: 'card', hidden: true },
        h('h2', {}, 'Actions'),
        h('div', { id: 'run-actions-controls' }),
        h('p', { id: 'action-result', class: 'action-result', 'data-testid': 'action-result', 'aria-live': 'polite', hidden: true })),
      section('run-graph', 'Graph', graphLegend()),
      section('run-timeline', 'Timeline'),
      section('run-steps', 'Steps'),
      section('run-events', 'Events', h('span', { id: 'events-count', class: 'muted' })),
      section('run-json', 'JSON')),
    h('aside', { id: 'step-detail', class: 'card detail', 'data-testid': 'step-detail', hidden: true }));
}

async function loadRun(id) {
  const res = await api(`/api/runs/${encodeURIComponent(id)}`);
  if (run.id !== id) return;
  if (!res.ok) {
    fill(app(), h('section', { class: 'card error-page', 'data-testid': 'run-error' },
      h('h1', {}, res.status === 404 ? 'Run not found' : 'Cannot show the run'),
      h('p', { class: 'error-text' }, res.error.message),
      h('p', {}, h('a', { href: '#/' }, '← all runs'))));
    return;
  }
  const body = res.body || {};
  Object.assign(run, { record: body.record, definition: body.definition, graph: body.graph, traceUrl: body.trace_url });
  renderRun();
  $('#events-box') || fill($('#run-events-body'), h('div', { id: 'events-box', class: 'events', 'data-testid': 'events' }));
  run.live = live(`/api/runs/${encodeURIComponent(id)}/live`, { event: onEvent, record: onRecord, end: onEnd }, null);
}

function onRecord(record) {
  if (!record || record.run_id !== run.id) return;
  run.record = record;
  scheduleRender();
}

function onEnd() {
  if (run.live) run.live.close();
  run.live = null;
  setConn('ended');
}

// Records can come in bursts; one render per turn of the event loop is enough.
function scheduleRender() {
  if (run.renderTimer) return;
  run.renderTimer = setTimeout(() => {
    run.renderTimer = 0;
    if (run.record) renderRun();
  }, 0);
}

function selectStep(path) {
  run.selected = path;
  if (run.record) renderRun();
}

function navStep(path) {
  location.hash = stepHref(run.id, path);
}

/* ---------- one run: the model drawn from record and graph ---------- */

function runModel() {
  const rec = run.record;
  const steps = rec.steps || {};
  const order = (rec.order || []).filter((p) => steps[p]);
  for (const p of Object.keys(steps)) if (!order.includes(p)) order.push(p);
  const constructs = new Set(order.map((p) => steps[p].within).filter(Boolean));
  const graph = run.graph || graphFromRecord(rec, order, constructs);
  const nodeById = new Map(graph.nodes.map((n) => [n.id, n]));
  const status = new Map();
  const byDef = new Map();
  for (const p of order) {
    status.set(p, stepStatus(steps[p], nodeById.get(defId(p)), constructs.has(p)));
    const id = defId(p);
    if (!byDef.has(id)) byDef.set(id, []);
    byDef.get(id).push(p);
  }
  return { rec, steps, order, constructs, graph, fromRecord: !run.graph, nodeById, status, byDef, terminal: TERMINAL.has(rec.status) };
}

// The status to show: the record's, except a completed step that was undone is
// `compensated` and one that waits on something other than a worker is `waiting`.
function stepStatus(step, node, isConstruct) {
  const s = step.status;
  if (s === 'completed' && step.compensation && step.compensation.status === 'completed') return 'compensated';
  if (s === 'pending' && step.reason) return 'waiting';
  if (s === 'running' && isWaiting(step, node, isConstruct)) return 'waiting';
  return s;
}

function isWaiting(step, node, isConstruct) {
  if (step.reason || step.child) return true;
  if (node && node.kind && node.kind !== 'construct') return WAITING_KINDS.has(node.kind);
  return !step.tool && !isConstruct;
}

function worst(statuses) {
  let best = WORST_FIRST.length;
  for (const s of statuses) {
    const i = WORST_FIRST.indexOf(s);
    best = Math.min(best, i < 0 ? WORST_FIRST.length - 1 : i);
  }
  return WORST_FIRST[best] || 'unknown';
}

// Without a registered definition: one node per definition id, one scope per construct.
function graphFromRecord(rec, order, constructs) {
  const nodes = [];
  const scopes = [{ id: 'top', owner: null, label: rec.workflow }];
  const seen = new Set();
  const constructIds = new Set([...constructs].map(defId));
  for (const path of order) {
    const step = rec.steps[path];
    const id = defId(path);
    if (seen.has(id)) continue;
    seen.add(id);
    let scope = 'top';
    if (step.within) {
      const owner = defId(step.within);
      scope = `${owner}#0`;
      if (!scopes.some((s) => s.id === scope)) scopes.push({ id: scope, owner, label: `${owner} body` });
    }
    const kind = step.tool ? 'tool' : constructIds.has(id) ? 'construct' : null;
    nodes.push({ id, label: id, kind, tool: step.tool || null, when: false, scope });
  }
  return { nodes, edges: [], scopes };
}

function nodeStatus(id, m) {
  const paths = m.byDef.get(id) || [];
  if (!paths.length) return m.rec.abridged ? 'unknown' : m.terminal ? 'skipped' : 'pending';
  return worst(paths.map((p) => m.status.get(p)));
}

function kindOf(path, m) {
  const node = m.nodeById.get(defId(path));
  return node && node.kind && node.kind !== 'tool' && node.kind !== 'task' ? node.kind : '';
}

// A step of the definition by id, wherever it is nested (ids are unique in a workflow).
function findDefStep(id) {
  const walk = (value) => {
    if (!value || typeof value !== 'object') return null;
    if (!Array.isArray(value) && value.id === id) return value;
    for (const v of Object.values(value)) {
      const found = walk(v);
      if (found) return found;
    }
    return null;
  };
  return run.definition ? walk(run.definition.steps) : null;
}

/* ---------- one run: rendering ---------- */

function renderRun() {
  const m = runModel();
  renderHeader(m);
  renderWaiting(m);
  renderActions(m);
  renderGraph(m);
  renderTimeline(m);
  renderSteps(m);
  renderDetail(m);
  renderJson(m);
  manageTick(m);
}

// While the run goes on, durations and the waterfall grow with the clock.
function manageTick(m) {
  if (!m.terminal && !run.tick) {
    run.tick = setInterval(() => {
      if (!run.record) return;
      const now = runModel();
      renderHeader(now);
      renderTimeline(now);
    }, 1000);
  } else if (m.terminal && run.tick) {
    clearInterval(run.tick);
    run.tick = 0;
  }
}

function fact(name, ...value) {
  const kids = value.flat(Infinity).filter((v) => v != null && v !== false && v !== '');
  return kids.length ? [h('dt', {}, name), h('dd', {}, kids)] : null;
}

function renderHeader(m) {
  const rec = m.rec;
  const duration = (rec.finished_ms != null ? rec.finished_ms : Date.now()) - rec.created_ms;
  fill($('#run-header'),
    h('div', { class: 'run-title' },
      h('h1', {}, h('span', { class: 'mono', 'data-testid': 'run-id', title: rec.run_id }, rec.run_id)),
      badge(rec.status, { class: `badge big status-${rec.status}`, 'data-testid': 'run-status', 'data-status': rec.status }),
      run.traceUrl && h('a', { href: run.traceUrl, target: '_blank', rel: 'noopener', class: 'trace-link', 'data-testid': 'trace-link' }, 'trace in Jaeger ↗')),
    h('dl', { class: 'facts' },
      fact('Workflow', h('strong', {}, rec.workflow), ` v${rec.version}`),
      rec.parent && fact('Parent',
        h('a', { href: stepHref(rec.parent.run_id, rec.parent.step), class: 'mono', 'data-testid': 'parent-link', title: rec.parent.run_id },
          `${String(rec.parent.run_id).slice(0, 8)} / ${rec.parent.step}`)),
      rec.rerun_of && fact('Rerun of',
        h('a', { href: stepHref(rec.rerun_of.run_id, rec.rerun_of.from), class: 'mono', 'data-testid': 'rerun-of', title: rec.rerun_of.run_id },
          `${String(rec.rerun_of.run_id).slice(0, 8)}, from ${rec.rerun_of.from}`)),
      fact('Created', fmtDate(rec.created_ms)),
      fact('Finished', fmtDate(rec.finished_ms)),
      fact('Duration', fmtDuration(duration), rec.finished_ms == null && ' so far'),
      fact('Steps', stepCounts(m)),
      rec.spent && fact('Spent', spendText(rec.spent, rec.budget)),
      !rec.spent && rec.budget && fact('Budget', budgetText(rec.budget))),
    rec.errors && rec.errors.length > 0 && h('ul', { class: 'errors', 'data-testid': 'run-errors' }, rec.errors.map((e) => h('li', {}, e))),
    rec.abridged && h('p', { class: 'notice', 'data-testid': 'abridged' }, 'Abridged: ', rec.abridged));
}

function stepCounts(m) {
  const counts = new Map();
  for (const s of m.status.values()) counts.set(s, (counts.get(s) || 0) + 1);
  const parts = COUNT_ORDER.filter((s) => counts.has(s)).map((s) => h('span', { class: `count-text status-${s}` }, `${counts.get(s)} ${words(s)}`));
  return parts.length ? parts.flatMap((p, i) => (i ? [' · ', p] : [p])) : 'none yet';
}

function spendText(spent, budget) {
  const parts = [`${spent.tokens} tokens`];
  if (spent.cost) parts.push(`cost ${spent.cost.toFixed(4)}`);
  if (spent.reserved_tokens) parts.push(`${spent.reserved_tokens} tokens held`);
  return budget ? `${parts.join(' · ')} (budget: ${budgetText(budget)})` : parts.join(' · ');
}

function budgetText(budget) {
  const parts = [];
  if (budget.tokens != null) parts.push(`${budget.tokens} tokens`);
  if (budget.cost != null) parts.push(`cost ${budget.cost}`);
  return parts.join(', ') || 'none';
}

/* ---------- what the run waits for ---------- */

function renderWaiting(m) {
  const box = $('#run-waiting');
  const items = m.terminal ? [] : waitingItems(m);
  const signals = m.terminal ? [] : Object.entries(m.rec.signals || {});
  box.hidden = !items.length && !signals.length;
  if (box.hidden) return;
  fill(box, h('h2', {}, 'Waiting for'),
    items.length > 0 && h('ul', { class: 'wait-list', 'data-testid': 'waiting' }, items),
    signals.length > 0 && h('div', { class: 'signals' },
      h('h3', {}, 'Signals'),
      h('ul', { class: 'signal-list' }, signals.map(([name, sig]) => h('li', { 'data-signal-name': name },
        h('code', {}, name),
        sig.held && h('span', { class: 'held' }, ' held: data sent, waiting for its step to start'),
        sig.schema ? [' ', h('code', { class: 'schema' }, compact(sig.schema))] : ' (any data)')))));
}

function waitingItems(m) {
  const items = [];
  for (const path of m.order) {
    const step = m.steps[path];
    if (step.status !== 'running' && step.status !== 'pending') continue;
    const text = step.reason || (m.status.get(path) === 'waiting' ? waitText(path, step, m) : null);
    if (text) items.push(h('li', { 'data-step': path }, stepLink(path), ': ', text));
  }
  return items;
}

function waitText(path, step, m) {
  const node = m.nodeById.get(defId(path));
  const def = findDefStep(defId(path));
  const kind = node && node.kind;
  if (kind === 'signal' || (def && def.signal)) {
    const name = def && def.signal && def.signal.name;
    return name ? ['waiting for signal ', h('code', {}, name)] : 'waiting for a signal';
  }
  if (kind === 'wait' || (def && def.wait)) {
    const w = def && def.wait;
    if (w && w.duration != null) return `waiting ${compact(w.duration)}`;
    if (w && w.until != null) return `waiting until ${compact(w.until)}`;
    return 'waiting (a timer)';
  }
  if (step.child) return ['waiting for its child run ', h('a', { href: runHref(step.child), class: 'mono' }, String(step.child).slice(0, 8))];
  if (kind === 'workflow') return 'waiting for its child run';
  return 'waiting';
}

/* ---------- actions ---------- */

// Rebuilt only when what is possible changes, so typing in a form survives live records.
function renderActions(m) {
  const section = $('#run-actions');
  const result = $('#action-result');
  const key = JSON.stringify([m.rec.status, m.rec.signals || {}]);
  if (key !== run.actionsKey) {
    run.actionsKey = key;
    fill($('#run-actions-controls'), m.terminal
      ? (REDRIVABLE.has(m.rec.status) && !m.rec.parent ? redriveControl(m.rec) : h('p', { class: 'muted' }, 'The run is over: nothing to do.'))
      : [controls(m.rec), signalForms(m.rec)]);
  }
  section.hidden = m.terminal && result.hidden && !(REDRIVABLE.has(m.rec.status) && !m.rec.parent);
}

// Runs that a redrive carries on from where they stopped (a child run is redriven with its parent).
const REDRIVABLE = new Set(['failed', 'timed_out', 'cancelled']);

// The tool steps a redrive runs again: those that did not complete (the server says why
// a run cannot be redriven, if it cannot).
function redriveControl(rec) {
  const again = (rec.order || []).filter((p) => rec.steps[p] && rec.steps[p].status !== 'completed' && rec.steps[p].tool);
  const list = again.map((p) => `  ${p} (${rec.steps[p].tool}), key ${rec.run_id}/${p}`).join('\n');
  const button = h('button', {
    type: 'button', id: 'redrive-run', 'data-testid': 'redrive',
    onclick: async (e) => {
      const text = `Redrive run ${rec.run_id}? Completed steps keep their outputs.` +
        (again.length ? `\nThese tool steps run again, with the same idempotency keys:\n${list}` : '');
      if (!window.confirm(text)) return;
      const id = run.id;
      e.currentTarget.disabled = true;
      const res = await post(`/api/runs/${encodeURIComponent(id)}/redrive`, {});
      if (run.id !== id) return;
      if (res.ok) showRun(id, run.selected); else { e.currentTarget.disabled = false; showResult(res, 'redrive'); }
    },
  }, 'Redrive');
  return h('div', { class: 'controls' },
    h('p', { class: 'muted' }, `The run is ${rec.status.replace('_', ' ')}. A redrive carries it on from where it stopped` +
      (again.length ? `: ${again.length} tool step${again.length > 1 ? 's' : ''} run again.` : '.')),
    button);
}

function controls(rec) {
  const s = rec.status;
  const reason = h('input', { type: 'text', id: 'cancel-reason', name: 'reason', placeholder: 'reason (optional)' });
  const compensate = h('input', { type: 'checkbox', id: 'cancel-compensate', name: 'compensate' });
  const cancel = h('button', {
    type: 'button', class: 'danger', id: 'cancel-run', 'data-testid': 'cancel',
    onclick: (e) => {
      const undo = compensate.checked;
      const text = `Cancel run ${rec.run_id}?${undo ? '\nIts completed steps will be compensated.' : ''}`;
      if (!window.confirm(text)) return;
      act(e.currentTarget, 'cancel', { reason: reason.value.trim() || null, compensate: undo }, 'cancel');
    },
  }, 'Cancel run');
  return h('div', { class: 'controls' },
    s === 'running' && h('button', { type: 'button', id: 'pause-run', 'data-testid': 'pause', onclick: (e) => act(e.currentTarget, 'pause', {}, 'pause') }, 'Pause'),
    (s === 'paused' || s === 'budget_exceeded') && h('button', { type: 'button', id: 'resume-run', 'data-testid': 'resume', onclick: (e) => act(e.currentTarget, 'resume', {}, 'resume') }, 'Resume'),
    h('span', { class: 'cancel-group' }, reason, h('label', {}, compensate, ' compensate'), cancel));
}

async function act(button, action, body, what) {
  const id = run.id;
  button.disabled = true;
  const res = await post(`/api/runs/${encodeURIComponent(id)}/${action}`, body);
  button.disabled = false;
  if (run.id !== id) return;
  showResult(res, what);
  // Without a live stream nothing else would show what the action did.
  if (res.ok && !(run.live && run.live.open)) refetchRecord(id);
}

async function refetchRecord(id) {
  const res = await api(`/api/runs/${encodeURIComponent(id)}`);
  if (res.ok && run.id === id && res.body && res.body.record) onRecord(res.body.record);
}

function showResult(res, what) {
  const el = $('#action-result');
  el.hidden = false;
  el.dataset.state = res.ok ? 'ok' : 'error';
  const code = !res.ok && res.error.code ? ` [${res.error.code}]` : '';
  el.textContent = res.ok ? `${what}: ok` : `${what}: ${res.error.message}${code}`;
  $('#run-actions').hidden = false;
}

/* ---------- signal forms, from each signal's JSON Schema ---------- */

function signalForms(rec) {
  const entries = Object.entries(rec.signals || {});
  return entries.length ? h('div', { class: 'signal-forms' }, entries.map(([name, sig]) => signalForm(name, sig || {}))) : null;
}

function signalForm(name, sig) {
  const schema = sig.schema && typeof sig.schema === 'object' ? sig.schema : null;
  const props = schema && schema.properties && typeof schema.properties === 'object' ? schema.properties : null;
  const required = new Set(schema && Array.isArray(schema.required) ? schema.required : []);
  const fields = props ? Object.entries(props).map(([key, s]) => schemaField(key, s || {}, required.has(key))) : [];
  const raw = h('textarea', { class: 'raw-json mono', rows: 5, 'data-testid': 'signal-json', placeholder: 'JSON data, e.g. {"approved": true}', spellcheck: 'false' });
  const rawOnly = !fields.length;
  const toggle = h('input', { type: 'checkbox', class: 'raw-toggle', 'data-testid': 'signal-raw-toggle', checked: rawOnly, disabled: rawOnly });
  const fieldBox = h('div', { class: 'fields', hidden: rawOnly }, fields.map((f) => f.el));
  raw.hidden = !rawOnly;
  raw.value = rawOnly ? '{}' : '';
  toggle.addEventListener('change', () => switchRaw(toggle.checked, fields, fieldBox, raw));
  const form = h('form', { class: 'signal-form', 'data-signal': name, novalidate: true },
    h('h3', {}, 'Signal ', h('code', {}, name), sig.held && h('span', { class: 'held' }, ' (data held: a second is refused)')),
    fieldBox,
    h('label', { class: 'raw-label' }, toggle, ' edit the data as JSON'),
    raw,
    h('button', { type: 'submit', 'data-testid': 'send-signal' }, 'Send signal'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    sendSignal(form, name, toggle.checked ? () => JSON.parse(raw.value || 'null') : () => collect(fields));
  });
  return form;
}

function switchRaw(on, fields, fieldBox, raw) {
  if (on) {
    try {
      raw.value = pretty(collect(fields));
    } catch (_) {
      raw.value = '{}';
    }
  } else {
    try {
      const data = JSON.parse(raw.value || '{}');
      fields.forEach((f) => f.write(data ? data[f.name] : undefined));
    } catch (_) {
      // Unparsable JSON: the fields keep what they had.
    }
  }
  fieldBox.hidden = on;
  raw.hidden = !on;
}

function collect(fields) {
  const data = {};
  for (const f of fields) {
    const value = f.read();
    if (value !== undefined) data[f.name] = value;
  }
  return data;
}

async function sendSignal(form, name, read) {
  const button = $('[data-testid="send-signal"]', form);
  let data;
  try {
    data = read();
  } catch (e) {
    showResult({ ok: false, error: { message: e.message } }, `signal ${name}`);
    return;
  }
  await act(button, 'signal', { name, data }, `signal ${name}`);
}

// The JSON type a property's schema asks for, `null` aside (`["string", "null"]` is a string).
function schemaType(s) {
  if (Array.isArray(s.enum)) return 'enum';
  const types = Array.isArray(s.type) ? s.type : [s.type];
  const main = types.filter((t) => t && t !== 'null');
  return main.length === 1 ? main[0] : 'json';
}

function schemaField(key, s, required) {
  const type = schemaType(s);
  const make = FIELD_MAKERS[type] || FIELD_MAKERS.json;
  const field = make(key, s, required);
  const title = s.title && s.title !== key ? ` (${s.title})` : '';
  const label = h('span', { class: 'field-name' }, h('code', {}, key), title, required && h('span', { class: 'req', title: 'required' }, ' *'));
  field.name = key;
  field.el = h('label', { class: `field field-${type}${required ? ' required' : ''}`, 'data-field': key },
    type === 'boolean' ? [field.input, ' ', label] : [label, field.input],
    s.description && h('small', { class: 'muted' }, s.description));
  if (s.default !== undefined) field.write(s.default);
  return field;
}

// Each maker returns the control and how to read and write its value; read() gives
// undefined for a value left empty, which is then left out of the data.
const FIELD_MAKERS = {
  boolean(key) {
    const input = h('input', { type: 'checkbox', name: key });
    return { input, read: () => input.checked, write: (v) => { input.checked = v === true; } };
  },
  integer(key, s, required) {
    return numberField(key, required, true);
  },
  number(key, s, required) {
    return numberField(key, required, false);
  },
  string(key, s, required) {
    const input = h('input', { type: 'text', name: key, placeholder: s.format || '' });
    return {
      input,
      read: () => {
        if (input.value !== '') return input.value;
        if (required) throw new Error(`\`${key}\` is required`);
        return undefined;
      },
      write: (v) => { input.value = v == null ? '' : String(v); },
    };
  },
  enum(key, s, required) {
    const input = h('select', { name: key },
      !required && h('option', { value: '' }, '—'),
      s.enum.map((v) => h('option', { value: JSON.stringify(v) }, compact(v))));
    return {
      input,
      read: () => (input.value === '' ? undefined : JSON.parse(input.value)),
      write: (v) => { input.value = v === undefined ? '' : JSON.stringify(v); },
    };
  },
  json(key, s, required) {
    const input = h('textarea', { name: key, rows: 2, class: 'mono', placeholder: 'JSON', spellcheck: 'false' });
    return {
      input,
      read: () => {
        if (input.value.trim() === '') {
          if (required) throw new Error(`\`${key}\` is required`);
          return undefined;
        }
        try {
          return JSON.parse(input.value);
        } catch (e) {
          throw new Error(`\`${key}\` is not JSON: ${e.message}`);
        }
      },
      write: (v) => { input.value = v === undefined ? '' : pretty(v); },
    };
  },
};

function numberField(key, required, integer) {
  const input = h('input', { type: 'number', name: key, step: integer ? '1' : 'any' });
  return {
    input,
    read: () => {
      if (input.value === '') {
        if (required) throw new Error(`\`${key}\` is required`);
        return undefined;
      }
      const n = Number(input.value);
      if (!isFinite(n) || (integer && !Number.isInteger(n))) throw new Error(`\`${key}\` must be ${integer ? 'an integer' : 'a number'}`);
      return n;
    },
    write: (v) => { input.value = typeof v === 'number' ? String(v) : ''; },
  };
}

/* ---------- graph ---------- */

const NODE_W = 168;
const NODE_H = 46;
const GAP_X = 28;
const GAP_Y = 42;
const PAD = 14;
let markerSeq = 0;

function graphLegend() {
  const line = (kind, text) => h('span', { class: 'legend-item' },
    svg('svg', { width: 28, height: 10 }, svg('line', { x1: 0, y1: 5, x2: 28, y2: 5, class: `edge edge-${kind}` })), ` ${text}`);
  return h('span', { class: 'legend muted' }, line('data', 'reads'), line('when', 'when'), line('order', 'depends_on'), h('span', { class: 'legend-item' }, '◆ has a condition'));
}

function renderGraph(m) {
  const box = fill($('#run-graph-body'));
  if (m.fromRecord) box.append(h('p', { class: 'notice', 'data-testid': 'graph-without-dependencies' }, 'graph without dependencies: the definition is not registered'));
  const panels = h('div', { class: 'scope-panels' });
  for (const scope of m.graph.scopes || []) {
    const nodes = m.graph.nodes.filter((n) => n.scope === scope.id);
    if (!nodes.length) continue;
    const ids = new Set(nodes.map((n) => n.id));
    const edges = (m.graph.edges || []).filter((e) => ids.has(e.from) && ids.has(e.to) && e.from !== e.to);
    const drawing = drawScope(nodes, edges, m);
    if (scope.id === 'top') box.append(h('div', { class: 'scope scope-top', 'data-scope': 'top' }, drawing));
    else panels.append(h('div', { class: 'scope scope-panel', 'data-scope': scope.id }, h('h3', {}, scope.label || scope.id), drawing));
  }
  if (panels.childNodes.length) box.append(panels);
}

// Longest path from a root, over the edges within the scope.
function levels(nodes, edges) {
  const preds = new Map(nodes.map((n) => [n.id, []]));
  const succs = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) {
    preds.get(e.to).push(e.from);
    succs.get(e.from).push(e.to);
  }
  const indegree = new Map(nodes.map((n) => [n.id, preds.get(n.id).length]));
  const level = new Map();
  const queue = nodes.map((n) => n.id).filter((id) => indegree.get(id) === 0);
  queue.forEach((id) => level.set(id, 0));
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i];
    for (const next of succs.get(id)) {
      level.set(next, Math.max(level.get(next) || 0, level.get(id) + 1));
      indegree.set(next, indegree.get(next) - 1);
      if (indegree.get(next) === 0) queue.push(next);
    }
  }
  // A cycle (a definition should have none) still gets drawn somewhere.
  for (const n of nodes) if (!level.has(n.id)) level.set(n.id, 0);
  return { level, preds };
}

function layout(nodes, edges) {
  const { level, preds } = levels(nodes, edges);
  const rows = [];
  for (const n of nodes) {
    const l = level.get(n.id);
    (rows[l] = rows[l] || []).push(n.id);
  }
  const stride = NODE_W + GAP_X;
  const rel = new Map();
  const docIndex = new Map(nodes.map((n, i) => [n.id, i]));
  rows.forEach((row, l) => {
    if (!row) return;
    if (l > 0) {
      // Under the mean of its parents, to keep edges short and crossings few.
      const bary = (id) => {
        const xs = preds.get(id).filter((p) => rel.has(p)).map((p) => rel.get(p));
        return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Infinity;
      };
      row.sort((a, b) => bary(a) - bary(b) || docIndex.get(a) - docIndex.get(b));
    }
    row.forEach((id, i) => rel.set(id, (i - (row.length - 1) / 2) * stride));
  });
  const widest = Math.max(1, ...rows.map((r) => (r ? r.length : 0)));
  const width = widest * stride - GAP_X + 2 * PAD;
  const height = rows.length * (NODE_H + GAP_Y) - GAP_Y + 2 * PAD;
  const pos = new Map();
  for (const n of nodes) pos.set(n.id, { x: width / 2 + rel.get(n.id) - NODE_W / 2, y: PAD + level.get(n.id) * (NODE_H + GAP_Y) });
  return { pos, width, height };
}

function drawScope(nodes, edges, m) {
  const { pos, width, height } = layout(nodes, edges);
  const marker = `arrow-${++markerSeq}`;
  return svg('svg', { class: 'graph', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img' },
    svg('defs', {}, svg('marker', { id: marker, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }))),
    edges.map((e) => drawEdge(e, pos, marker)),
    nodes.map((n) => drawNode(n, pos.get(n.id), m)));
}

function drawEdge(e, pos, marker) {
  const a = pos.get(e.from);
  const b = pos.get(e.to);
  const x1 = a.x + NODE_W / 2;
  const y1 = a.y + NODE_H;
  const x2 = b.x + NODE_W / 2;
  const y2 = b.y - 1;
  const bend = Math.max(18, (y2 - y1) / 2);
  const d = y2 > y1
    ? `M${x1},${y1} C${x1},${y1 + bend} ${x2},${y2 - bend} ${x2},${y2}`
    : `M${x1},${y1} C${x1},${y1 + 40} ${x2},${y2 - 40} ${x2},${y2}`;
  return svg('path', { d, class: `edge edge-${e.kind}`, 'marker-end': `url(#${marker})`, 'data-from': e.from, 'data-to': e.to },
    svg('title', {}, `${e.from} → ${e.to} (${e.kind})`));
}

function drawNode(n, p, m) {
  const status = nodeStatus(n.id, m);
  const paths = m.byDef.get(n.id) || [];
  const body = n.scope !== 'top';
  const done = paths.filter((q) => ['completed', 'compensated'].includes(m.status.get(q))).length;
  const selected = run.selected && (run.selected === n.id || defId(run.selected) === n.id);
  const sub = n.tool || (n.kind && n.kind !== 'tool' ? n.kind : '');
  const title = `${(n.label || n.id).replace(/\n/g, ' · ')}: ${words(status)}${body ? ` (${done}/${paths.length} done)` : ''}`;
  return svg('g', {
    class: `node status-${status}${selected ? ' selected' : ''}`, 'data-step': n.id, 'data-status': status,
    transform: `translate(${p.x},${p.y})`, tabindex: 0, role: 'button',
    onclick: () => navStep(n.id),
    onkeydown: (e) => { if (e.key === 'Enter') navStep(n.id); },
  },
  svg('title', {}, title),
  svg('rect', { width: NODE_W, height: NODE_H, rx: 8, ry: 8 }),
  n.when && svg('path', { class: 'when-mark', d: `M${NODE_W - 12},4 l6,6 l-6,6 l-6,-6 z` }),
  svg('text', { x: 10, y: 19, class: 'node-id' }, clip(n.id, 20)),
  svg('text', { x: 10, y: 36, class: 'node-sub' }, clip(sub, body ? 16 : 22)),
  body && svg('text', { x: NODE_W - 8, y: 36, class: 'node-count', 'text-anchor': 'end' }, `${done}/${paths.length}`));
}

function clip(text, n) {
  const s = String(text || '');
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/* ---------- waterfall ---------- */

function timelineRows(m) {
  const rows = [];
  for (const path of m.order) {
    const step = m.steps[path];
    for (const a of step.attempts || []) rows.push({ path, a, compensate: false });
    const comp = step.compensation;
    if (comp) for (const a of comp.attempts || []) rows.push({ path, a, compensate: true, tool: comp.tool });
  }
  // Stable: same-millisecond dispatches keep document order.
  return rows.map((r, i) => ({ ...r, i })).sort((x, y) => x.a.dispatched_ms - y.a.dispatched_ms || x.i - y.i);
}

function renderTimeline(m) {
  const box = fill($('#run-timeline-body'));
  const rows = timelineRows(m);
  if (!rows.length) {
    box.append(h('p', { class: 'muted' }, 'No attempts yet.'));
    return;
  }
  const now = Date.now();
  const t0 = m.rec.created_ms;
  let t1 = m.rec.finished_ms != null ? m.rec.finished_ms : now;
  for (const { a } of rows) t1 = Math.max(t1, a.finished_ms || 0, a.started_ms || 0, a.dispatched_ms);
  const span = Math.max(1, t1 - t0);
  const end = m.rec.finished_ms != null ? m.rec.finished_ms : now;
  box.append(h('div', { class: 'waterfall', 'data-testid': 'timeline' },
    timelineAxis(span),
    rows.map((r) => timelineRow(r, t0, span, end, m))));
}

function timelineAxis(span) {
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => h('span', { class: 'tick', style: `left:${f * 100}%` }, `+${fmtDuration(span * f)}`));
  return h('div', { class: 'tl-row tl-axis' }, h('div', { class: 'tl-label muted' }, 'step · attempt · worker'), h('div', { class: 'tl-track' }, ticks), h('div', { class: 'tl-times muted' }, 'queue · run'));
}

// Queue time is dispatched → started; a step with no start (one the coordinator runs
// itself: constructs, waits, signals) has none, its whole span counts as run time.
function timelineRow(r, t0, span, runEnd, m) {
  const a = r.a;
  const unfinished = a.finished_ms == null;
  const end = unfinished ? runEnd : a.finished_ms;
  const queued = a.started_ms == null && unfinished && a.worker !== 'coordinator' && Boolean(m.steps[r.path].tool || r.compensate);
  const startRun = a.started_ms != null ? a.started_ms : queued ? end : a.dispatched_ms;
  const state = unfinished ? (m.terminal ? 'stopped' : 'active') : a.ok ? 'ok' : 'failed';
  const pct = (t) => ((t - t0) / span) * 100;
  const bar = (cls, from, to) => h('div', { class: cls, style: `left:${pct(from)}%;width:${Math.max(0, pct(to) - pct(from))}%` });
  const queueMs = startRun - a.dispatched_ms;
  const runMs = end - startRun;
  const more = unfinished ? '…' : '';
  return h('div', {
    class: `tl-row${r.compensate ? ' tl-compensate' : ''}`, 'data-step': r.path, 'data-attempt': a.attempt,
    'data-kind': r.compensate ? 'compensate' : 'attempt', 'data-state': state,
    onclick: () => navStep(r.path),
    title: `${r.path} attempt ${a.attempt}${a.worker ? ` on ${a.worker}` : ''}: queue ${Math.round(queueMs)} ms, run ${Math.round(runMs)} ms${more}${a.error ? ` — ${a.error.message}` : ''}`,
  },
  h('div', { class: 'tl-label' },
    r.compensate && h('span', { class: 'tag' }, 'compensate'),
    h('span', { class: 'mono' }, r.path), h('span', { class: 'muted' }, ` #${a.attempt}`),
    a.worker && h('span', { class: 'muted' }, ` · ${a.worker}`)),
  h('div', { class: 'tl-track' },
    queueMs > 0 && bar('tl-bar tl-queue', a.dispatched_ms, startRun),
    !queued && bar(`tl-bar tl-run ${state}`, startRun, end)),
  h('div', { class: 'tl-times mono' }, `${Math.round(queueMs)} · ${Math.round(runMs)}${more} ms`));
}

/* ---------- steps table ---------- */

function renderSteps(m) {
  const box = fill($('#run-steps-body'));
  if (!m.order.length) {
    box.append(h('p', { class: 'muted' }, m.rec.abridged ? 'Steps left out of the abridged record.' : 'No steps yet.'));
    return;
  }
  const depth = depthOf(m);
  box.append(h('table', { class: 'table steps', 'data-testid': 'steps' },
    h('thead', {}, h('tr', {}, ['Step', 'Status', 'Tool', 'Attempts', 'Duration', 'Reason'].map((t) => h('th', {}, t)))),
    h('tbody', {}, m.order.map((p) => stepRow(p, m, depth(p))))));
}

function depthOf(m) {
  const memo = new Map();
  const depth = (p) => {
    if (!memo.has(p)) {
      const within = m.steps[p] && m.steps[p].within;
      memo.set(p, within && within !== p ? depth(within) + 1 : 0);
    }
    return memo.get(p);
  };
  return depth;
}

function attemptMs(a) {
  if (!a || a.finished_ms == null) return null;
  return a.finished_ms - (a.started_ms != null ? a.started_ms : a.dispatched_ms);
}

function stepRow(path, m, depth) {
  const step = m.steps[path];
  const status = m.status.get(path);
  const attempts = step.attempts || [];
  const last = attempts[attempts.length - 1];
  const selected = run.selected === path;
  return h('tr', {
    class: `step-row status-${status}${selected ? ' selected' : ''}${depth ? ' nested' : ''}`,
    'data-step': path, 'data-status': status, 'data-raw-status': step.status, tabindex: 0,
    onclick: () => navStep(path),
    onkeydown: (e) => { if (e.key === 'Enter') navStep(path); },
  },
  h('td', { class: 'mono path', style: `padding-left:${0.6 + depth * 1.4}rem` }, depth > 0 && h('span', { class: 'indent' }, '↳ '), path),
  h('td', {}, badge(status)),
  h('td', { class: 'mono' }, step.tool || kindOf(path, m)),
  h('td', { class: 'num' }, attempts.length || ''),
  h('td', { class: 'num' }, last && last.finished_ms == null ? 'running' : fmtDuration(attemptMs(last))),
  h('td', { class: 'reason' }, step.reason || ''));
}

/* ---------- step detail ---------- */

function renderDetail(m) {
  const aside = $('#step-detail');
  const view = $('#run-view');
  const sel = run.selected;
  view.classList.toggle('has-detail', Boolean(sel));
  aside.hidden = !sel;
  if (!sel) {
    aside.replaceChildren();
    return;
  }
  aside.setAttribute('data-step', sel);
  const step = m.steps[sel];
  fill(aside,
    h('div', { class: 'detail-head' },
      h('h2', { class: 'mono' }, sel),
      step && badge(m.status.get(sel), { 'data-testid': 'step-status', 'data-status': m.status.get(sel) }),
      h('a', { href: runHref(run.id), class: 'close', title: 'close', 'aria-label': 'close' }, '×')),
    step ? stepDetail(sel, step, m) : nodeDetail(sel, m));
}

function nodeDetail(id, m) {
  const paths = m.byDef.get(id) || [];
  if (!paths.length) return h('p', { class: 'muted' }, `No instance of step \`${id}\` in this run yet.`);
  return [h('p', {}, `${paths.length} instance${paths.length > 1 ? 's' : ''} of `, h('code', {}, id), ':'), instanceList(paths, m)];
}

function instanceList(paths, m) {
  return h('ul', { class: 'instances' }, paths.map((p) => h('li', { 'data-step': p }, stepLink(p), ' ', badge(m.status.get(p)))));
}

function stepDetail(path, step, m) {
  const node = m.nodeById.get(defId(path));
  const status = m.status.get(path);
  return [
    h('dl', { class: 'facts' },
      fact('Status', status !== step.status ? `${words(step.status)} (shown as ${words(status)})` : words(status)),
      fact('Tool', step.tool && h('code', {}, step.tool)),
      fact('Kind', node && node.kind),
      fact('Reason', step.reason),
      fact('Idempotency key', h('code', { class: 'key', 'data-testid': 'idempotency-key' }, `${m.rec.run_id}/${path}`)),
      fact('Within', step.within && stepLink(step.within)),
      fact('Child run', step.child && h('a', { href: runHref(step.child), class: 'mono', 'data-testid': 'child-link' }, String(step.child)))),
    'params' in step && jsonBlock('Params', step.params),
    'output' in step && jsonBlock('Output', step.output),
    attemptsBlock('Attempts', step.attempts || []),
    step.compensation && compensationBlock(step.compensation),
    step.plans && step.plans.length > 0 && plansBlock(step.plans),
    m.constructs.has(path) && constructBlock(path, m),
  ];
}

function jsonBlock(title, value) {
  return h('div', { class: 'block' }, h('h3', {}, title), h('pre', { class: 'json' }, pretty(value)));
}

function attemptsBlock(title, attempts) {
  if (!attempts.length) return h('div', { class: 'block' }, h('h3', {}, title), h('p', { class: 'muted' }, 'none'));
  return h('div', { class: 'block' }, h('h3', {}, title), attempts.map(attemptCard));
}

function attemptCard(a) {
  const queue = a.started_ms != null ? a.started_ms - a.dispatched_ms : null;
  const ran = attemptMs(a);
  const state = a.finished_ms == null ? 'running' : a.ok ? 'completed' : 'failed';
  const e = a.error;
  return h('div', { class: `attempt status-${state}`, 'data-attempt': a.attempt },
    h('div', { class: 'attempt-head' }, h('strong', {}, `#${a.attempt}`), ' ', badge(a.finished_ms == null ? 'running' : a.ok ? 'ok' : 'failed'), a.worker && h('span', { class: 'muted' }, ` on ${a.worker}`)),
    h('dl', { class: 'facts small' },
      fact('Dispatched', fmtClock(a.dispatched_ms)),
      fact('Started', fmtClock(a.started_ms)),
      fact('Finished', fmtClock(a.finished_ms)),
      fact('Queue', queue != null && `${queue} ms`),
      fact('Run', ran != null && `${ran} ms`),
      fact('Tokens', a.usage && compact(a.usage)),
      fact('Cost', a.cost != null && String(a.cost))),
    e && h('p', { class: 'error-text' }, e.message, e.code && [' ', h('code', {}, e.code)], e.retryable === false ? ' (not retryable)' : ' (retryable)'));
}

function compensationBlock(c) {
  return h('div', { class: 'block compensation' },
    h('h3', {}, 'Compensation ', badge(c.status)),
    h('p', {}, 'tool ', h('code', {}, c.tool)),
    attemptsBlock('Its attempts', c.attempts || []));
}

function plansBlock(plans) {
  return h('div', { class: 'block' }, h('h3', {}, 'Plans'),
    plans.map((p, i) => h('div', { class: 'plan-round' },
      h('p', {}, h('strong', {}, `Round ${i + 1}`), ` (attempt ${p.attempt}${p.attempt === 0 ? ', sent by an approver' : ''}): `,
        !p.checked ? 'not checked yet' : p.problems && p.problems.length ? `${p.problems.length} problem(s)` : 'valid'),
      p.problems && p.problems.length > 0 && h('ul', { class: 'errors' }, p.problems.map((x) => h('li', {}, x))),
      h('details', {}, h('summary', {}, 'the plan'), h('pre', { class: 'json' }, pretty(p.plan))))));
}

// A construct's instances, grouped by item or iteration (`stock[0]`, `stock[1]`...).
function constructBlock(path, m) {
  const children = m.order.filter((p) => m.steps[p].within === path);
  const groups = new Map();
  for (const p of children) {
    const cut = p.lastIndexOf('].');
    const key = cut < 0 ? path : p.slice(0, cut + 1);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(p);
  }
  return h('div', { class: 'block' }, h('h3', {}, `Instances (${groups.size})`),
    h('ul', { class: 'instances' }, [...groups].map(([key, paths]) => h('li', {},
      h('code', {}, key), ': ', paths.flatMap((p, i) => [i ? ', ' : '', stepLink(p), ' ', badge(m.status.get(p))])))));
}

/* ---------- events ---------- */

// The server replays every event from seq 1 on each (re)connection: keep one per seq.
function onEvent(ev) {
  if (!ev || typeof ev.seq !== 'number' || run.events.has(ev.seq)) return;
  run.events.set(ev.seq, ev);
  const box = $('#events-box');
  if (!box) return;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 30;
  if (ev.seq > run.maxSeq) {
    box.append(eventLine(ev));
    run.maxSeq = ev.seq;
  } else {
    fill(box, [...run.events.values()].sort((a, b) => a.seq - b.seq).map(eventLine));
  }
  $('#events-count').textContent = `${run.events.size}`;
  if (atBottom) box.scrollTop = box.scrollHeight;
}

const EVENT_FRAME = new Set(['run_id', 'seq', 'at_ms', 'event']);

function eventLine(ev) {
  const rest = Object.entries(ev).filter(([k]) => !EVENT_FRAME.has(k));
  return h('div', { class: 'ev', 'data-seq': ev.seq, 'data-event': ev.event },
    h('span', { class: 'ev-seq' }, ev.seq),
    h('span', { class: 'ev-time' }, fmtClock(ev.at_ms)),
    h('span', { class: 'ev-name' }, ev.event),
    h('span', { class: 'ev-fields' }, rest.map(([k, v]) => h('span', { class: 'ev-field' },
      h('span', { class: 'k' }, `${k}=`),
      k === 'step_id' && typeof v === 'string' ? stepLink(v) : h('span', { class: 'v' }, compact(v))))));
}

/* ---------- JSON ---------- */

// Pretty-printing a large record on every update is costly: a section is filled only while open.
function renderJson(m) {
  const box = fill($('#run-json-body'));
  const parts = [['input', m.rec.input], ['output', m.rec.output], ['definition', run.definition], ['record', m.rec]];
  for (const [name, value] of parts) {
    if (value === undefined || (name === 'definition' && value === null)) continue;
    const pre = h('pre', { class: 'json' });
    const details = h('details', { 'data-json': name }, h('summary', {}, name), pre);
    const show = () => { pre.textContent = pretty(value); };
    if (run.openJson.has(name)) {
      details.open = true;
      show();
    }
    details.addEventListener('toggle', () => {
      if (details.open) {
        run.openJson.add(name);
        show();
      } else {
        run.openJson.delete(name);
      }
    });
    box.append(details);
  }
}

/* ---------- start ---------- */

window.addEventListener('hashchange', route);
route();
