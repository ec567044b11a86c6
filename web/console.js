// The console: sign in with an API key, then pages by role. Every call goes to this server's
// API with the key in the Authorization header; the server refuses what the key may not do,
// and the pages hide it.
import {
  api, apiText, stream, h, fill, money, pct, num, errorBox, lineChart, barChart, keyStore, download,
  parseMetrics, metricSum,
} from './ui.js';

const RANK = { widget: 0, read: 1, app: 2, admin: 3 };
let me = null; // {name, role, auth}
const app = document.getElementById('app');
const can = (role) => me && RANK[me.role] >= RANK[role];

const PAGES = [
  { group: 'Shop', id: 'overview', title: 'Overview', role: 'read', show: overview },
  { group: 'Shop', id: 'catalog', title: 'Catalog', role: 'read', show: catalog },
  { group: 'Shop', id: 'customers', title: 'Customers', role: 'app', show: customers },
  { group: 'Shop', id: 'rules', title: 'Merchandising rules', role: 'read', show: rules },
  { group: 'Try', id: 'recommend', title: 'Recommendations', role: 'app', show: recommendPlayground },
  { group: 'Try', id: 'assistant', title: 'Assistant', role: 'app', show: assistantPlayground },
  { group: 'Measure', id: 'reports', title: 'Evaluation & benchmarks', role: 'read', show: reports },
  { group: 'Measure', id: 'metrics', title: 'Metrics', role: 'read', show: metrics },
  { group: 'Govern', id: 'audit', title: 'Audit log', role: 'admin', show: audit },
  { group: 'Govern', id: 'keys', title: 'API keys', role: 'admin', show: keys },
  { group: 'Govern', id: 'settings', title: 'Configuration', role: 'admin', show: settings },
];

async function start() {
  document.getElementById('logout').addEventListener('click', () => { keyStore.set(''); me = null; route(); });
  window.addEventListener('hashchange', route);
  await route();
}

async function signIn() {
  try {
    me = await api('/v1/whoami');
  } catch (e) {
    me = null;
    if (e.status !== 401) throw e;
  }
  const who = document.getElementById('who');
  document.getElementById('logout').hidden = !me || me.auth !== 'keys';
  fill(who, me ? `${me.name} · ${me.role}${me.auth === 'keys' ? '' : ' · server without keys'}` : '');
}

