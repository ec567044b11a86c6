// The storefront demo: whatever catalog is loaded, as a shop. The shopper is a random
// pseudonymous id kept in this browser; what they do goes to aisle as events (view, click,
// cart, purchase, impression, with the rec_id of the list that showed the product), so the
// console's statistics move as someone clicks around.
import { api, stream, h, fill, money, errorBox, keyStore, newId, download } from './ui.js';

const app = document.getElementById('app');
const store = {
  customer() {
    let id = localStorage.getItem('aisle.shop.customer');
    if (!id) { id = 'shopper-' + newId().slice(0, 13); localStorage.setItem('aisle.shop.customer', id); }
    return id;
  },
  session() {
    let id = sessionStorage.getItem('aisle.shop.session');
    if (!id) { id = newId(); sessionStorage.setItem('aisle.shop.session', id); }
    return id;
  },
  recent() { return JSON.parse(sessionStorage.getItem('aisle.shop.recent') || '[]'); },
  saw(id) { sessionStorage.setItem('aisle.shop.recent', JSON.stringify([id, ...store.recent().filter((x) => x !== id)].slice(0, 20))); },
  consent() { return localStorage.getItem('aisle.shop.consent'); },
};
const customerPath = () => `/v1/customers/${encodeURIComponent(store.customer())}`;
let categories = [];

/** Send events; failures are shown but never block the page. */
async function track(kind, productIds, recId) {
  const events = productIds.map((product_id) => ({ id: newId(), kind, product_id, customer_id: store.customer(), session_id: store.session(), rec_id: recId || undefined }));
  if (!events.length) return;
  try { await api('/v1/events', { body: { events } }); } catch (e) { console.warn('events', e.message); }
}

const initials = (t) => t.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0]).join('').toUpperCase();
const shade = (s) => 't' + ([...s].reduce((a, c) => a + c.charCodeAt(0), 0) % 8);

function productCard(p, { recId, why } = {}) {
  const href = `#/p/${encodeURIComponent(p.id)}${recId ? `?rec=${recId}` : ''}`;
  return h('article', { class: 'card product', 'data-id': p.id },
    h('div', { class: `thumb ${shade(p.id)}`, 'aria-hidden': 'true' }, initials(p.title)),
    h('a', { class: 'title', href, onclick: () => { if (recId) track('click', [p.id], recId); } }, p.title),
    h('span', { class: 'price' }, money(p.price, p.currency)),
    h('span', { class: 'muted' }, p.brand || ''),
    why ? h('details', { class: 'why' }, h('summary', {}, 'Why this?'), h('p', { class: 'muted' }, why)) : null);
}

async function recommendedForYou(box) {
  fill(box, h('h2', {}, 'Recommended for you'), h('p', { class: 'muted' }, 'Loading…'));
  const r = await api('/v1/recommendations', { body: { customer_id: store.customer(), session: { items: store.recent() }, limit: 8 } });
  fill(box, h('h2', {}, 'Recommended for you'),
    h('p', { class: 'muted' }, r.personalized ? 'Picked from what you looked at.' : 'Popular picks (we know nothing about you yet, or you said no to personalisation).'),
    h('div', { class: 'cards', id: 'recommended', 'data-rec-id': r.rec_id }, r.items.map((it) =>
      productCard(it.product, { recId: r.rec_id, why: `${it.explanation} (${it.sources.map((s) => s.source).join(', ')})` }))));
  track('impression', r.items.map((it) => it.product.id), r.rec_id);
}

async function home() {
  const recs = h('section', { id: 'recs' });
  const trending = h('section', {});
  fill(app, recs, trending);
  await recommendedForYou(recs).catch((e) => fill(recs, errorBox(e)));
  try {
    const t = await api('/v1/trending?limit=8');
    fill(trending, h('h2', {}, 'Trending'), h('div', { class: 'cards' }, t.items.map((x) => productCard(x.product))));
  } catch (e) { fill(trending, errorBox(e)); }
}

async function listing(title, items) {
  fill(app, h('h1', {}, title), items.length ? h('div', { class: 'cards', id: 'listing' }, items.map((p) => productCard(p))) : h('p', { class: 'muted' }, 'Nothing found.'));
}

