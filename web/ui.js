// aisle's pages, shared part: API calls with the key from session storage, element building,
// small SVG charts, streamed (server-sent) answers. No dependencies, nothing from other hosts.

const KEY = 'aisle.key';

/** The API key of this tab: session storage only (never a URL, never local storage). */
export const keyStore = {
  get: () => sessionStorage.getItem(KEY) || '',
  set: (k) => (k ? sessionStorage.setItem(KEY, k) : sessionStorage.removeItem(KEY)),
};

/** An answer that was not 2xx, with its problem document (RFC 9457). */
export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem && typeof problem === 'object' ? problem.detail || problem.title : String(problem || '');
    super(`${status}: ${detail || 'request failed'}`);
    this.status = status;
    this.problem = problem;
  }
}

function headers(json) {
  const h = { accept: 'application/json' };
  const key = keyStore.get();
  if (key) h.authorization = 'Bearer ' + key;
  if (json) h['content-type'] = 'application/json';
  return h;
}

/** Call the API: JSON in, JSON out; throws ApiError on a problem. */
export async function api(path, { method, body } = {}) {
  const res = await fetch(path, {
    method: method || (body === undefined ? 'GET' : 'POST'),
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'omit',
    cache: 'no-store',
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

/** Plain text of an endpoint (e.g. /metrics). */
export async function apiText(path) {
  const res = await fetch(path, { headers: headers(false), credentials: 'omit', cache: 'no-store' });
  if (!res.ok) throw new ApiError(res.status, await res.text());
  return res.text();
}

/** POST a body and call onEvent(name, data) for each server-sent event of the answer. */
export async function stream(path, body, onEvent) {
  const res = await fetch(path, {
    method: 'POST',
    headers: { ...headers(true), accept: 'text/event-stream' },
    body: JSON.stringify(body),
    credentials: 'omit',
  });
  if (!res.ok) {
    let p = await res.text();
    try { p = JSON.parse(p); } catch { /* text */ }
    throw new ApiError(res.status, p);
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let at;
    while ((at = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, at);
      buf = buf.slice(at + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (!data.length) continue;
      let parsed = data.join('\n');
      try { parsed = JSON.parse(parsed); } catch { /* text */ }
      onEvent(name, parsed);
    }
  }
}

/** Build an element: h('a', {href: '#', onclick: f, class: 'x'}, 'text', child). */
export function h(tag, attrs, ...children) {
  const svg = ['svg', 'g', 'path', 'line', 'rect', 'text', 'circle', 'polyline', 'title'].includes(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' && !svg) el.value = v;
    else if (k === 'checked' && !svg) el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A price as the catalog gives it. */
export function money(price, currency) {
  if (price === null || price === undefined) return '';
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency: currency || 'USD' }).format(price);
  } catch {
    return `${price.toFixed(2)} ${currency || ''}`;
  }
}

export const pct = (x) => (x === null || x === undefined || !isFinite(x) ? '–' : (100 * x).toFixed(1) + '%');
export const num = (x, d = 0) => (x === null || x === undefined ? '–' : Number(x).toLocaleString(undefined, { maximumFractionDigits: d }));

/** A message for a failure, for the page. */
export function errorBox(e) {
  const p = e && e.problem && typeof e.problem === 'object' ? e.problem : null;
  const fields = p && Array.isArray(p.errors) ? p.errors.map((f) => `${f.pointer}: ${f.detail}`) : [];
  return h('div', { class: 'error', role: 'alert' }, e.message || String(e), fields.length ? h('ul', {}, fields.map((f) => h('li', {}, f))) : null);
}

const PALETTE = ['#2563eb', '#d97706', '#059669', '#dc2626', '#7c3aed', '#0891b2', '#65a30d', '#db2777'];

/**
 * A line chart. series: [{name, values: [number]}] over shared x labels.
 * Drawn as SVG elements (no inline style), with a legend and a title for screen readers.
 */
export function lineChart(title, labels, series, { height = 180, format = (v) => num(v, 2), floor = 1e-9 } = {}) {
  const w = 640, hgt = height, left = 44, bottom = 22, top = 8;
  const max = Math.max(floor, ...series.flatMap((s) => s.values));
  const x = (i) => left + (labels.length <= 1 ? 0 : (i * (w - left - 8)) / (labels.length - 1));
  const y = (v) => top + (hgt - top - bottom) * (1 - v / max);
  const svg = h('svg', { viewBox: `0 0 ${w} ${hgt}`, class: 'chart', role: 'img', 'aria-label': title }, h('title', {}, title));
  for (const f of [0, 0.5, 1]) {
    svg.append(h('line', { x1: left, x2: w - 8, y1: y(max * f), y2: y(max * f), class: 'grid' }));
    svg.append(h('text', { x: left - 4, y: y(max * f) + 4, class: 'axis', 'text-anchor': 'end' }, format(max * f)));
  }
  const step = Math.max(1, Math.ceil(labels.length / 7));
  labels.forEach((l, i) => {
    if (i % step === 0 || i === labels.length - 1) svg.append(h('text', { x: x(i), y: hgt - 6, class: 'axis', 'text-anchor': 'middle' }, l));
  });
  series.forEach((s, k) => {
    const pts = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    svg.append(h('polyline', { points: pts, fill: 'none', stroke: PALETTE[k % PALETTE.length], 'stroke-width': 2 }, h('title', {}, s.name)));
  });
  return h('figure', { class: 'figure' }, svg, legend(series.map((s) => s.name)), h('figcaption', {}, title));
}

/** Horizontal bars: rows [{label, value}], e.g. ratios to an anchor (a line at `mark`). */
export function barChart(title, rows, { format = (v) => num(v, 2), mark = null } = {}) {
  const w = 640, rowH = 20, left = 250;
  const hgt = rows.length * rowH + 10;
  const max = Math.max(1e-9, mark || 0, ...rows.map((r) => r.value));
  const sx = (v) => ((w - left - 60) * v) / max;
  const svg = h('svg', { viewBox: `0 0 ${w} ${hgt}`, class: 'chart', role: 'img', 'aria-label': title }, h('title', {}, title));
  rows.forEach((r, i) => {
    const yy = 5 + i * rowH;
    svg.append(h('text', { x: left - 6, y: yy + 13, class: 'axis', 'text-anchor': 'end' }, r.label.length > 42 ? r.label.slice(0, 41) + '…' : r.label));
    svg.append(h('rect', { x: left, y: yy + 2, width: Math.max(1, sx(r.value)), height: rowH - 6, fill: PALETTE[0] }));
    svg.append(h('text', { x: left + sx(r.value) + 4, y: yy + 13, class: 'axis' }, format(r.value)));
  });
  if (mark !== null) svg.append(h('line', { x1: left + sx(mark), x2: left + sx(mark), y1: 0, y2: hgt, class: 'mark' }));
  return h('figure', { class: 'figure' }, svg, h('figcaption', {}, title));
}

function legend(names) {
  return h('ul', { class: 'legend' }, names.map((n, k) => h('li', {}, h('span', { class: `swatch c${k % PALETTE.length}` }), n)));
}

/** A random id (events are idempotent by id). */
export const newId = () => (crypto.randomUUID ? crypto.randomUUID() : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join(''));

/** Offer a JSON value as a file download (a blob URL of this origin). */
export function download(name, value) {
  const url = URL.createObjectURL(new Blob([JSON.stringify(value, null, 2)], { type: 'application/json' }));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** Parse Prometheus text: {name: [{labels, value}]} (comments and histograms' buckets kept by name). */
export function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const part of (m[3] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[part[1]] = part[2];
    (out[m[1]] = out[m[1]] || []).push({ labels, value: Number(m[4]) });
  }
  return out;
}

/** Sum of a metric's samples (optionally only those whose labels pass `keep`). */
export const metricSum = (m, name, keep = () => true) => (m[name] || []).filter((s) => keep(s.labels)).reduce((a, s) => a + s.value, 0);