function loginForm(message) {
  const input = h('input', { id: 'key', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const form = h('form', { class: 'panel login', onsubmit: async (ev) => {
    ev.preventDefault();
    keyStore.set(input.value.trim());
    await route();
  } },
  h('h1', {}, 'Sign in'),
  h('p', { class: 'muted' }, 'Paste an API key (made with ', h('code', {}, 'aisle keys create'), '). It stays in this tab only.'),
  message ? h('div', { class: 'error', role: 'alert' }, message) : null,
  h('label', { for: 'key' }, 'API key', input),
  h('div', {}, h('button', { type: 'submit' }, 'Sign in')));
  fill(app, form);
  input.focus();
}

async function route() {
  try {
    if (!me) await signIn();
  } catch (e) {
    return fill(app, errorBox(e));
  }
  if (!me) return loginForm(keyStore.get() ? 'That key was not accepted.' : null);
  const [, id = 'overview', ...rest] = (location.hash || '#/overview').split('/');
  const page = PAGES.find((p) => p.id === id) || (id === 'product' ? { id: 'catalog', role: 'read', show: () => product(decodeURIComponent(rest.join('/'))) } : PAGES[0]);
  const main = h('main', { id: 'main', tabindex: '-1' });
  const nav = h('nav', { class: 'side', 'aria-label': 'Console' });
  let group = '';
  for (const p of PAGES) {
    if (!can(p.role)) continue; // pages a key may not use are not offered
    if (p.group !== group) { group = p.group; nav.append(h('div', { class: 'group' }, group)); }
    nav.append(h('a', { href: `#/${p.id}`, 'aria-current': p.id === page.id ? 'page' : null }, p.title));
  }
  fill(app, h('div', { class: 'layout' }, nav, main));
  if (!can(page.role)) {
    return fill(main, h('h1', {}, page.title || 'Not allowed'),
      h('div', { class: 'error', role: 'alert' }, `Your key's role (${me.role}) may not use this page: it needs ${page.role}.`));
  }
  try {
    await page.show(main, rest);
  } catch (e) {
    main.append(errorBox(e));
  }
}

// ---------- Overview ----------
async function overview(main) {
  fill(main, h('h1', {}, 'Overview'));
  const [ready, events, stats, m] = await Promise.all([
    api('/readyz').catch((e) => ({ error: e })),
    api('/v1/stats/events?days=14').catch((e) => ({ error: e })),
    api('/v1/stats/recommendations').catch((e) => ({ error: e })),
    apiText('/metrics').then(parseMetrics).catch(() => ({})),
  ]);
  const tile = (label, value) => h('div', { class: 'tile' }, h('div', { class: 'value' }, value), h('div', { class: 'label' }, label));
  const requests = metricSum(m, 'aisle_assistant_requests_total');
  main.append(h('section', { class: 'tiles', 'aria-label': 'Summary' },
    tile('products in the catalog', ready.error ? '–' : num(ready.products)),
    tile('events, last 14 days', events.error ? '–' : num(events.per_day.reduce((a, d) => a + Object.values(d.counts).reduce((x, y) => x + y, 0), 0))),
    tile('recommendation CTR', stats.error ? '–' : pct(stats.total.ctr)),
    tile('conversion after a recommendation', stats.error ? '–' : pct(stats.total.conversion_rate)),
    tile('assistant answers', num(requests)),
    tile('assistant refusals', num(metricSum(m, 'aisle_assistant_refusals_total'))),
    tile('grounding repairs', num(metricSum(m, 'aisle_assistant_repaired_total') + metricSum(m, 'aisle_assistant_removed_total'))),
  ));

  main.append(h('h2', {}, 'Health'));
  if (ready.error) main.append(errorBox(ready.error));
  else {
    main.append(h('div', { class: 'table-wrap' }, h('table', {}, h('tbody', {},
      h('tr', {}, h('th', {}, 'Status'), h('td', {}, ready.status)),
      h('tr', {}, h('th', {}, 'Store'), h('td', {}, ready.store)),
      h('tr', {}, h('th', {}, 'Embedding model'), h('td', {}, `${ready.embedding_model.name || ''} (${ready.embedding_model.dim || '?'} dimensions)`)),
      h('tr', {}, h('th', {}, 'Chat model'), h('td', {}, ready.chat_model ? ready.chat_model.name || JSON.stringify(ready.chat_model) : 'none')),
      h('tr', {}, h('th', {}, 'Device'), h('td', {}, `${ready.device}, ${ready.threads.count} threads`)),
      h('tr', {}, h('th', {}, 'Authentication'), h('td', {}, ready.auth)),
    ))));
  }

  main.append(h('h2', {}, 'Events per day'));
  if (events.error) main.append(errorBox(events.error));
  else {
    const kinds = ['view', 'click', 'cart', 'purchase', 'impression', 'rating', 'return'];
    main.append(lineChart('Events per day by kind (UTC)', events.per_day.map((d) => d.day.slice(5)),
      kinds.map((k) => ({ name: k, values: events.per_day.map((d) => d.counts[k] || 0) })), { format: (v) => num(v), floor: 4 }));
  }

  main.append(h('h2', {}, 'Recommendations by source'));
  if (stats.error) return main.append(errorBox(stats.error));
  const sources = Object.keys(stats.per_source);
  main.append(h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, ['source', 'impressions', 'clicks', 'CTR', 'carts', 'add-to-cart', 'purchases', 'conversion'].map((c, i) => h('th', { class: i ? 'num' : null, scope: 'col' }, c)))),
    h('tbody', {}, sources.length ? sources.map((s) => {
      const r = stats.per_source[s];
      return h('tr', {}, h('td', {}, s), h('td', { class: 'num' }, num(r.impressions)), h('td', { class: 'num' }, num(r.clicks)), h('td', { class: 'num' }, pct(r.ctr)),
        h('td', { class: 'num' }, num(r.carts)), h('td', { class: 'num' }, pct(r.add_to_cart_rate)), h('td', { class: 'num' }, num(r.purchases)), h('td', { class: 'num' }, pct(r.conversion_rate)));
    }) : h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No recommendation has been shown yet.'))))));
  const days = [...new Set(stats.per_day.map((d) => d.day))].sort();
  if (days.length) {
    const by = (s, d, f) => { const r = stats.per_day.find((x) => x.source === s && x.day === d); return r ? r[f] : 0; };
    main.append(lineChart('Impressions per day by source', days.map((d) => d.slice(5)), sources.map((s) => ({ name: s, values: days.map((d) => by(s, d, 'impressions')) })), { format: (v) => num(v), floor: 4 }));
    main.append(lineChart('Click-through rate per day by source', days.map((d) => d.slice(5)), sources.map((s) => ({ name: s, values: days.map((d) => by(s, d, 'ctr')) })), { format: pct }));
    main.append(lineChart('Conversion per day by source', days.map((d) => d.slice(5)), sources.map((s) => ({ name: s, values: days.map((d) => by(s, d, 'conversion_rate')) })), { format: pct }));
  }
}

// ---------- Catalog ----------
const productLink = (p) => h('a', { href: `#/product/${encodeURIComponent(p.id)}` }, p.title);

function filterFields(prefix) {
  const f = {
    query: h('input', { id: `${prefix}-q`, type: 'search', placeholder: 'e.g. wireless headphones' }),
    category: h('input', { id: `${prefix}-cat`, placeholder: 'any' }),
    brand: h('input', { id: `${prefix}-brand`, placeholder: 'any' }),
    min: h('input', { id: `${prefix}-min`, type: 'number', min: 0, step: 'any' }),
    max: h('input', { id: `${prefix}-max`, type: 'number', min: 0, step: 'any' }),
    stock: h('input', { id: `${prefix}-stock`, type: 'checkbox' }),
    mode: h('select', { id: `${prefix}-mode` }, ['hybrid', 'semantic', 'keyword'].map((m) => h('option', { value: m }, m))),
  };
  const filters = () => {
    const out = {};
    if (f.category.value.trim()) out.categories = [f.category.value.trim()];
    if (f.brand.value.trim()) out.brands = [f.brand.value.trim()];
    if (f.min.value !== '') out.price_min = Number(f.min.value);
    if (f.max.value !== '') out.price_max = Number(f.max.value);
    if (f.stock.checked) out.in_stock = true;
    return out;
  };
  const row = h('div', { class: 'row' },
    h('label', { for: f.query.id }, 'Search', f.query), h('label', { for: f.category.id }, 'Category', f.category),
    h('label', { for: f.brand.id }, 'Brand', f.brand), h('label', { for: f.min.id }, 'Price from', f.min),
    h('label', { for: f.max.id }, 'Price to', f.max), h('label', { for: f.mode.id }, 'Mode', f.mode),
    h('label', { class: 'inline', for: f.stock.id }, f.stock, 'in stock only'));
  return { f, filters, row };
}

async function catalog(main) {
  fill(main, h('h1', {}, 'Catalog'));
  const { f, filters, row } = filterFields('cat');
  const out = h('div', { 'aria-live': 'polite' });
  const run = async () => {
    fill(out, h('p', { class: 'muted' }, 'Searching…'));
    try {
      const q = f.query.value.trim();
      let items, took = null;
      if (q) {
        const r = await api('/v1/search', { body: { query: q, limit: 50, mode: f.mode.value, filters: filters() } });
        items = r.items.map((x) => ({ ...x.product, score: x.score }));
        took = r.took_ms;
      } else {
        const fl = filters();
        const params = new URLSearchParams({ limit: '50' });
        if (fl.categories) params.set('category', fl.categories[0]);
        if (fl.brands) params.set('brand', fl.brands[0]);
        if (fl.price_min !== undefined) params.set('price_min', fl.price_min);
        if (fl.price_max !== undefined) params.set('price_max', fl.price_max);
        if (fl.in_stock) params.set('in_stock', 'true');
        items = (await api('/v1/products?' + params)).items;
      }
      fill(out, h('p', { class: 'muted' }, `${items.length} products${took !== null ? `, ${took.toFixed(1)} ms` : ''}`),
        h('div', { class: 'table-wrap' }, h('table', { id: 'catalog-results' },
          h('thead', {}, h('tr', {}, ['product', 'brand', 'category', 'price', 'stock'].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, items.map((p) => h('tr', {}, h('td', {}, productLink(p), p.hidden ? h('span', { class: 'badge' }, 'hidden') : null),
            h('td', {}, p.brand || ''), h('td', {}, (p.categories || []).join(', ')), h('td', { class: 'num' }, money(p.price, p.currency)),
            h('td', { class: 'num' }, p.in_stock ? (p.stock_qty ?? 'yes') : 'out')))))));
    } catch (e) {
      fill(out, errorBox(e));
    }
  };
  main.append(h('form', { class: 'panel', onsubmit: (ev) => { ev.preventDefault(); run(); } }, row, h('button', { type: 'submit' }, 'Search')), out);
  f.query.focus();
  await run();
}

async function product(id) {
  const main = document.getElementById('main');
  const p = await api(`/v1/products/${encodeURIComponent(id)}`);
  fill(main, h('p', {}, h('a', { href: '#/catalog' }, '← Catalog')), h('h1', {}, p.title));
  main.append(h('div', { class: 'table-wrap' }, h('table', { id: 'product-facts' }, h('tbody', {},
    [['id', p.id], ['brand', p.brand || ''], ['categories', (p.categories || []).join(', ')], ['price', money(p.price, p.currency)],
      ['stock', p.in_stock ? `in stock${p.stock_qty !== null && p.stock_qty !== undefined ? ` (${p.stock_qty})` : ''}` : 'out of stock'],
      ['attributes', Object.entries(p.attributes || {}).map(([k, v]) => `${k}: ${v}`).join('; ')], ['tags', (p.tags || []).join(', ')],
      ['description', p.description || ''], ['updated', p.updated_at]].map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, v)))))));
  const text = await api(`/v1/products/${encodeURIComponent(id)}/text`).catch((e) => ({ error: e }));
  main.append(h('h2', {}, 'What was embedded'), text.error ? errorBox(text.error) : h('pre', { id: 'embedded-text' }, text.embedded));
  const lists = h('div', { class: 'row' });
  main.append(lists);
  for (const [mode, title] of [['content', 'Similar'], ['co_purchase', 'Bought together']]) {
    const box = h('section', { class: 'panel' }, h('h2', {}, title));
    lists.append(box);
    try {
      const r = await api(`/v1/products/${encodeURIComponent(id)}/similar?mode=${mode}&limit=6`);
      box.append(r.items.length ? h('ol', {}, r.items.map((x) => h('li', {}, productLink(x.product), ' ', h('span', { class: 'muted' }, money(x.product.price, x.product.currency)))))
        : h('p', { class: 'muted' }, 'None yet.'));
    } catch (e) { box.append(errorBox(e)); }
  }
  if (!can('admin')) return;
  const body = { ...p };
  delete body.id; delete body.updated_at;
  const editor = h('textarea', { id: 'product-json', rows: 14, 'aria-label': 'Product as JSON' }, JSON.stringify(body, null, 2));
  const status = h('div', { 'aria-live': 'polite' });
  main.append(h('h2', {}, 'Edit'), h('p', { class: 'muted' }, 'The product as the API takes it; saving replaces it (and re-embeds it if its text changed).'), editor,
    h('div', { class: 'row' },
      h('button', { type: 'button', onclick: async () => {
        try {
          await api(`/v1/products/${encodeURIComponent(id)}`, { method: 'PUT', body: JSON.parse(editor.value) });
          fill(status, h('div', { class: 'ok' }, 'Saved.'));
        } catch (e) { fill(status, errorBox(e)); }
      } }, 'Save'),
      h('button', { type: 'button', class: 'danger', onclick: () => confirmThen(`Delete ${p.title}?`, 'Delete', async () => {
        await api(`/v1/products/${encodeURIComponent(id)}`, { method: 'DELETE' });
        location.hash = '#/catalog';
      }, status) }, 'Delete')), status);
}

