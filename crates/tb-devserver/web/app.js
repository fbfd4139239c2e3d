// The page's shell: login and logout, the live stream, and wiring the device list to the device
// view. The selected device is kept in the URL (`#device=ID`) so a reload shows it again.
(function () {
  'use strict';
  const TB = window.TB;
  const { api } = TB;
  const $ = (id) => document.getElementById(id);

  let list = null;
  let view = null;
  let stream = null;
  let streamDevice = null;
  let everOpen = false;

  function setLive(state) {
    const live = $('live-state');
    live.hidden = false;
    live.classList.toggle('on', state === 'open');
    live.textContent = state === 'open' ? 'Live' : 'Reconnecting…';
    if (state === 'open') {
      // Events were missed while the stream was down: read everything again.
      if (everOpen) {
        list.load();
        view.reload();
      }
      everOpen = true;
    }
  }

  function onEvent(ev) {
    if (ev.type === 'device' && ev.device) list.onDevice(ev.device);
    else if (ev.type === 'deviceDeleted') deviceGone(ev.id);
    view.onEvent(ev);
  }

  function deviceGone(id) {
    list.onDeleted(id);
    if (view.device && view.device.id.id === id) {
      view.clear();
      history.replaceState(null, '', '#');
      openStream(null);
    }
  }

  /** One stream: the list's device events, plus the shown device's own events. */
  function openStream(deviceId) {
    if (stream) stream.close();
    streamDevice = deviceId;
    everOpen = false;
    stream = api.events(deviceId, onEvent, setLive);
  }

  function selectDevice(info) {
    if (view.device && view.device.id.id === info.id.id) return;
    history.replaceState(null, '', '#device=' + encodeURIComponent(info.id.id));
    // Open the stream first so nothing sent while the panels load is missed.
    openStream(info.id.id);
    view.show(info);
  }

  /** After a reload with `#device=ID`: find the device (with its state) and show it. */
  async function selectFromHash() {
    const m = /device=([^&]+)/.exec(location.hash);
    if (!m) return;
    const id = decodeURIComponent(m[1]);
    try {
      const device = await api.get(`/api/device/${encodeURIComponent(id)}`);
      const q = new URLSearchParams({ pageSize: '50', page: '0', textSearch: device.name });
      const page = await api.get('/api/tenant/deviceInfos?' + q);
      const info = ((page && page.data) || []).find((d) => d.id.id === id) || device;
      list.selectedId = id;
      selectDevice(info);
      list.render();
    } catch (e) {
      history.replaceState(null, '', '#');
    }
  }

  function showLogin(message) {
    if (stream) stream.close();
    stream = null;
    $('app-view').hidden = true;
    $('login-view').hidden = false;
    $('logout').hidden = true;
    $('live-state').hidden = true;
    $('user-email').textContent = '';
    $('login-error').hidden = !message;
    $('login-error').textContent = message || '';
    if (view) view.clear();
    $('login-username').focus();
  }

  async function showApp() {
    let user = null;
    try {
      user = await api.get('/api/auth/user');
    } catch (e) {
      if (e.status === 401) return; // onUnauthorized showed the login
      // a server without /api/auth/user: the token is checked by the next call
    }
    $('login-view').hidden = true;
    $('app-view').hidden = false;
    $('logout').hidden = false;
    $('user-email').textContent = (user && user.email) || '';
    list.page = 0;
    await list.load();
    if (!view.device) openStream(null);
    await selectFromHash();
  }

  function start() {
    list = new TB.DeviceList(selectDevice);
    view = new TB.DeviceView();
    view.onDeleted = deviceGone;
    api.onUnauthorized = () => showLogin('Your session has expired. Please log in again.');

    $('login-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const username = $('login-username').value.trim();
      const password = $('login-password').value;
      if (!username || !password) {
        showLogin('Enter the username and the password.');
        return;
      }
      $('login-submit').disabled = true;
      try {
        await api.login(username, password);
        $('login-password').value = '';
        await showApp();
      } catch (err) {
        showLogin(err.status === 401 ? 'Invalid username or password' : err.message);
      } finally {
        $('login-submit').disabled = false;
      }
    });
    $('logout').addEventListener('click', () => {
      api.logout();
      history.replaceState(null, '', '#');
      showLogin('');
    });

    if (api.token()) showApp();
    else showLogin('');
  }

  TB.app = { get streamDevice() { return streamDevice; } };
  start();
})();
