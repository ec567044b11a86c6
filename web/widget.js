/* aisle widget: a recommendations strip and a shopping-assistant panel for a retailer's own pages.
 *
 *   <div data-aisle="recommendations" data-limit="6"></div>   (data-product="ID": "similar to")
 *   <div data-aisle="assistant"></div>
 *   <script src="AISLE_URL/widget.js" data-key="KEY" data-customer="CUSTOMER_ID" defer></script>   (AISLE_URL: where aisle serves)
 *
 * The page's origin must be listed in aisle's [server] cors_origins. The key is visible to anyone
 * who reads the page: give the widget its own key of role `widget` (`aisle keys create --role
 * widget`): it may search, recommend, send events and ask the assistant, and nothing else (no
 * customer's data, no statistics). Revoke it to switch the widget off. Everything is drawn inside shadow roots (the shop's styles and the widget's do not
 * mix), from aisle's origin only; nothing else is loaded.
 */
(function () {
  'use strict';
  var script = document.currentScript;
  if (!script) return;
  var base = new URL(script.src, location.href).origin;
  var key = script.getAttribute('data-key') || '';
  var customer = script.getAttribute('data-customer') || '';
  var session = sessionStorage.getItem('aisle.widget.session');
  if (!session) {
    session = (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2));
    sessionStorage.setItem('aisle.widget.session', session);
  }
  var CSS = ':host{all:initial;display:block;font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#111827}' +
    '.strip{display:grid;grid-template-columns:repeat(auto-fill,minmax(10rem,1fr));gap:.6rem}' +
    '.card{border:1px solid #d1d5db;border-radius:8px;padding:.6rem;background:#fff;display:flex;flex-direction:column;gap:.25rem}' +
    '.card a{color:#1d4ed8;font-weight:600;text-decoration:none}.price{font-weight:650}.why{font-size:.8rem;color:#4b5563}' +
    'h2{font-size:1rem;margin:0 0 .5rem}.log{display:flex;flex-direction:column;gap:.4rem;max-height:24rem;overflow:auto;margin-bottom:.5rem}' +
    '.msg{padding:.4rem .6rem;border-radius:8px;white-space:pre-wrap}.user{background:#dbeafe;align-self:flex-end}.bot{background:#f3f4f6}' +
    'form{display:flex;gap:.4rem}input{flex:1;min-width:0;font:inherit;padding:.35rem .5rem;border:1px solid #d1d5db;border-radius:6px}' +
    'button{font:inherit;background:#1d4ed8;color:#fff;border:0;border-radius:6px;padding:.35rem .8rem;cursor:pointer}' +
    'button:focus-visible,a:focus-visible,input:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}.error{color:#b91c1c}';

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function shadow(host) {
    var root = host.shadowRoot || host.attachShadow({ mode: 'open' });
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      root.appendChild(el('style', {}, CSS));
    }
    return root;
  }
  function call(path, body, accept) {
    var headers = { accept: accept || 'application/json' };
    if (key) headers.authorization = 'Bearer ' + key;
    if (body !== undefined) headers['content-type'] = 'application/json';
    return fetch(base + path, { method: body === undefined ? 'GET' : 'POST', headers: headers, credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body) }).then(function (res) {
      if (!res.ok) return res.json().catch(function () { return {}; }).then(function (p) { throw new Error(res.status + ': ' + (p.detail || p.title || 'request failed')); });
      return accept ? res : res.json();
    });
  }
  function money(p, c) {
    if (p === null || p === undefined) return '';
    try { return new Intl.NumberFormat(undefined, { style: 'currency', currency: c || 'USD' }).format(p); } catch (e) { return p + ' ' + (c || ''); }
  }
  function events(kind, ids, recId) {
    if (!ids.length) return;
    call('/v1/events', { events: ids.map(function (id) {
      return { id: crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2), kind: kind, product_id: id,
        customer_id: customer || undefined, session_id: session, rec_id: recId };
    }) }).catch(function () {});
  }
  function card(p, why, recId) {
    var c = el('div', { class: 'card', 'data-id': p.id });
    // Only web links (the catalog checks this too): never a javascript: URL in the shop's page.
    var a = el('a', { href: /^https?:\/\//i.test(p.url || '') ? p.url : '#' }, p.title);
    a.addEventListener('click', function () { events('click', [p.id], recId); });
    c.appendChild(a);
    c.appendChild(el('span', { class: 'price' }, money(p.price, p.currency)));
    if (why) c.appendChild(el('span', { class: 'why' }, why));
    return c;
  }

  function strip(host) {
    var root = shadow(host);
    var limit = Number(host.getAttribute('data-limit') || 6);
    var product = host.getAttribute('data-product');
    var body = { limit: limit, session: { items: product ? [product] : [] } };
    if (customer) body.customer_id = customer;
    call('/v1/recommendations', body).then(function (r) {
      root.replaceChildren(el('h2', {}, host.getAttribute('data-title') || 'Recommended for you'));
      var s = el('div', { class: 'strip', part: 'strip' });
      r.items.forEach(function (it) { s.appendChild(card(it.product, it.explanation, r.rec_id)); });
      root.appendChild(s);
      events('impression', r.items.map(function (it) { return it.product.id; }), r.rec_id);
    }).catch(function (e) { root.replaceChildren(el('p', { class: 'error' }, 'Recommendations are unavailable (' + e.message + ').')); });
  }

  function assistant(host) {
    var root = shadow(host);
    var messages = [], sessionId = null;
    var log = el('div', { class: 'log', 'aria-live': 'polite' });
    var form = el('form');
    var input = el('input', { 'aria-label': 'Ask the shopping assistant', placeholder: host.getAttribute('data-placeholder') || 'What are you looking for?' });
    form.appendChild(input);
    form.appendChild(el('button', { type: 'submit' }, 'Ask'));
    root.replaceChildren(el('h2', {}, host.getAttribute('data-title') || 'Shopping assistant'), log, form);
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var text = input.value.trim();
      if (!text) return;
      input.value = '';
      messages.push({ role: 'user', content: text });
      log.appendChild(el('div', { class: 'msg user' }, text));
      var answer = el('div', { class: 'msg bot' });
      var cards = el('div', { class: 'strip' });
      log.appendChild(answer);
      log.appendChild(cards);
      var body = { messages: messages, stream: true };
      if (sessionId) body.session_id = sessionId;
      if (customer) body.customer_id = customer;
      call('/v1/assistant/chat', body, 'text/event-stream').then(function (res) {
        var reader = res.body.getReader(), decoder = new TextDecoder(), buf = '';
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) return;
            buf += decoder.decode(chunk.value, { stream: true });
            var at;
            while ((at = buf.indexOf('\n\n')) >= 0) {
              var block = buf.slice(0, at), name = 'message', data = '';
              buf = buf.slice(at + 2);
              block.split('\n').forEach(function (l) {
                if (l.indexOf('event:') === 0) name = l.slice(6).trim();
                else if (l.indexOf('data:') === 0) data += l.slice(5).replace(/^ /, '');
              });
              if (!data) continue;
              var d = JSON.parse(data);
              if (name === 'meta') sessionId = d.session_id || sessionId;
              else if (name === 'delta') answer.textContent += d.text;
              else if (name === 'cards') d.cards.forEach(function (c) { cards.appendChild(card(c, c.why)); });
              else if (name === 'done') messages.push({ role: 'assistant', content: d.answer });
              else if (name === 'error') answer.textContent += ' (' + d.detail + ')';
            }
            return pump();
          });
        }
        return pump();
      }).catch(function (e) { answer.textContent = 'The assistant is unavailable (' + e.message + ').'; });
    });
  }

  function mount() {
    document.querySelectorAll('[data-aisle="recommendations"]').forEach(strip);
    document.querySelectorAll('[data-aisle="assistant"]').forEach(assistant);
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', mount);
  else mount();
})();