/** A confirmation step (a modal dialog) before a destructive action. */
function confirmThen(question, verb, action, status) {
  const dialog = h('dialog', { 'aria-labelledby': 'confirm-title' });
  const close = () => { dialog.close(); dialog.remove(); };
  fill(dialog, h('h2', { id: 'confirm-title' }, question), h('p', { class: 'muted' }, 'This cannot be undone.'),
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'danger', id: 'confirm-yes', onclick: async () => {
        close();
        try { await action(); } catch (e) { fill(status, errorBox(e)); }
      } }, verb),
      h('button', { type: 'button', class: 'secondary', onclick: close }, 'Cancel')));
  document.body.append(dialog);
  dialog.showModal();
}

// ---------- Customers ----------
function recList(r) {
  return h('ol', { class: 'recs' }, r.items.map((it) => h('li', {},
    productLink(it.product), ' ', h('span', { class: 'muted' }, money(it.product.price, it.product.currency)), ' ',
    it.sources.map((s) => h('span', { class: 'badge source' }, `${s.source} #${s.rank}`)),
    h('div', { class: 'muted explanation' }, it.explanation))));
}

async function customers(main, rest) {
  fill(main, h('h1', {}, 'Customers'), h('p', { class: 'muted' },
    'aisle keeps customers only under a keyed pseudonym of the id you give; this page shows what it holds under it.'));
  const input = h('input', { id: 'customer-id', required: true, value: decodeURIComponent(rest[0] || '') });
  const out = h('div', { id: 'customer', 'aria-live': 'polite' });
  main.append(h('form', { class: 'panel', onsubmit: (ev) => { ev.preventDefault(); location.hash = `#/customers/${encodeURIComponent(input.value.trim())}`; } },
    h('label', { for: 'customer-id' }, 'Customer id', input), h('button', { type: 'submit' }, 'Look up')), out);
  if (rest[0]) await showCustomer(out, decodeURIComponent(rest[0]));
  else input.focus();
}

