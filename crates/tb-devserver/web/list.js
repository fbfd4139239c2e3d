// The device list: server-side paging, search and state filter over
// `GET /api/tenant/deviceInfos` (so 1,000 devices cost one page of rows), kept live by the
// stream's `device` events.
(function () {
  'use strict';
  const TB = (window.TB = window.TB || {});
  const { api, el, fmt } = TB;
  const $ = (id) => document.getElementById(id);

  class DeviceList {
    /** @param {(info: object) => void} onSelect called with the clicked DeviceInfo. */
    constructor(onSelect) {
      this.onSelect = onSelect;
      this.page = 0;
      this.pageSize = Number($('device-page-size').value);
      this.textSearch = '';
      this.active = '';
      this.sortOrder = 'ASC';
      this.rows = []; // DeviceInfo of the shown page
      this.total = 0;
      this.totalPages = 0;
      this.selectedId = null;
      this.dirty = new Set(); // ids of shown rows with an update not drawn yet
      this.flushTimer = null;
      this.seen = new Map(); // id -> active, of every device this page has heard of
      this.loadSeq = 0;
      this.reloadTimer = null;

      let searchTimer = null;
      $('device-search').addEventListener('input', (e) => {
        clearTimeout(searchTimer);
        searchTimer = setTimeout(() => {
          this.textSearch = e.target.value.trim();
          this.page = 0;
          this.load();
        }, 200);
      });
      $('device-filter').addEventListener('change', (e) => {
        this.active = e.target.value;
        this.page = 0;
        this.load();
      });
      $('device-page-size').addEventListener('change', (e) => {
        this.pageSize = Number(e.target.value);
        this.page = 0;
        this.load();
      });
      $('device-prev').addEventListener('click', () => this.go(this.page - 1));
      $('device-next').addEventListener('click', () => this.go(this.page + 1));
      $('sort-name').addEventListener('click', () => {
        this.sortOrder = this.sortOrder === 'ASC' ? 'DESC' : 'ASC';
        $('sort-name').querySelector('span').textContent = this.sortOrder === 'ASC' ? '▲' : '▼';
        this.load();
      });
      $('device-rows').addEventListener('click', (e) => {
        const tr = e.target.closest('tr[data-id]');
        if (tr) this.select(tr.dataset.id);
      });
      $('device-rows').addEventListener('keydown', (e) => {
        const tr = e.target.closest('tr[data-id]');
        if (!tr) return;
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          this.select(tr.dataset.id);
        } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
          e.preventDefault();
          const next = e.key === 'ArrowDown' ? tr.nextElementSibling : tr.previousElementSibling;
          if (next) next.focus();
        }
      });
      setInterval(() => this.tick(), 1000);
      this.setupAdd();
    }

    /** The "Add device" form: `POST /api/device[?accessToken=]` (spec 4.5), then shows it. */
    setupAdd() {
      const form = $('device-add-form');
      const toggle = (open) => {
        form.hidden = !open;
        $('device-add').setAttribute('aria-expanded', String(open));
        $('new-device-error').hidden = true;
        if (open) $('new-device-name').focus();
        else form.reset();
      };
      $('device-add').addEventListener('click', () => toggle(form.hidden));
      $('new-device-cancel').addEventListener('click', () => toggle(false));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        const name = $('new-device-name').value.trim();
        const token = $('new-device-token').value.trim();
        const error = $('new-device-error');
        if (!name) {
          error.textContent = 'The name is empty';
          error.hidden = false;
          return;
        }
        $('new-device-save').disabled = true;
        try {
          const query = token ? '?accessToken=' + encodeURIComponent(token) : '';
          const device = await api.post('/api/device' + query, { name, type: 'default' });
          toggle(false);
          TB.toast(`Added ${device.name}`);
          this.load();
          this.selectedId = device.id.id;
          this.onSelect(Object.assign({ active: false, lastActivityTime: 0 }, device));
        } catch (err) {
          error.textContent = err.message;
          error.hidden = false;
        } finally {
          $('new-device-save').disabled = false;
        }
      });
    }

    go(page) {
      if (page < 0 || (this.totalPages && page >= this.totalPages)) return;
      this.page = page;
      this.load();
    }

    /** Fetches the current page; answers to older requests are dropped. */
    async load() {
      const seq = ++this.loadSeq;
      const q = new URLSearchParams({
        pageSize: String(this.pageSize),
        page: String(this.page),
        sortProperty: 'name',
        sortOrder: this.sortOrder,
      });
      if (this.textSearch) q.set('textSearch', this.textSearch);
      if (this.active) q.set('active', this.active);
      let data;
      try {
        data = await api.get('/api/tenant/deviceInfos?' + q);
      } catch (e) {
        if (e.status !== 401) TB.toast('Devices: ' + e.message, true);
        return;
      }
      if (seq !== this.loadSeq) return;
      this.total = data.totalElements || 0;
      this.totalPages = data.totalPages || 0;
      if (this.page > 0 && this.page >= this.totalPages) {
        this.page = Math.max(0, this.totalPages - 1);
        this.load();
        return;
      }
      // A server that ignores `active` still gets the filter on the page it sent.
      const want = this.active === '' ? null : this.active === 'true';
      this.rows = (data.data || []).filter((d) => want === null || !!d.active === want);
      for (const d of data.data || []) this.seen.set(d.id.id, !!d.active);
      this.render();
    }

    /** Reloads soon; many changes within the delay cost one request. */
    reloadSoon() {
      if (this.reloadTimer) return;
      this.reloadTimer = setTimeout(() => {
        this.reloadTimer = null;
        this.load();
      }, 700);
    }

    render() {
      const body = $('device-rows');
      body.replaceChildren(...this.rows.map((d) => this.row(d)));
      $('device-list-empty').hidden = this.rows.length > 0;
      $('device-list-empty').textContent = this.textSearch || this.active
        ? 'No devices match.' : 'No devices yet.';
      $('device-count').textContent =
        `${this.total.toLocaleString('en-US')} device${this.total === 1 ? '' : 's'}`;
      $('device-page-info').textContent = this.totalPages
        ? `${this.page + 1} / ${this.totalPages}` : '';
      $('device-prev').disabled = this.page <= 0;
      $('device-next').disabled = this.page + 1 >= this.totalPages;
    }

    row(d) {
      const id = d.id.id;
      const tr = el('tr', {
        dataset: { id, name: d.name },
        class: 'device-row',
        tabindex: '0',
        'aria-selected': String(id === this.selectedId),
      });
      tr.append(el('td', { class: 'name' }, d.name), el('td', { class: 'state' }),
        el('td', { class: 'time activity' }));
      this.fill(tr, d);
      return tr;
    }

    fill(tr, d) {
      const chip = el('span', { class: 'chip' + (d.active ? ' active' : '') },
        d.active ? 'Active' : 'Inactive');
      tr.dataset.active = String(!!d.active);
      tr.querySelector('.state').replaceChildren(chip);
      const cell = tr.querySelector('.activity');
      cell.dataset.ts = String(d.lastActivityTime || 0);
      cell.textContent = fmt.ago(d.lastActivityTime);
      cell.title = fmt.time(d.lastActivityTime);
    }

    tick() {
      const now = Date.now();
      for (const cell of $('device-rows').querySelectorAll('.activity')) {
        cell.textContent = fmt.ago(Number(cell.dataset.ts), now);
      }
    }

    find(id) {
      return this.rows.find((d) => d.id.id === id) || null;
    }

    select(id) {
      this.selectedId = id;
      for (const tr of $('device-rows').children) {
        tr.setAttribute('aria-selected', String(tr.dataset.id === id));
      }
      const info = this.find(id);
      if (info) this.onSelect(info);
    }

    // ---- live events ------------------------------------------------------------------------

    /** A `device` event: update the row in place, or reload when the page may change. */
    onDevice(info) {
      const id = info.id && info.id.id;
      const i = this.rows.findIndex((d) => d.id.id === id);
      if (i < 0) {
        // Design: activity of the thousand devices on other pages must not reload this one
        // every second. A device never seen before may be new (or match the search), and
        // under a state filter a state change may move a device onto this page: those
        // reload (debounced: a burst costs one request).
        const before = this.seen.get(id);
        this.seen.set(id, !!info.active);
        if (before === undefined || (this.active && before !== !!info.active)) this.reloadSoon();
        return;
      }
      this.seen.set(id, !!info.active);
      const old = this.rows[i];
      this.rows[i] = info;
      if (old.name !== info.name || (this.active && !!old.active !== !!info.active)) {
        this.reloadSoon();
        return;
      }
      // Design: with every device sending, row updates arrive spread over each second; one
      // batch per half second costs one layout and paint instead of one per event.
      this.dirty.add(id);
      if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), 500);
    }

    flush() {
      this.flushTimer = null;
      for (const id of this.dirty) {
        const info = this.find(id);
        const tr = $('device-rows').querySelector(`tr[data-id="${CSS.escape(id)}"]`);
        if (info && tr) this.fill(tr, info);
      }
      this.dirty.clear();
    }

    onDeleted(id) {
      this.seen.delete(id);
      if (this.find(id)) this.reloadSoon();
      else if (this.total) this.reloadSoon(); // the count and the later pages shift
    }
  }

  TB.DeviceList = DeviceList;
})();
