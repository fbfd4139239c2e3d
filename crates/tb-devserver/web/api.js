// The dev server's REST API (ThingsBoard's shapes, spec: thingsboard-rest.md) and its live event
// stream, plus small DOM and formatting helpers shared by the other scripts. Nothing here knows
// about the page's layout.
(function () {
  'use strict';
  const TB = (window.TB = window.TB || {});
  const TOKEN = 'tb.token';
  const REFRESH = 'tb.refreshToken';

  // Messages for the statuses ThingsBoard answers with an empty body (RPC expiry, spec 7.4).
  const EMPTY_BODY_MESSAGES = {
    401: 'Unauthorized',
    404: 'Not found',
    406: 'The device replied with something that is not JSON',
    408: 'The device got the request but did not reply in time',
    409: 'The device is offline or not subscribed to RPC requests',
    413: 'Request too large',
    504: 'No reply in time: the device is offline, not subscribed, or did not answer',
  };

  /** A non-2xx answer: `status` and ThingsBoard's `message` (or the plain-text body). */
  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.name = 'ApiError';
      this.status = status;
      this.body = body;
    }
  }

  function parseJson(text) {
    try {
      return JSON.parse(text);
    } catch (e) {
      return undefined;
    }
  }

  function errorFrom(res, text) {
    const json = text ? parseJson(text) : undefined;
    let message;
    if (json && typeof json === 'object' && typeof json.message === 'string') {
      message = json.message;
    } else if (text) {
      message = text.length > 300 ? text.slice(0, 300) + '…' : text;
    } else {
      message = EMPTY_BODY_MESSAGES[res.status] || res.statusText || 'Request failed';
    }
    return new ApiError(res.status, message, text);
  }

  const api = {
    ApiError,
    /** Called once when the session is lost (401 after a failed refresh). */
    onUnauthorized: null,
    refreshing: null,

    token() {
      return sessionStorage.getItem(TOKEN);
    },

    /** Logs in (spec 3.1) and keeps the token pair in sessionStorage. */
    async login(username, password) {
      const res = await fetch('/api/auth/login', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ username, password }),
      });
      const text = await res.text();
      if (!res.ok) throw errorFrom(res, text);
      const pair = parseJson(text);
      if (!pair || typeof pair.token !== 'string') {
        throw new ApiError(res.status, 'The server sent no token', text);
      }
      sessionStorage.setItem(TOKEN, pair.token);
      sessionStorage.setItem(REFRESH, pair.refreshToken || '');
    },

    logout() {
      const token = this.token();
      sessionStorage.removeItem(TOKEN);
      sessionStorage.removeItem(REFRESH);
      if (token) {
        fetch('/api/auth/logout', {
          method: 'POST',
          headers: { 'X-Authorization': 'Bearer ' + token },
        }).catch(() => {});
      }
    },

    /**
     * Trades the refresh token for a new pair (spec 3.3); false when that fails. Calls made
     * while one is under way share it: several requests failing with 401 at once refresh once.
     */
    refresh() {
      if (!this.refreshing) {
        this.refreshing = this.refreshOnce().finally(() => {
          this.refreshing = null;
        });
      }
      return this.refreshing;
    },

    async refreshOnce() {
      const refreshToken = sessionStorage.getItem(REFRESH);
      if (!refreshToken) return false;
      try {
        const res = await fetch('/api/auth/token', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ refreshToken }),
        });
        if (!res.ok) return false;
        const pair = parseJson(await res.text());
        if (!pair || typeof pair.token !== 'string') return false;
        sessionStorage.setItem(TOKEN, pair.token);
        sessionStorage.setItem(REFRESH, pair.refreshToken || refreshToken);
        return true;
      } catch (e) {
        return false;
      }
    },

    /**
     * One authenticated call. `body` is sent as JSON (a string as is), `form` as multipart.
     * Returns the parsed JSON body, null for an empty one; with `raw` returns
     * `{status, text, data}` instead. Throws ApiError for a non-2xx answer.
     */
    async request(method, path, { body, form, raw } = {}) {
      for (let attempt = 0; ; attempt++) {
        const headers = { 'X-Authorization': 'Bearer ' + (this.token() || '') };
        const init = { method, headers };
        if (form !== undefined) {
          init.body = form;
        } else if (body !== undefined) {
          headers['Content-Type'] = 'application/json';
          init.body = typeof body === 'string' ? body : JSON.stringify(body);
        }
        const sent = headers['X-Authorization'];
        const res = await fetch(path, init);
        const text = await res.text();
        if (res.status === 401) {
          // Another call may have refreshed the token meanwhile: then just retry with it.
          const renewed = 'Bearer ' + (this.token() || '') !== sent && this.token();
          if (attempt === 0 && (renewed || (await this.refresh()))) continue;
          this.lost();
          throw errorFrom(res, text);
        }
        if (!res.ok) throw errorFrom(res, text);
        const data = text ? parseJson(text) : null;
        return raw ? { status: res.status, text, data } : data;
      }
    },

    get(path) {
      return this.request('GET', path);
    },
    post(path, body) {
      return this.request('POST', path, { body });
    },
    del(path) {
      return this.request('DELETE', path);
    },

    lost() {
      const had = this.token(); // several calls may fail at once: report the loss once
      sessionStorage.removeItem(TOKEN);
      sessionStorage.removeItem(REFRESH);
      if (had && this.onUnauthorized) this.onUnauthorized();
    },

    /**
     * Opens the live stream (`/api/devserver/events`, CONTRACT-web.md), with `deviceId` for the
     * device's own events. `onEvent(json)` gets each event, `onState('open'|'retry')` the
     * connection state. Reconnects with back-off and the current token; returns `{close()}`.
     */
    events(deviceId, onEvent, onState) {
      let source = null;
      let closed = false;
      let timer = null;
      let delay = 1000;
      const open = () => {
        if (closed || !this.token()) return;
        let query = 'token=' + encodeURIComponent(this.token());
        if (deviceId) query += '&deviceId=' + encodeURIComponent(deviceId);
        source = new EventSource('/api/devserver/events?' + query);
        source.onopen = () => {
          delay = 1000;
          onState('open');
        };
        source.onmessage = (msg) => {
          const ev = parseJson(msg.data);
          if (ev && typeof ev === 'object') onEvent(ev);
        };
        source.onerror = () => {
          // Design: the browser would retry with the same URL, so an expired token in it
          // would fail forever; reopen ourselves after checking (and refreshing) the login.
          source.close();
          if (closed) return;
          onState('retry');
          timer = setTimeout(async () => {
            try {
              await this.get('/api/auth/user');
            } catch (e) {
              if (e.status === 401) return;
            }
            open();
          }, delay);
          delay = Math.min(delay * 2, 10000);
        };
      };
      open();
      return {
        close() {
          closed = true;
          clearTimeout(timer);
          if (source) source.close();
        },
      };
    },
  };

  // ---- helpers shared by the page's scripts -------------------------------------------------

  /** `el('td', {class: 'x', dataset: {key: k}}, 'text', child)`: a small DOM builder. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'dataset') Object.assign(node.dataset, value);
      else if (name === 'text') node.textContent = value;
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? '' : value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const pad = (n, w = 2) => String(n).padStart(w, '0');

  const fmt = {
    /** ThingsBoard's `yyyy-MM-dd HH:mm:ss`, local time. */
    time(ts) {
      if (!ts) return '—';
      const d = new Date(ts);
      return (
        `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
        `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
      );
    },
    /** "just now", "42 s ago", "5 min ago", "3 h ago", else the date and time. */
    ago(ts, now = Date.now()) {
      if (!ts) return 'never';
      const s = Math.round((now - ts) / 1000);
      if (s < 2) return 'just now';
      if (s < 60) return `${s} s ago`;
      if (s < 3600) return `${Math.floor(s / 60)} min ago`;
      if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
      return fmt.time(ts);
    },
    /** A telemetry or attribute value as text (JSON values compact). */
    value(v) {
      if (v === null || v === undefined) return '';
      if (typeof v === 'object') return JSON.stringify(v);
      return String(v);
    },
    bytes(n) {
      if (n === null || n === undefined) return '—';
      if (n < 1024) return `${n} B`;
      if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
      return `${(n / (1 << 20)).toFixed(1)} MiB`;
    },
  };

  /** A number for the chart: numbers, and numeric strings (a server without strict types). */
  function numeric(v) {
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    if (typeof v === 'string' && /^\s*-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(v)) {
      return Number(v);
    }
    return null;
  }

  let toastTimer = null;
  function toast(message, isError) {
    const box = document.getElementById('toast');
    box.textContent = message;
    box.classList.toggle('err', !!isError);
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (box.hidden = true), isError ? 6000 : 3000);
  }

  TB.api = api;
  TB.el = el;
  TB.fmt = fmt;
  TB.numeric = numeric;
  TB.toast = toast;
})();