async function showCustomer(out, id) {
  const path = `/v1/customers/${encodeURIComponent(id)}`;
  const status = h('div', { 'aria-live': 'polite' });
  fill(out, status);
  let c;
  try { c = await api(path); } catch (e) { return out.append(errorBox(e)); }
  const consent = (field) => h('input', { type: 'checkbox', id: `consent-${field}`, checked: c.consent[field], onchange: async (ev) => {
    try {
      c = await api(path, { method: 'PUT', body: { consent: { [field]: ev.target.checked } } });
      fill(status, h('div', { class: 'ok' }, `Consent to ${field} ${c.consent[field] ? 'given' : 'withdrawn'}.`));
    } catch (e) { fill(status, errorBox(e)); }
  } });
  out.append(h('section', { class: 'panel' }, h('h2', {}, 'Consent'),
    h('label', { class: 'inline', for: 'consent-personalization' }, consent('personalization'), 'personalization'),
    h('label', { class: 'inline', for: 'consent-analytics' }, consent('analytics'), 'analytics'),
    h('p', { class: 'muted' }, `Taste profile: ${c.has_taste ? 'yes' : 'none'} · first seen ${c.created_at} · updated ${c.updated_at}`)));
  out.append(h('section', { class: 'panel' }, h('h2', {}, 'History'), c.history.length ? h('div', { class: 'table-wrap' }, h('table', { id: 'history' },
    h('thead', {}, h('tr', {}, ['when', 'what', 'product'].map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, c.history.map((e) => h('tr', {}, h('td', {}, new Date(e.ts * 1000).toLocaleString()), h('td', {}, e.kind),
      h('td', {}, h('a', { href: `#/product/${encodeURIComponent(e.product_id)}` }, e.product_id)))))))
    : h('p', { class: 'muted' }, 'No history.')));
  const recs = h('section', { class: 'panel' }, h('h2', {}, 'Recommendations'));
  out.append(recs);
  try {
    const [taste, final] = await Promise.all([
      api('/v1/recommendations', { body: { customer_id: id, limit: 8, weights: { content: 1, session: 0, co_purchase: 0, trending: 0, collab: 0 } } }),
      api(`${path}/recommendations?limit=8`),
    ]);
    recs.append(h('div', { class: 'row' },
      h('div', {}, h('h3', {}, 'From taste alone (the content source)'), recList(taste)),
      h('div', {}, h('h3', {}, `Final (${final.sources.join(', ')})`), recList(final))));
  } catch (e) { recs.append(errorBox(e)); }
  if (!can('admin')) return;
  const exported = h('div', { id: 'export' });
  out.append(h('section', { class: 'panel' }, h('h2', {}, 'Data-subject requests'),
    h('div', { class: 'row' },
      h('button', { type: 'button', id: 'export-button', onclick: async () => {
        try {
          const x = await api(`${path}/export`);
          fill(exported, h('p', {}, `${x.events.length} events, ${x.sessions.length} assistant sessions, profile: ${x.profile ? 'yes' : 'none'}. `,
            h('button', { type: 'button', class: 'secondary', onclick: () => download(`customer-export.json`, x) }, 'Download')),
          h('pre', { id: 'export-json' }, JSON.stringify(x, null, 2)));
        } catch (e) { fill(exported, errorBox(e)); }
      } }, 'Export'),
      h('button', { type: 'button', class: 'danger', id: 'erase-button', onclick: () => confirmThen(`Erase everything aisle holds about ${id}?`, 'Erase', async () => {
        const r = await api(path, { method: 'DELETE' });
        fill(status, h('div', { class: 'ok', id: 'erased' }, `Erased: ${JSON.stringify(r.erased)}`));
        fill(exported);
      }, status) }, 'Erase…')), exported));
}

// ---------- Playgrounds ----------
const SOURCES = ['content', 'session', 'co_purchase', 'trending', 'collab'];

async function recommendPlayground(main) {
  fill(main, h('h1', {}, 'Recommendations playground'), h('p', { class: 'muted' },
    'Pick products as a session, set the sources\' weights and the diversity, and see the fused list with where each item came from.'));
  const picked = [];
  const pickedList = h('ul', { id: 'picked' });
  const found = h('ul', { id: 'pick-results' });
  const q = h('input', { id: 'pick-q', type: 'search', placeholder: 'find a product to add' });
  const customer = h('input', { id: 'pg-customer', placeholder: 'optional' });
  const weights = Object.fromEntries(SOURCES.map((s) => [s, h('input', { id: `w-${s}`, type: 'range', min: 0, max: 3, step: 0.1, value: 1 })]));
  const on = Object.fromEntries(SOURCES.map((s) => [s, h('input', { id: `on-${s}`, type: 'checkbox', checked: true })]));
  const mmr = h('input', { id: 'mmr', type: 'range', min: 0, max: 1, step: 0.05, value: 1 });
  const out = h('div', { id: 'pg-out', 'aria-live': 'polite' });
  const showPicked = () => fill(pickedList, picked.length ? picked.map((p, i) => h('li', {}, p.title, ' ',
    h('button', { type: 'button', class: 'secondary', onclick: () => { picked.splice(i, 1); showPicked(); } }, 'remove'))) : h('li', { class: 'muted' }, 'No items yet.'));
  showPicked();
  const search = async () => {
    const r = await api('/v1/search', { body: { query: q.value.trim() || 'popular', limit: 6 } });
    fill(found, r.items.map((x) => h('li', {}, x.product.title, ' ',
      h('button', { type: 'button', class: 'secondary', onclick: () => { if (!picked.some((p) => p.id === x.product.id)) picked.unshift(x.product); showPicked(); } }, 'add'))));
  };
  const run = async () => {
    fill(out, h('p', { class: 'muted' }, 'Recommending…'));
    const body = { session: { items: picked.map((p) => p.id) }, limit: 10, mmr_lambda: Number(mmr.value),
      weights: Object.fromEntries(SOURCES.map((s) => [s, on[s].checked ? Number(weights[s].value) : 0])) };
    if (customer.value.trim()) body.customer_id = customer.value.trim();
    const t0 = performance.now();
    try {
      const r = await api('/v1/recommendations', { body });
      fill(out, h('p', { class: 'muted' }, `rec_id ${r.rec_id} · sources ${r.sources.join(', ') || 'none'} · ${r.personalized ? 'personalised' : 'not personalised'} · ${(performance.now() - t0).toFixed(0)} ms`), recList(r));
    } catch (e) { fill(out, errorBox(e)); }
  };
  main.append(h('div', { class: 'row' },
    h('section', { class: 'panel' }, h('h2', {}, 'Session'),
      h('form', { onsubmit: (ev) => { ev.preventDefault(); search().catch((e) => fill(found, errorBox(e))); } },
        h('label', { for: 'pick-q' }, 'Find', q), h('button', { type: 'submit' }, 'Find')), found, h('h3', {}, 'In the session (most recent first)'), pickedList,
      h('label', { for: 'pg-customer' }, 'Customer id', customer)),
    h('section', { class: 'panel' }, h('h2', {}, 'Sources'),
      SOURCES.map((s) => h('div', {}, h('label', { class: 'inline', for: `on-${s}` }, on[s], s), h('label', { for: `w-${s}` }, `weight of ${s}`, weights[s]))),
      h('label', { for: 'mmr' }, 'MMR λ (1 = relevance only)', mmr),
      h('div', {}, h('button', { type: 'button', id: 'pg-run', onclick: run }, 'Recommend')))), out);
}

function cardsView(cards) {
  return h('div', { class: 'cards', id: 'assistant-cards' }, cards.map((c) => h('article', { class: 'card product-card', 'data-id': c.id },
    h('a', { class: 'title', href: `#/product/${encodeURIComponent(c.id)}` }, c.title),
    h('span', { class: 'price' }, money(c.price, c.currency)), h('span', { class: 'muted' }, c.in_stock ? 'in stock' : 'out of stock'),
    c.alternative ? h('span', { class: 'badge' }, 'alternative') : null, h('span', { class: 'muted' }, c.why))));
}

async function assistantPlayground(main) {
  fill(main, h('h1', {}, 'Assistant playground'), h('p', { class: 'muted' }, 'A conversation with the shopping assistant: the streamed answer, its product cards, the grounding report and timings.'));
  const input = h('input', { id: 'ask', autocomplete: 'off', placeholder: 'e.g. headphones under $100', required: true });
  const log = h('div', { id: 'assistant-log' });
  const messages = [];
  let session = null;
  const ask = async () => {
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    messages.push({ role: 'user', content: text });
    const answer = h('p', { class: 'answer', 'aria-live': 'polite' });
    const meta = h('p', { class: 'muted' });
    const cards = h('div');
    const report = h('div');
    log.append(h('section', { class: 'panel turn' }, h('h2', {}, text), meta, answer, cards, report));
    const t0 = performance.now();
    let first = null;
    try {
      await stream('/v1/assistant/chat', { messages, stream: true, session_id: session || undefined }, (name, data) => {
        if (name === 'meta') {
          session = data.session_id || session;
          fill(meta, `intent ${data.intent} · query “${data.query}” · constraints ${JSON.stringify(data.constraints)}`);
        } else if (name === 'delta') {
          if (first === null) first = performance.now() - t0;
          answer.append(data.text);
        } else if (name === 'cards') {
          fill(cards, cardsView(data.cards));
        } else if (name === 'done') {
          messages.push({ role: 'assistant', content: data.answer });
          const g = data.grounding;
          fill(report, h('details', { class: 'grounding' }, h('summary', {}, `Grounding: ${g.violations_before} problems found, ${g.repaired} repaired, ${g.removed} removed${g.fallback ? ', fell back to the facts' : ''}`),
            h('pre', {}, JSON.stringify(g, null, 2))),
          h('p', { class: 'muted timings' }, `first text ${first === null ? '–' : first.toFixed(0)} ms in the browser · server: retrieval ${data.timings.retrieval_ms.toFixed(0)} ms, first token ${data.timings.first_token_ms?.toFixed(0) ?? '–'} ms, total ${data.timings.total_ms.toFixed(0)} ms · ${data.usage.completion_tokens ?? '?'} tokens`));
        } else if (name === 'error') {
          report.append(h('div', { class: 'error' }, `${data.title}: ${data.detail}`));
        }
      });
    } catch (e) { report.append(errorBox(e)); }
  };
  main.append(h('form', { class: 'panel', onsubmit: (ev) => { ev.preventDefault(); ask(); } },
    h('label', { for: 'ask' }, 'Ask', input), h('button', { type: 'submit' }, 'Send'),
    h('button', { type: 'button', class: 'secondary', onclick: () => { messages.length = 0; session = null; fill(log); } }, 'New conversation')), log);
  input.focus();
}

// ---------- Reports ----------
async function reports(main) {
  const r = await api('/v1/reports');
  fill(main, h('h1', {}, 'Evaluation & benchmarks'), h('p', { class: 'muted' },
    'Reports found in ', h('code', {}, r.dir), ': write them there with ', h('code', {}, 'aisle bench --json DIR/bench.json'), ', ',
    h('code', {}, 'aisle eval --out DIR/NAME'), ' or ', h('code', {}, 'aisle assistant-eval --json DIR/NAME.json'), '.'));
  if (!r.reports.length) main.append(h('p', { class: 'muted', id: 'no-reports' }, 'No reports yet.'));
  for (const rep of r.reports) {
    const box = h('section', { class: 'panel report' }, h('h2', {}, `${rep.name}`), h('p', { class: 'muted' }, `${rep.kind} · written ${rep.modified || '?'}`));
    main.append(box);
    const rows = rep.report.rows || [];
    if (rep.kind === 'bench') {
      box.append(h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, ['bench', 'metric', 'value', 'anchor', 'ratio'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows.map((x) => h('tr', {}, h('td', {}, x.bench), h('td', {}, x.metric), h('td', { class: 'num' }, `${num(x.value, 2)} ${x.unit || ''}`),
          h('td', {}, x.anchor ? `${x.anchor}: ${num(x.anchor_value, 2)}` : ''), h('td', { class: 'num' }, x.ratio === null || x.ratio === undefined ? '' : `${x.ratio.toFixed(2)}×`)))))));
      const ratios = rows.filter((x) => typeof x.ratio === 'number').map((x) => ({ label: `${x.bench}: ${x.metric}`, value: x.ratio }));
      if (ratios.length) box.append(barChart('Ratio to the anchor (1 = the anchor, dashed)', ratios, { mark: 1, format: (v) => v.toFixed(2) + '×' }));
    } else if (rep.kind === 'eval') {
      const metrics = ['ndcg_10', 'recall_10', 'hr_10', 'mrr_20', 'coverage_20'];
      box.append(h('p', { class: 'muted' }, `${rep.report.dataset} · ${rep.report.split} · ${rep.report.users} users, ${rep.report.items} items`),
        h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'model'), metrics.map((m) => h('th', { class: 'num', scope: 'col' }, m)))),
          h('tbody', {}, rows.map((x) => h('tr', {}, h('td', {}, x.model), metrics.map((m) => h('td', { class: 'num' }, x.test ? num(x.test[m], 4) : ''))))))),
        barChart('NDCG@10 on the test split', rows.map((x) => ({ label: x.model, value: x.test ? x.test.ndcg_10 : 0 })), { format: (v) => v.toFixed(4) }));
    } else {
      box.append(h('details', {}, h('summary', {}, 'The report'), h('pre', {}, JSON.stringify(rep.report, null, 2))));
    }
  }
  if (r.skipped.length) main.append(h('div', { class: 'error' }, 'Skipped: ', r.skipped.join('; ')));
}

