// The selected device's RPC console, firmware (upload, assign, fw_state progress) and live log.
// Same shape as the panels in device.js: `reset(id, gen)` plus handlers for stream events.
(function () {
  'use strict';
  const TB = (window.TB = window.TB || {});
  const { api, el, fmt } = TB;
  const $ = (id) => document.getElementById(id);

  const STATUS_TEXT = { 406: 'Not Acceptable', 408: 'Request Timeout', 409: 'Conflict',
    400: 'Bad Request', 404: 'Not Found', 500: 'Server Error', 504: 'Gateway Timeout' };

  // ---- RPC console ---------------------------------------------------------------------------

  class RpcPanel {
    constructor(view) {
      this.view = view;
      this.rows = new Map(); // rpc id -> last event
      $('rpc-form').addEventListener('submit', (e) => {
        e.preventDefault();
        this.send();
      });
    }

    reset() {
      this.rows.clear();
      $('rpc-rows').replaceChildren();
      this.result('—', false);
      $('rpc-status').hidden = true;
    }

    status(text, kind) {
      const chip = $('rpc-status');
      chip.textContent = text;
      chip.className = 'chip' + (kind ? ' ' + kind : '');
      chip.hidden = false;
    }

    result(text, isError) {
      const pre = $('rpc-result');
      pre.textContent = text;
      pre.classList.toggle('err', !!isError);
    }

    async send() {
      const method = $('rpc-method').value.trim();
      if (!method) {
        this.status('Method required', 'err');
        return;
      }
      let params = null;
      const paramsText = $('rpc-params').value.trim();
      if (paramsText) {
        try {
          params = JSON.parse(paramsText);
        } catch (e) {
          this.status('Invalid params', 'err');
          this.result('Params are not valid JSON: ' + e.message, true);
          return;
        }
      }
      const kind = $('rpc-oneway').checked ? 'oneway' : 'twoway';
      const body = { method, params };
      const timeout = Number($('rpc-timeout').value);
      if (timeout > 0) body.timeout = timeout;
      const gen = this.view.gen;
      const id = this.view.device.id.id;
      $('rpc-send').disabled = true;
      this.status('Waiting…', 'warn');
      this.result(kind === 'twoway' ? 'Waiting for the device to reply…' : 'Sending…', false);
      try {
        const res = await api.request('POST', `/api/rpc/${kind}/${encodeURIComponent(id)}`,
          { body, raw: true });
        if (gen !== this.view.gen) return;
        this.status(`${res.status} OK`, 'ok');
        if (kind === 'oneway') this.result('Delivered (one-way: no reply expected)', false);
        else if (!res.text) this.result('(empty reply)', false);
        else this.result(res.data === undefined ? res.text : JSON.stringify(res.data, null, 2));
      } catch (e) {
        if (gen !== this.view.gen) return;
        this.status(`${e.status || ''} ${STATUS_TEXT[e.status] || 'Error'}`.trim(), 'err');
        this.result(e.message, true);
      } finally {
        $('rpc-send').disabled = false;
      }
    }

    /** An `rpc` event: one row per request id, updated as its status moves on. */
    onRpc(ev) {
      const prev = this.rows.get(ev.id) || {};
      const rec = Object.assign({}, prev, ev);
      this.rows.set(ev.id, rec);
      const body = $('rpc-rows');
      let tr = body.querySelector(`tr[data-rpc-id="${CSS.escape(String(ev.id))}"]`);
      if (!tr) {
        tr = el('tr', { dataset: { rpcId: String(ev.id) } }, el('td', { class: 'id' }),
          el('td', { class: 'method' }), el('td', { class: 'value params' }),
          el('td', { class: 'status' }), el('td', { class: 'value response' }));
        body.prepend(tr);
        while (body.children.length > 50) body.lastElementChild.remove();
      }
      const st = rec.status || '';
      const kind = st === 'SUCCESSFUL' ? 'ok'
        : ['TIMEOUT', 'EXPIRED', 'FAILED'].includes(st) ? 'err' : 'warn';
      tr.querySelector('.id').textContent = String(rec.id);
      tr.querySelector('.method').textContent = rec.method || '';
      tr.querySelector('.params').textContent = fmt.value(rec.params);
      tr.querySelector('.status').replaceChildren(el('span', { class: 'chip ' + kind }, st));
      tr.querySelector('.response').textContent = fmt.value(rec.response);
    }
  }

  // ---- firmware ------------------------------------------------------------------------------

  // spec: thingsboard-mqtt.md 11.3, the states a device reports in `fw_state`.
  const STEPS = ['INITIATED', 'DOWNLOADING', 'DOWNLOADED', 'VERIFIED', 'UPDATING', 'UPDATED'];
  const PERCENT = { QUEUED: 2, INITIATED: 10, DOWNLOADING: 30, DOWNLOADED: 55, VERIFIED: 75,
    UPDATING: 90, UPDATED: 100 };

  class FirmwarePanel {
    constructor(view) {
      this.view = view;
      this.packages = [];
      this.firmwareId = null;
      this.lastGood = null; // the last state before a FAILED, to mark the step that failed
      $('fw-upload-form').addEventListener('submit', (e) => {
        e.preventDefault();
        this.upload();
      });
      $('fw-assign').addEventListener('click', () => this.assign());
    }

    async reset(id, gen) {
      this.lastGood = null;
      this.firmwareId = null;
      $('fw-assign-status').textContent = '';
      $('fw-upload-status').textContent = '';
      this.refresh();
      await this.loadPackages(gen);
      try {
        const device = await api.get(`/api/device/${encodeURIComponent(id)}`);
        if (gen !== this.view.gen) return;
        this.firmwareId = device && device.firmwareId ? device.firmwareId.id : null;
        $('fw-package').value = this.firmwareId || '';
      } catch (e) {
        // the header shows the device anyway; assignment re-reads it
      }
    }

    async loadPackages(gen) {
      let page;
      try {
        page = await api.get('/api/otaPackages?pageSize=100&page=0&sortProperty=createdTime' +
          '&sortOrder=DESC');
      } catch (e) {
        if (e.status !== 401) $('fw-upload-status').textContent = 'Packages: ' + e.message;
        return;
      }
      if (gen !== undefined && gen !== this.view.gen) return;
      this.packages = (page && page.data) || [];
      const select = $('fw-package');
      const keep = select.value || this.firmwareId || '';
      select.replaceChildren(el('option', { value: '' }, '(none)'),
        ...this.packages.filter((p) => p.type === 'FIRMWARE' && p.hasData !== false).map((p) =>
          el('option', { value: p.id.id }, `${p.title} (${p.version})`)));
      select.value = keep;
      $('fw-package-rows').replaceChildren(...this.packages.map((p) =>
        el('tr', { dataset: { id: p.id.id } },
          el('td', {}, p.title), el('td', {}, p.version), el('td', {}, fmt.bytes(p.dataSize)),
          el('td', { class: 'value', title: p.checksum || '' }, p.checksum
            ? `${p.checksumAlgorithm} ${p.checksum.slice(0, 12)}…` : '—'))));
      $('fw-packages-empty').hidden = this.packages.length > 0;
    }

    /** The newest of a key from telemetry and client attributes (devices use either). */
    reported(key) {
      const t = this.view.telemetry.latest.get(key);
      const a = this.view.attributes.values.CLIENT_SCOPE.get(key);
      if (t && a) return t.ts >= a.ts ? t.value : a.value;
      return t ? t.value : a ? a.value : null;
    }

    /** Redraws the state from what telemetry and attributes hold now. */
    refresh() {
      if (!this.view.device) return;
      const state = this.reported('fw_state');
      const chip = $('fw-state');
      if (chip.textContent !== (state || 'No update')) chip.textContent = state || 'No update';
      chip.dataset.state = state || '';
      chip.className = 'chip' + (state === 'UPDATED' ? ' ok' : state === 'FAILED' ? ' err'
        : state ? ' warn' : '');
      if (state && state !== 'FAILED') this.lastGood = state;
      const idx = STEPS.indexOf(state);
      const failedAt = state === 'FAILED' ? STEPS.indexOf(this.lastGood) + 1 : -1;
      [...$('fw-steps').children].forEach((li, i) => {
        li.className = i < idx || (idx === STEPS.length - 1 && i === idx) ? 'done'
          : i === idx ? 'current' : i === failedAt ? 'failed'
            : failedAt > 0 && i < failedAt ? 'done' : '';
      });
      const bar = $('fw-progress');
      bar.value = state === 'FAILED' ? PERCENT[this.lastGood] || 0 : PERCENT[state] || 0;
      bar.dataset.state = state || '';
      const shared = this.view.attributes.values.SHARED_SCOPE;
      const title = shared.get('fw_title');
      const version = shared.get('fw_version');
      $('fw-target').textContent = title
        ? `Assigned: ${fmt.value(title.value)} ${version ? fmt.value(version.value) : ''}` : '';
      const curTitle = this.reported('current_fw_title');
      const curVersion = this.reported('current_fw_version');
      $('fw-current').textContent = curTitle || curVersion
        ? `${curTitle || '?'} ${curVersion || ''}` : '—';
      const error = this.reported('fw_error');
      $('fw-error').hidden = !(state === 'FAILED' && error);
      $('fw-error').textContent = error ? 'Update failed: ' + error : '';
    }

    async upload() {
      const title = $('fw-title').value.trim();
      const version = $('fw-version').value.trim();
      const file = $('fw-file').files[0];
      const status = $('fw-upload-status');
      if (!title || !version || !file) {
        status.textContent = 'Title, version and a file are needed.';
        return;
      }
      const device = this.view.device;
      $('fw-upload').disabled = true;
      status.textContent = 'Uploading…';
      try {
        const info = await api.post('/api/otaPackage', {
          title, version, type: 'FIRMWARE', deviceProfileId: device.deviceProfileId,
          usesUrl: false, additionalInfo: { description: '' },
        });
        const form = new FormData();
        form.append('file', file, file.name);
        const alg = encodeURIComponent($('fw-algorithm').value);
        const done = await api.request('POST',
          `/api/otaPackage/${encodeURIComponent(info.id.id)}?checksumAlgorithm=${alg}`, { form });
        status.textContent = `Uploaded ${done.title} ${done.version}: ${fmt.bytes(done.dataSize)},` +
          ` ${done.checksumAlgorithm} ${done.checksum}`;
        $('fw-package').value = '';
        await this.loadPackages();
        $('fw-package').value = done.id.id;
        $('fw-upload-form').reset();
      } catch (e) {
        status.textContent = `Upload failed: ${e.status || ''} ${e.message}`;
      } finally {
        $('fw-upload').disabled = false;
      }
    }

    /** Assigns the chosen package (spec 8.4): read the device, set firmwareId, save it. */
    async assign() {
      const status = $('fw-assign-status');
      const pkg = $('fw-package').value;
      const id = this.view.device.id.id;
      $('fw-assign').disabled = true;
      try {
        const device = await api.get(`/api/device/${encodeURIComponent(id)}`);
        device.firmwareId = pkg ? { entityType: 'OTA_PACKAGE', id: pkg } : null;
        await api.post('/api/device', device);
        this.firmwareId = pkg || null;
        this.lastGood = null;
        const p = this.packages.find((x) => x.id.id === pkg);
        status.textContent = pkg
          ? `Assigned ${p ? `${p.title} (${p.version})` : pkg}; the device was notified.`
          : 'Firmware unassigned.';
      } catch (e) {
        status.textContent = `Assign failed: ${e.status || ''} ${e.message}`;
      } finally {
        $('fw-assign').disabled = false;
      }
    }
  }

  // ---- live log ------------------------------------------------------------------------------

  const LOG_KEEP = 1000;
  const LOG_SHOW = 300;

  class LogPanel {
    constructor(view) {
      this.view = view;
      this.entries = [];
      this.filter = '';
      $('log-filter').addEventListener('input', (e) => {
        this.filter = e.target.value.toLowerCase();
        this.render();
      });
      $('log-pause').addEventListener('change', () => !$('log-pause').checked && this.render());
      $('log-clear').addEventListener('click', () => {
        this.entries = [];
        this.render();
      });
    }

    reset() {
      this.entries = [];
      this.render();
    }

    matches(e) {
      return !this.filter || e.topic.toLowerCase().includes(this.filter) ||
        String(e.payload).toLowerCase().includes(this.filter);
    }

    item(e) {
      const d = new Date(e.ts);
      const time = fmt.time(e.ts).slice(11) + '.' + String(d.getMilliseconds()).padStart(3, '0');
      return el('li', { class: e.dir === 'down' ? 'down' : 'up', dataset: { dir: e.dir } },
        el('span', { class: 'ts' }, time),
        el('span', { class: 'dir', title: e.dir === 'down' ? 'server to device' : 'device to server',
          'aria-label': e.dir === 'down' ? 'to device' : 'from device' },
        e.dir === 'down' ? '↓' : '↑'),
        el('span', { class: 'topic' }, e.topic),
        el('span', { class: 'payload' }, e.payload));
    }

    onLog(ev) {
      const entry = { ts: ev.ts || Date.now(), dir: ev.dir, topic: String(ev.topic || ''),
        payload: ev.payload === undefined ? '' : String(ev.payload) };
      this.entries.push(entry);
      if (this.entries.length > LOG_KEEP) this.entries.splice(0, this.entries.length - LOG_KEEP);
      if ($('log-pause').checked) return this.count();
      if (this.matches(entry)) {
        const list = $('log-list');
        list.prepend(this.item(entry));
        while (list.children.length > LOG_SHOW) list.lastElementChild.remove();
      }
      this.count();
    }

    render() {
      const shown = this.entries.filter((e) => this.matches(e)).slice(-LOG_SHOW).reverse();
      $('log-list').replaceChildren(...shown.map((e) => this.item(e)));
      this.count();
    }

    count() {
      $('log-count').textContent = `${this.entries.length} message` +
        (this.entries.length === 1 ? '' : 's');
    }
  }

  TB.RpcPanel = RpcPanel;
  TB.FirmwarePanel = FirmwarePanel;
  TB.LogPanel = LogPanel;
})();
