// The selected device: header, tabs, latest telemetry with its chart, and attributes by scope.
// The RPC, firmware and log tabs live in panels.js. Each panel has `reset(id, gen)` (load for a
// newly selected device; drop answers whose `gen` is no longer current) and `on*` handlers for
// the stream's events.
(function () {
  'use strict';
  const TB = (window.TB = window.TB || {});
  const { api, el, fmt, numeric } = TB;
  const $ = (id) => document.getElementById(id);
  const base = (id) => `/api/plugins/telemetry/DEVICE/${encodeURIComponent(id)}`;

  // ---- latest telemetry and the chart ---------------------------------------------------------

  class TelemetryPanel {
    constructor(view) {
      this.view = view;
      this.latest = new Map(); // key -> {ts, value}
      this.chart = new TB.TimeChart($('telemetry-chart'), {
        windowMs: Number($('chart-window').value),
      });
      $('chart-window').addEventListener('change', (e) => {
        this.chart.setWindow(Number(e.target.value));
        this.loadHistory(this.view.gen);
      });
      $('chart-legend').addEventListener('change', (e) => {
        const key = e.target.closest('label').dataset.key;
        this.chart.setVisible(key, e.target.checked);
      });
    }

    async reset(id, gen) {
      this.latest.clear();
      this.chart.clear();
      $('chart-legend').replaceChildren();
      this.render();
      let data;
      try {
        data = await api.get(`${base(id)}/values/timeseries?useStrictDataTypes=true`);
      } catch (e) {
        if (gen === this.view.gen && e.status !== 401) TB.toast('Telemetry: ' + e.message, true);
        return;
      }
      if (gen !== this.view.gen || !data) return;
      for (const [key, points] of Object.entries(data)) {
        const p = points && points[0];
        if (p && p.value !== null && p.value !== undefined) this.put(key, p.ts, p.value);
      }
      this.render();
      this.view.firmware.refresh();
      await this.loadHistory(gen);
    }

    /** History of every numeric key over the chart's window (spec 5.3), merged into the chart. */
    async loadHistory(gen) {
      const keys = [...this.latest].filter(([, p]) => numeric(p.value) !== null).map(([k]) => k);
      if (!keys.length || !this.view.device) return;
      const endTs = Date.now() + 60000; // a device clock slightly ahead still shows
      const startTs = endTs - 60000 - this.chart.windowMs;
      const q = `keys=${encodeURIComponent(keys.join(','))}&startTs=${startTs}&endTs=${endTs}` +
        '&limit=20000&orderBy=DESC&useStrictDataTypes=true';
      let data;
      try {
        data = await api.get(`${base(this.view.device.id.id)}/values/timeseries?${q}`);
      } catch (e) {
        if (gen === this.view.gen && e.status !== 401) TB.toast('History: ' + e.message, true);
        return;
      }
      if (gen !== this.view.gen || !data) return;
      for (const [key, points] of Object.entries(data)) {
        const pts = (points || []).map((p) => [p.ts, numeric(p.value)]).filter((p) => p[1] !== null);
        if (pts.length) {
          this.chart.merge(key, pts);
          this.legend(key);
        }
      }
    }

    put(key, ts, value) {
      const old = this.latest.get(key);
      if (old && old.ts > ts) return false; // "latest" is the newest ts (spec 5.2)
      this.latest.set(key, { ts, value });
      return true;
    }

    onTelemetry(ev) {
      let added = false;
      const changed = [];
      for (const [key, value] of Object.entries(ev.values || {})) {
        if (value === null || value === undefined) continue;
        added = added || !this.latest.has(key);
        if (this.put(key, ev.ts, value)) changed.push(key);
        const n = numeric(value);
        if (n !== null) {
          this.chart.add(key, ev.ts, n);
          this.legend(key);
        }
      }
      if (added) this.render();
      else this.update(changed);
      if (changed.some((k) => k.startsWith('fw_') || k.startsWith('current_fw_'))) {
        this.view.firmware.refresh();
      }
    }

    render() {
      const keys = [...this.latest.keys()].sort();
      $('telemetry-rows').replaceChildren(...keys.map((key) => {
        const tr = el('tr', { dataset: { key } }, el('td', { class: 'key' }, key),
          el('td', { class: 'value' }), el('td', { class: 'time' }));
        this.fill(tr, this.latest.get(key));
        return tr;
      }));
      $('telemetry-empty').hidden = keys.length > 0;
    }

    update(keys) {
      for (const key of keys) {
        const tr = $('telemetry-rows').querySelector(`tr[data-key="${CSS.escape(key)}"]`);
        if (!tr) continue;
        this.fill(tr, this.latest.get(key));
        tr.classList.remove('flash');
        void tr.offsetWidth; // restart the highlight animation
        tr.classList.add('flash');
      }
    }

    fill(tr, p) {
      tr.querySelector('.value').textContent = fmt.value(p.value);
      tr.querySelector('.time').textContent = fmt.time(p.ts);
    }

    legend(key) {
      const box = $('chart-legend');
      if (box.querySelector(`label[data-key="${CSS.escape(key)}"]`)) return;
      const label = el('label', { dataset: { key } },
        el('input', { type: 'checkbox', checked: true, 'aria-label': `Show ${key}` }),
        el('span', { class: 'swatch', style: `background:${this.chart.colorOf(key)}` }), key);
      const after = [...box.children].find((l) => l.dataset.key > key);
      box.insertBefore(label, after || null);
    }
  }

  // ---- attributes ----------------------------------------------------------------------------

  const SCOPES = ['CLIENT_SCOPE', 'SHARED_SCOPE', 'SERVER_SCOPE'];

  /** The form's value in the chosen type, or throws an Error saying what is wrong. */
  function typedValue(type, text) {
    const t = text.trim();
    switch (type) {
      case 'integer':
        if (!/^-?\d+$/.test(t)) throw new Error(`"${text}" is not an integer`);
        return Number(t);
      case 'double':
        if (t === '' || !Number.isFinite(Number(t))) throw new Error(`"${text}" is not a number`);
        return Number(t);
      case 'boolean':
        if (t !== 'true' && t !== 'false') throw new Error('a boolean is true or false');
        return t === 'true';
      case 'json':
        try {
          return JSON.parse(t);
        } catch (e) {
          throw new Error('not valid JSON: ' + e.message);
        }
      default:
        return text;
    }
  }

  function typeOf(value) {
    if (typeof value === 'boolean') return 'boolean';
    if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'double';
    if (value !== null && typeof value === 'object') return 'json';
    return 'string';
  }

  class AttributesPanel {
    constructor(view) {
      this.view = view;
      this.scope = 'CLIENT_SCOPE';
      this.values = Object.fromEntries(SCOPES.map((s) => [s, new Map()]));
      for (const radio of document.querySelectorAll('input[name="attr-scope"]')) {
        radio.addEventListener('change', () => {
          this.scope = radio.value;
          this.clearForm();
          this.render();
        });
      }
      $('attr-form').addEventListener('submit', (e) => {
        e.preventDefault();
        this.save();
      });
      $('attr-cancel').addEventListener('click', () => this.clearForm());
      $('attributes-rows').addEventListener('click', (e) => {
        const btn = e.target.closest('button[data-action]');
        if (!btn) return;
        const key = btn.closest('tr').dataset.key;
        if (btn.dataset.action === 'edit') this.edit(key);
        else this.remove(key);
      });
    }

    editable() {
      return this.scope !== 'CLIENT_SCOPE';
    }

    async reset(id, gen) {
      for (const s of SCOPES) this.values[s].clear();
      this.clearForm();
      this.render();
      await Promise.all(SCOPES.map(async (scope) => {
        let list;
        try {
          list = await api.get(`${base(id)}/values/attributes/${scope}`);
        } catch (e) {
          if (gen === this.view.gen && e.status !== 401) TB.toast('Attributes: ' + e.message, true);
          return;
        }
        if (gen !== this.view.gen) return;
        for (const a of list || []) {
          this.values[scope].set(a.key, { ts: a.lastUpdateTs, value: a.value });
        }
      }));
      if (gen !== this.view.gen) return;
      this.render();
      this.view.firmware.refresh();
    }

    onAttributes(ev) {
      const map = this.values[ev.scope];
      if (!map) return;
      const ts = ev.ts || Date.now();
      for (const [key, value] of Object.entries(ev.values || {})) map.set(key, { ts, value });
      for (const key of ev.deleted || []) map.delete(key);
      if (ev.scope === this.scope) this.render();
      this.view.firmware.refresh();
    }

    render() {
      const map = this.values[this.scope];
      const keys = [...map.keys()].sort();
      const editable = this.editable();
      const actions = (key) => editable ? [
        el('button', { class: 'btn flat tiny attr-edit', type: 'button',
          dataset: { action: 'edit' }, 'aria-label': `Edit ${key}` }, 'Edit'),
        el('button', { class: 'btn flat tiny danger attr-delete', type: 'button',
          dataset: { action: 'delete' }, 'aria-label': `Delete ${key}` }, 'Delete'),
      ] : [];
      $('attributes-rows').replaceChildren(...keys.map((key) => {
        const a = map.get(key);
        return el('tr', { dataset: { key, scope: this.scope } },
          el('td', { class: 'time' }, fmt.time(a.ts)),
          el('td', { class: 'key' }, key),
          el('td', { class: 'value' }, fmt.value(a.value)),
          el('td', { class: 'actions' }, ...actions(key)));
      }));
      $('attributes-empty').hidden = keys.length > 0;
      $('attributes-readonly').hidden = editable;
      $('attr-form').hidden = !editable;
    }

    edit(key) {
      const a = this.values[this.scope].get(key);
      if (!a) return;
      const type = typeOf(a.value);
      $('attr-form-title').textContent = `Edit ${key}`;
      $('attr-key').value = key;
      $('attr-type').value = type;
      $('attr-value').value = type === 'json' ? JSON.stringify(a.value) : fmt.value(a.value);
      $('attr-value').focus();
    }

    clearForm() {
      $('attr-form').reset();
      $('attr-form-title').textContent = 'Add attribute';
      $('attr-error').hidden = true;
    }

    showError(message) {
      $('attr-error').textContent = message;
      $('attr-error').hidden = false;
    }

    async save() {
      const key = $('attr-key').value.trim();
      if (!key) return this.showError('The key is empty');
      let value;
      try {
        value = typedValue($('attr-type').value, $('attr-value').value);
      } catch (e) {
        return this.showError(e.message);
      }
      const scope = this.scope;
      const id = this.view.device.id.id;
      $('attr-save').disabled = true;
      try {
        await api.post(`${base(id)}/${scope}`, { [key]: value });
        if (id === this.view.device.id.id) {
          this.values[scope].set(key, { ts: Date.now(), value });
          this.clearForm();
          this.render();
          TB.toast(`Saved ${key}`);
        }
      } catch (e) {
        this.showError(`${e.status}: ${e.message}`);
      } finally {
        $('attr-save').disabled = false;
      }
    }

    async remove(key) {
      const scope = this.scope;
      const id = this.view.device.id.id;
      try {
        await api.del(`${base(id)}/${scope}?keys=${encodeURIComponent(key)}`);
        this.values[scope].delete(key);
        this.render();
        TB.toast(`Deleted ${key}`);
      } catch (e) {
        TB.toast(`Delete ${key}: ${e.message}`, true);
      }
    }
  }

  // ---- the view ------------------------------------------------------------------------------

  class DeviceView {
    constructor() {
      this.device = null; // DeviceInfo
      this.gen = 0;
      this.telemetry = new TelemetryPanel(this);
      this.attributes = new AttributesPanel(this);
      this.rpc = new TB.RpcPanel(this);
      this.firmware = new TB.FirmwarePanel(this);
      this.log = new TB.LogPanel(this);
      this.setupTabs();
      $('copy-id').addEventListener('click', () => this.copy($('device-id').textContent));
      $('copy-token').addEventListener('click', () => this.copy($('device-token').textContent));
      setInterval(() => this.device && this.header(), 1000);
      /** Set by the app: called with the id of a device deleted here. */
      this.onDeleted = null;
      let armed = null;
      $('device-delete').addEventListener('click', async () => {
        const btn = $('device-delete');
        if (!armed) {
          // A second click within 4 s confirms (no modal dialog to get in the way).
          btn.textContent = 'Click again to delete';
          armed = setTimeout(() => {
            armed = null;
            btn.textContent = 'Delete device';
          }, 4000);
          return;
        }
        clearTimeout(armed);
        armed = null;
        btn.textContent = 'Delete device';
        const { id, name } = { id: this.device.id.id, name: this.device.name };
        try {
          await api.del(`/api/device/${encodeURIComponent(id)}`);
          TB.toast(`Deleted ${name}`);
          if (this.onDeleted) this.onDeleted(id);
        } catch (e) {
          TB.toast(`Delete ${name}: ${e.message}`, true);
        }
      });
    }

    setupTabs() {
      const tabs = [...document.querySelectorAll('.tabs [role=tab]')];
      const select = (tab) => {
        for (const t of tabs) {
          const on = t === tab;
          t.setAttribute('aria-selected', String(on));
          t.tabIndex = on ? 0 : -1;
          $(t.getAttribute('aria-controls')).hidden = !on;
        }
      };
      tabs.forEach((tab, i) => {
        tab.addEventListener('click', () => select(tab));
        tab.addEventListener('keydown', (e) => {
          const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
          if (!step) return;
          const next = tabs[(i + step + tabs.length) % tabs.length];
          select(next);
          next.focus();
        });
      });
    }

    copy(text) {
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(() => TB.toast('Copied'), () => {});
      } else {
        TB.toast(text);
      }
    }

    /** Shows a device: loads every panel; the caller opens the device's event stream. */
    show(info) {
      this.gen++;
      const gen = this.gen;
      this.device = info;
      const id = info.id.id;
      $('device-none').hidden = true;
      $('device-details').hidden = false;
      $('device-details').dataset.deviceId = id;
      $('device-id').textContent = id;
      $('device-token').textContent = '…';
      this.header();
      this.telemetry.reset(id, gen);
      this.attributes.reset(id, gen);
      this.rpc.reset(id, gen);
      this.firmware.reset(id, gen);
      this.log.reset(id, gen);
      api.get(`/api/device/${encodeURIComponent(id)}/credentials`).then((c) => {
        if (gen === this.gen) $('device-token').textContent = (c && c.credentialsId) || '—';
      }, () => {
        if (gen === this.gen) $('device-token').textContent = '—';
      });
    }

    /** Reloads the panels of the shown device (after the stream reconnected). */
    reload() {
      if (this.device) this.show(this.device);
    }

    clear() {
      this.gen++;
      this.device = null;
      $('device-none').hidden = false;
      $('device-details').hidden = true;
    }

    header() {
      const d = this.device;
      $('device-name').textContent = d.name;
      $('device-type').textContent = d.type || d.deviceProfileName || 'default';
      const state = $('device-state');
      state.textContent = d.active ? 'Active' : 'Inactive';
      state.className = 'chip' + (d.active ? ' active' : '');
      const t = $('device-activity');
      t.textContent = fmt.ago(d.lastActivityTime);
      t.title = fmt.time(d.lastActivityTime);
    }

    /** Every stream event; the ones for another device are ignored. */
    onEvent(ev) {
      if (!this.device) return;
      const id = this.device.id.id;
      if (ev.type === 'device') {
        if (ev.device && ev.device.id && ev.device.id.id === id) {
          this.device = Object.assign({}, this.device, ev.device);
          this.header();
        }
        return;
      }
      if (ev.deviceId !== id) return;
      switch (ev.type) {
        case 'telemetry':
          this.telemetry.onTelemetry(ev);
          break;
        case 'attributes':
          this.attributes.onAttributes(ev);
          break;
        case 'rpc':
          this.rpc.onRpc(ev);
          break;
        case 'log':
          this.log.onLog(ev);
          break;
        default:
          break;
      }
    }
  }

  TB.DeviceView = DeviceView;
  TB.attributeValue = typedValue;
})();