// ---------- Metrics ----------
async function metrics(main) {
  const m = parseMetrics(await apiText('/metrics'));
  fill(main, h('h1', {}, 'Metrics'), h('p', { class: 'muted' }, 'A summary of ', h('code', {}, '/metrics'), ' (Prometheus); the Grafana dashboard is in docs/grafana-dashboard.json.'));
  const hist = (name) => {
    const sum = metricSum(m, name + '_sum'), count = metricSum(m, name + '_count');
    return count ? `${num(count)} · mean ${(1000 * sum / count).toFixed(1)} ms` : '–';
  };
  const rows = [
    ['HTTP requests', num(metricSum(m, 'aisle_http_requests_total'))],
    ['HTTP 5xx', num(metricSum(m, 'aisle_http_requests_total', (l) => (l.status || '').startsWith('5')))],
    ['401 / 403 / 429', [401, 403, 429].map((s) => num(metricSum(m, 'aisle_http_requests_total', (l) => l.status === String(s)))).join(' / ')],
    ['HTTP latency', hist('aisle_http_request_duration_seconds')],
    ['recommendations', hist('aisle_recommend_duration_seconds')],
    ['chat time to first token', hist('aisle_chat_time_to_first_token_seconds')],
    ['chat requests finished / failed', `${num(metricSum(m, 'aisle_chat_finished_total'))} / ${num(metricSum(m, 'aisle_chat_failed_total'))}`],
    ['embedding forward passes', hist('aisle_embed_batch_duration_seconds')],
    ['store operations', hist('aisle_store_operation_duration_seconds')],
    ['assistant answers / refusals', `${num(metricSum(m, 'aisle_assistant_requests_total'))} / ${num(metricSum(m, 'aisle_assistant_refusals_total'))}`],
    ['uptime', `${num(metricSum(m, 'aisle_uptime_seconds') / 60, 1)} min`],
  ];
  main.append(h('div', { class: 'table-wrap' }, h('table', { id: 'metrics-summary' }, h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, v)))))));
  const routes = {};
  for (const s of m.aisle_http_requests_total || []) routes[s.labels.route] = (routes[s.labels.route] || 0) + s.value;
  const top = Object.entries(routes).sort((a, b) => b[1] - a[1]).slice(0, 12).map(([label, value]) => ({ label, value }));
  if (top.length) main.append(barChart('Requests by route', top, { format: (v) => num(v) }));
}