async function product(id, recId) {
  const p = await api(`/v1/products/${encodeURIComponent(id)}`);
  store.saw(p.id);
  track('view', [p.id], recId);
  const status = h('div', { 'aria-live': 'polite' });
  const act = (kind, label) => h('button', { type: 'button', id: `${kind}-button`, onclick: async () => {
    await track(kind, [p.id], recId);
    fill(status, h('div', { class: 'ok' }, kind === 'cart' ? 'Added to your cart.' : 'Thank you for your order (a demo: nothing is charged).'));
  } }, label);
  const similar = h('section', { class: 'panel' });
  const together = h('section', { class: 'panel' });
  fill(app, h('p', {}, h('a', { href: '#/' }, '← Home')),
    h('article', { class: 'panel', id: 'product' },
      h('div', { class: `thumb ${shade(p.id)}`, 'aria-hidden': 'true' }, initials(p.title)),
      h('h1', {}, p.title), h('p', { class: 'price' }, money(p.price, p.currency), ' · ', p.in_stock ? 'in stock' : 'out of stock'),
      h('p', {}, p.brand ? `${p.brand} · ` : '', (p.categories || []).map((c) => h('a', { href: `#/c/${encodeURIComponent(c)}`, class: 'badge' }, c))),
      h('p', {}, p.description || ''),
      Object.keys(p.attributes || {}).length ? h('ul', {}, Object.entries(p.attributes).map(([k, v]) => h('li', {}, `${k}: ${v}`))) : null,
      h('div', { class: 'row' }, act('cart', 'Add to cart'), act('purchase', 'Buy now')), status),
    similar, together);
  for (const [box, mode, title] of [[similar, 'content', 'Similar products'], [together, 'co_purchase', 'Bought together']]) {
    try {
      const r = await api(`/v1/products/${encodeURIComponent(id)}/similar?mode=${mode}&limit=4`);
      fill(box, h('h2', {}, title), r.items.length ? h('div', { class: 'cards' }, r.items.map((x) => productCard(x.product))) : h('p', { class: 'muted' }, 'Nothing yet.'));
    } catch (e) { fill(box, h('h2', {}, title), errorBox(e)); }
  }
}

async function privacy() {
  const status = h('div', { 'aria-live': 'polite' });
  fill(app, h('h1', {}, 'Your data'), h('p', { class: 'muted' }, 'This shop knows you only as ', h('code', { id: 'shopper-id' }, store.customer()),
    '; aisle stores even that only as a keyed pseudonym.'), status);
  let c = null;
  try { c = await api(customerPath()); } catch (e) { if (e.status !== 404) return app.append(errorBox(e)); }
  const flag = (field, label) => h('label', { class: 'inline', for: `consent-${field}` }, h('input', { type: 'checkbox', id: `consent-${field}`, checked: c ? c.consent[field] : false, onchange: async (ev) => {
    try {
      c = await api(customerPath(), { method: 'PUT', body: { consent: { [field]: ev.target.checked } } });
      localStorage.setItem('aisle.shop.consent', c.consent.personalization ? 'yes' : 'no');
      fill(status, h('div', { class: 'ok', id: 'consent-saved' }, `Saved: ${label} ${ev.target.checked ? 'on' : 'off'}.`));
    } catch (e) { fill(status, errorBox(e)); }
  } }), label);
  app.append(h('section', { class: 'panel' }, h('h2', {}, 'Consent'), flag('personalization', 'Personalise what I see'), flag('analytics', 'Count my visits in the shop\'s statistics')));
  app.append(h('section', { class: 'panel' }, h('h2', {}, 'What is stored'), !c ? h('p', { class: 'muted' }, 'Nothing.')
    : h('div', {}, h('p', { class: 'muted' }, `Since ${new Date(c.created_at).toLocaleString()}; taste profile: ${c.has_taste ? 'yes' : 'none'}.`),
      h('ul', { id: 'stored-history' }, c.history.map((e) => h('li', {}, `${e.kind} ${e.product_id} · ${new Date(e.ts * 1000).toLocaleString()}`))))));
  app.append(h('section', { class: 'panel' }, h('h2', {}, 'Download or erase'),
    h('p', { class: 'muted' }, 'In a real shop, your account page asks the shop, which asks aisle (these need an admin key in this demo).'),
    h('div', { class: 'row' },
      h('button', { type: 'button', onclick: async () => {
        try { download('my-data.json', await api(`${customerPath()}/export`)); } catch (e) { fill(status, errorBox(e)); }
      } }, 'Download my data'),
      h('button', { type: 'button', class: 'danger', onclick: async () => {
        if (!window.confirm('Erase everything this shop holds about you?')) return;
        try {
          await api(customerPath(), { method: 'DELETE' });
          localStorage.removeItem('aisle.shop.customer');
          localStorage.removeItem('aisle.shop.consent');
          sessionStorage.removeItem('aisle.shop.recent');
          fill(status, h('div', { class: 'ok' }, 'Erased. You are a new visitor now.'));
        } catch (e) { fill(status, errorBox(e)); }
      } }, 'Erase my data'))));
}