// ---------- Audit log ----------
async function audit(main) {
  fill(main, h('h1', {}, 'Audit log'));
  const actor = h('input', { id: 'audit-actor', placeholder: 'any' });
  const action = h('input', { id: 'audit-action', placeholder: 'e.g. customers, DELETE' });
  const since = h('input', { id: 'audit-since', type: 'datetime-local' });
  const until = h('input', { id: 'audit-until', type: 'datetime-local' });
  const out = h('div', { 'aria-live': 'polite' });
  const run = async () => {
    const p = new URLSearchParams({ limit: '500' });
    if (actor.value.trim()) p.set('actor', actor.value.trim());
    if (action.value.trim()) p.set('action', action.value.trim());
    if (since.value) p.set('since', new Date(since.value).toISOString());
    if (until.value) p.set('until', new Date(until.value).toISOString());
    try {
      const r = await api('/v1/admin/audit?' + p);
      fill(out, h('p', { class: 'muted' }, `${r.entries.length} entries (newest first)`), h('div', { class: 'table-wrap' }, h('table', { id: 'audit-table' },
        h('thead', {}, h('tr', {}, ['when', 'actor', 'role', 'action', 'subject', 'status'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, r.entries.reverse().map((e) => h('tr', {}, h('td', {}, new Date(e.ts).toLocaleString()), h('td', {}, e.actor), h('td', {}, e.role),
          h('td', {}, e.action), h('td', {}, e.subject || ''), h('td', { class: 'num' }, e.status)))))));
    } catch (e) { fill(out, errorBox(e)); }
  };
  main.append(h('form', { class: 'panel row', onsubmit: (ev) => { ev.preventDefault(); run(); } },
    h('label', { for: 'audit-actor' }, 'Actor', actor), h('label', { for: 'audit-action' }, 'Action', action),
    h('label', { for: 'audit-since' }, 'From', since), h('label', { for: 'audit-until' }, 'To', until), h('button', { type: 'submit' }, 'Filter')), out);
  await run();
}

// ---------- Keys ----------
async function keys(main) {
  fill(main, h('h1', {}, 'API keys'));
  const list = h('div');
  const shown = h('div', { 'aria-live': 'polite' });
  const load = async () => {
    const r = await api('/v1/admin/keys');
    fill(list, h('div', { class: 'table-wrap' }, h('table', { id: 'keys-table' },
      h('thead', {}, h('tr', {}, ['name', 'role', 'fingerprint', 'created', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, r.keys.map((k) => h('tr', {}, h('td', {}, k.name), h('td', {}, k.role), h('td', {}, h('code', {}, k.fingerprint)),
        h('td', {}, k.created_at ? new Date(k.created_at).toLocaleString() : 'configuration'),
        h('td', {}, k.configured ? h('span', { class: 'muted' }, 'in the configuration') : h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke ${k.name}`, onclick: () =>
          confirmThen(`Revoke the key ${k.name}?`, 'Revoke', async () => { await api(`/v1/admin/keys/${encodeURIComponent(k.name)}`, { method: 'DELETE' }); await load(); }, shown) }, 'Revoke'))))))));
  };
  const name = h('input', { id: 'key-name', required: true, maxlength: 100 });
  const role = h('select', { id: 'key-role' }, ['read', 'app', 'admin', 'widget'].map((r) => h('option', { value: r }, r)));
  main.append(h('form', { class: 'panel row', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const k = await api('/v1/admin/keys', { body: { name: name.value.trim(), role: role.value } });
      fill(shown, h('div', { class: 'ok' }, `Key “${k.name}” (${k.role}) made. Copy it now: it is not shown again.`), h('p', { class: 'secret', id: 'new-key' }, k.key));
      name.value = '';
      await load();
    } catch (e) { fill(shown, errorBox(e)); }
  } }, h('label', { for: 'key-name' }, 'Name', name), h('label', { for: 'key-role' }, 'Role', role), h('button', { type: 'submit' }, 'Create key')), shown, list);
  await load();
}

// ---------- Merchandising rules ----------
async function rules(main) {
  fill(main, h('h1', {}, 'Merchandising rules'),
    h('p', { class: 'muted' }, 'Pin, boost, bury, hide or cap products, categories or brands in every recommendation list, for a time window if given. Items say which rule moved them.'));
  const list = h('div');
  const shown = h('div', { 'aria-live': 'polite' });
  const csv = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
  const targets = (r) => [['products', r.spec.products], ['categories', r.spec.categories], ['brands', r.spec.brands]]
    .filter(([, v]) => v && v.length).map(([k, v]) => `${k}: ${v.join(', ')}`).join('; ');
  const detail = (r) => [r.spec.position && `position ${r.spec.position}`, r.spec.weight && `weight ${r.spec.weight}`,
    r.spec.per && `at most ${r.spec.max} per ${r.spec.per}`].filter(Boolean).join(', ');
  const span = (r) => [r.spec.starts_at && `from ${new Date(r.spec.starts_at).toLocaleString()}`,
    r.spec.ends_at && `until ${new Date(r.spec.ends_at).toLocaleString()}`].filter(Boolean).join(' ') || 'always';
  const load = async () => {
    const r = await api('/v1/rules');
    fill(list, r.rules.length ? h('div', { class: 'table-wrap' }, h('table', { id: 'rules-table' },
      h('thead', {}, h('tr', {}, ['rule', 'action', 'targets', 'settings', 'window', 'in effect', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, r.rules.map((x) => h('tr', {}, h('td', {}, h('code', {}, x.id)), h('td', {}, x.spec.action), h('td', {}, targets(x)),
        h('td', {}, detail(x)), h('td', {}, span(x)), h('td', {}, x.in_effect ? 'yes' : 'no'),
        h('td', {}, can('admin') ? h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${x.id}`, onclick: () =>
          confirmThen(`Delete the rule ${x.id}?`, 'Delete', async () => { await api(`/v1/rules/${encodeURIComponent(x.id)}`, { method: 'DELETE' }); await load(); }, shown) }, 'Delete') : null))))))
      : h('p', { class: 'muted' }, 'No rules.'));
  };
  if (can('admin')) {
    const field = (id, label, input) => h('label', { for: id }, label, input);
    const id = h('input', { id: 'rule-id', required: true, maxlength: 64, pattern: '[A-Za-z0-9_\\-]+' });
    const action = h('select', { id: 'rule-action' }, ['pin', 'boost', 'bury', 'hide', 'cap'].map((a) => h('option', { value: a }, a)));
    const products = h('input', { id: 'rule-products', placeholder: 'ids, comma separated' });
    const categories = h('input', { id: 'rule-categories', placeholder: 'comma separated' });
    const brands = h('input', { id: 'rule-brands', placeholder: 'comma separated' });
    const position = h('input', { id: 'rule-position', type: 'number', min: 1, max: 100 });
    const weight = h('input', { id: 'rule-weight', type: 'number', min: 0, max: 100, step: 'any' });
    const per = h('select', { id: 'rule-per' }, ['', 'brand', 'category'].map((a) => h('option', { value: a }, a || '–')));
    const max = h('input', { id: 'rule-max', type: 'number', min: 1, max: 100 });
    const starts = h('input', { id: 'rule-starts', type: 'datetime-local' });
    const ends = h('input', { id: 'rule-ends', type: 'datetime-local' });
    const note = h('input', { id: 'rule-note', maxlength: 500 });
    main.append(h('form', { class: 'panel row', onsubmit: async (ev) => {
      ev.preventDefault();
      const body = { action: action.value, products: csv(products.value), categories: csv(categories.value), brands: csv(brands.value) };
      const number = (el) => (el.value === '' ? undefined : Number(el.value));
      Object.assign(body, { position: number(position), weight: number(weight), max: number(max), per: per.value || undefined, note: note.value || undefined,
        starts_at: starts.value ? new Date(starts.value).toISOString() : undefined, ends_at: ends.value ? new Date(ends.value).toISOString() : undefined });
      try {
        await api(`/v1/rules/${encodeURIComponent(id.value.trim())}`, { method: 'PUT', body });
        fill(shown, h('div', { class: 'ok' }, `Rule “${id.value.trim()}” saved.`));
        await load();
      } catch (e) { fill(shown, errorBox(e)); }
    } }, field('rule-id', 'Rule id', id), field('rule-action', 'Action', action), field('rule-products', 'Products', products),
    field('rule-categories', 'Categories', categories), field('rule-brands', 'Brands', brands), field('rule-position', 'Pin position', position),
    field('rule-weight', 'Boost weight', weight), field('rule-per', 'Cap per', per), field('rule-max', 'Cap max', max),
    field('rule-starts', 'From', starts), field('rule-ends', 'Until', ends), field('rule-note', 'Note', note), h('button', { type: 'submit' }, 'Save rule')));
  }
  main.append(shown, list);
  await load();
}

// ---------- Configuration ----------
async function settings(main) {
  const c = await api('/v1/admin/config');
  fill(main, h('h1', {}, 'Configuration in effect'), h('p', { class: 'muted' }, 'File, environment and flags applied; secrets shown as ***.'),
    h('pre', { id: 'config-json' }, JSON.stringify(c, null, 2)));
}

start();