function consentBanner() {
  const banner = document.getElementById('consent');
  if (store.consent()) { banner.hidden = true; return; }
  const answer = async (yes) => {
    try {
      await api(customerPath(), { method: 'PUT', body: { consent: { personalization: yes, analytics: yes } } });
      localStorage.setItem('aisle.shop.consent', yes ? 'yes' : 'no');
      banner.hidden = true;
      route();
    } catch (e) { banner.append(errorBox(e)); }
  };
  fill(banner, h('span', {}, 'May this shop use what you look at to recommend products? You can change this any time under “Your data”.'),
    h('button', { type: 'button', id: 'consent-yes', onclick: () => answer(true) }, 'Yes, personalise'),
    h('button', { type: 'button', class: 'secondary', id: 'consent-no', onclick: () => answer(false) }, 'No, thanks'));
  banner.hidden = false;
}

function keyForm(message) {
  const input = h('input', { id: 'shop-key', type: 'password', autocomplete: 'off', required: true });
  fill(app, h('form', { class: 'panel login', onsubmit: (ev) => { ev.preventDefault(); keyStore.set(input.value.trim()); start(); } },
    h('h1', {}, 'Demo shop'), h('p', { class: 'muted' }, 'This server needs an API key (role app) for the shop; it stays in this tab only.'),
    message ? h('div', { class: 'error', role: 'alert' }, message) : null,
    h('label', { for: 'shop-key' }, 'API key', input), h('button', { type: 'submit' }, 'Open the shop')));
}

async function loadCategories() {
  const counts = new Map();
  let cursor = null;
  for (let page = 0; page < 20; page++) {
    const r = await api(`/v1/products?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    for (const p of r.items) if (!p.hidden) for (const c of p.categories || []) counts.set(c, (counts.get(c) || 0) + 1);
    if (!r.next_cursor) break;
    cursor = r.next_cursor;
  }
  categories = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 24).map(([c]) => c);
  fill(document.getElementById('cats'), categories.map((c) => h('a', { href: `#/c/${encodeURIComponent(c)}` }, c)));
}

async function route() {
  const [path, query = ''] = location.hash.slice(1).split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const rec = new URLSearchParams(query).get('rec');
  try {
    if (parts[0] === 'p' && parts[1]) await product(parts[1], rec);
    else if (parts[0] === 'c' && parts[1]) await listing(parts[1], (await api(`/v1/products?limit=60&category=${encodeURIComponent(parts[1])}`)).items.filter((p) => !p.hidden));
    else if (parts[0] === 's' && parts[1]) await listing(`Results for “${parts[1]}”`, (await api('/v1/search', { body: { query: parts[1], limit: 24 } })).items.map((x) => x.product));
    else if (parts[0] === 'privacy') await privacy();
    else await home();
  } catch (e) {
    fill(app, errorBox(e));
  }
  window.scrollTo(0, 0);
}

function chat() {
  const panel = document.getElementById('chat');
  const toggle = document.getElementById('chat-open');
  const input = document.getElementById('chat-input');
  const log = document.getElementById('chat-log');
  const messages = [];
  let session = null;
  const open = (yes) => { panel.hidden = !yes; toggle.hidden = yes; toggle.setAttribute('aria-expanded', String(yes)); if (yes) input.focus(); };
  toggle.addEventListener('click', () => open(true));
  document.getElementById('chat-close').addEventListener('click', () => open(false));
  document.getElementById('chat-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    messages.push({ role: 'user', content: text });
    log.append(h('div', { class: 'msg user' }, text));
    const answer = h('div', { class: 'msg bot' });
    const cards = h('div', { class: 'cards chat-cards' });
    log.append(answer, cards);
    try {
      await stream('/v1/assistant/chat', { messages, stream: true, session_id: session || undefined, customer_id: store.customer() }, (name, data) => {
        if (name === 'meta') session = data.session_id || session;
        else if (name === 'delta') answer.append(data.text);
        else if (name === 'cards') fill(cards, data.cards.map((c) => h('article', { class: 'card', 'data-id': c.id },
          h('a', { class: 'title', href: `#/p/${encodeURIComponent(c.id)}` }, c.title), h('span', { class: 'price' }, money(c.price, c.currency)), h('span', { class: 'muted' }, c.why))));
        else if (name === 'done') messages.push({ role: 'assistant', content: data.answer });
        else if (name === 'error') answer.append(` (${data.detail})`);
        log.scrollTop = log.scrollHeight;
      });
    } catch (e) { answer.append(errorBox(e)); }
  });
}

let started = false;
async function start() {
  try {
    await api('/v1/whoami');
  } catch (e) {
    return keyForm(e.status === 401 ? (keyStore.get() ? 'That key was not accepted.' : null) : e.message);
  }
  if (started) return route();
  started = true;
  document.getElementById('search').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = document.getElementById('q').value.trim();
    if (q) location.hash = `#/s/${encodeURIComponent(q)}`;
  });
  window.addEventListener('hashchange', route);
  chat();
  consentBanner();
  loadCategories().catch((e) => console.warn('categories', e.message));
  await route();
}

start();
