// A small time-series line chart on a canvas: several series, a sliding time window (or all
// data), y axis with 1-2-5 ticks, local-time x labels, a hover read-out, crisp on HiDPI and
// redrawn on resize. Design: written here rather than shipped from a charting library because
// the page must work offline from files embedded in the binary, and this needs ~300 lines.
(function () {
  'use strict';
  const TB = (window.TB = window.TB || {});

  const PALETTE = ['#2196f3', '#4caf50', '#ff9800', '#e91e63', '#9c27b0', '#00acc1',
    '#795548', '#607d8b', '#c0ca33', '#f44336'];
  const SEC = 1000;
  const MIN = 60 * SEC;
  const HOUR = 60 * MIN;
  const DAY = 24 * HOUR;
  const TIME_STEPS = [SEC, 2 * SEC, 5 * SEC, 10 * SEC, 15 * SEC, 30 * SEC, MIN, 2 * MIN, 5 * MIN,
    10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY,
    7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 365 * DAY];
  const MAX_POINTS = 20000; // per series; the oldest go first
  const FONT = '11px Roboto, "Helvetica Neue", Arial, sans-serif';
  const pad2 = (n) => String(n).padStart(2, '0');

  /** 1, 2, 2.5 or 5 times a power of ten, so that `span` gets about `count` ticks. */
  function niceStep(span, count) {
    const raw = span / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const norm = raw / mag;
    const mult = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
    return mult * mag;
  }

  function formatNumber(v, step) {
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e7 || a < 1e-4)) return v.toExponential(2);
    const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9) + (
      step / Math.pow(10, Math.floor(Math.log10(step))) === 2.5 ? 1 : 0)));
    return v.toFixed(decimals);
  }

  function formatTick(ts, step) {
    const d = new Date(ts);
    if (step >= DAY) return `${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
    const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
    return step < MIN ? `${hm}:${pad2(d.getSeconds())}` : hm;
  }

  /** First index with `points[i][0] >= ts` (points sorted by time). */
  function lowerBound(points, ts) {
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (points[mid][0] < ts) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  class TimeChart {
    /**
     * @param {HTMLCanvasElement} canvas drawn at its CSS size times devicePixelRatio.
     * @param {{windowMs?: number|null, now?: () => number}} options `windowMs` null shows all.
     */
    constructor(canvas, options = {}) {
      this.canvas = canvas;
      this.windowMs = options.windowMs === undefined ? 5 * MIN : options.windowMs;
      this.now = options.now || Date.now;
      this.series = new Map(); // key -> {key, color, points: [[ts, v]], visible}
      this.hoverX = null;
      this.pending = false;
      this.emptyText = 'No numeric telemetry yet';
      new ResizeObserver(() => this.draw()).observe(canvas);
      canvas.addEventListener('mousemove', (e) => {
        this.hoverX = e.offsetX;
        this.draw();
      });
      canvas.addEventListener('mouseleave', () => {
        this.hoverX = null;
        this.draw();
      });
      // The window slides with the clock; a hidden canvas returns at once from render().
      setInterval(() => this.windowMs && this.draw(), 1000);
    }

    // ---- data ---------------------------------------------------------------------------

    keys() {
      return [...this.series.keys()];
    }

    colorOf(key) {
      return this.ensure(key).color;
    }

    ensure(key) {
      let s = this.series.get(key);
      if (!s) {
        s = { key, color: PALETTE[this.series.size % PALETTE.length], points: [], visible: true };
        this.series.set(key, s);
      }
      return s;
    }

    /** Merges `points` ([[ts, value]], any order) into the series; a repeated ts is replaced. */
    merge(key, points) {
      const s = this.ensure(key);
      const byTs = new Map(s.points);
      for (const [ts, v] of points) byTs.set(ts, v);
      s.points = [...byTs].sort((a, b) => a[0] - b[0]);
      this.trim(s);
      this.draw();
    }

    /** Adds one point; appending in time order is O(1). */
    add(key, ts, value) {
      const s = this.ensure(key);
      const pts = s.points;
      const last = pts.length ? pts[pts.length - 1][0] : -Infinity;
      if (ts > last) pts.push([ts, value]);
      else {
        const i = lowerBound(pts, ts);
        if (i < pts.length && pts[i][0] === ts) pts[i][1] = value;
        else pts.splice(i, 0, [ts, value]);
      }
      this.trim(s);
      this.draw();
    }

    trim(s) {
      if (s.points.length > MAX_POINTS) s.points.splice(0, s.points.length - MAX_POINTS);
    }

    setVisible(key, visible) {
      this.ensure(key).visible = visible;
      this.draw();
    }

    setWindow(ms) {
      this.windowMs = ms;
      this.draw();
    }

    clear() {
      this.series.clear();
      this.draw();
    }

    // ---- drawing ------------------------------------------------------------------------

    /** Schedules one redraw for the next frame (many updates in a frame draw once). */
    draw() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => {
        this.pending = false;
        this.render();
      });
    }

    domainX(visible) {
      if (this.windowMs) {
        // A device clock a little ahead of ours still shows its newest points.
        let end = this.now();
        for (const s of visible) {
          const last = s.points.length ? s.points[s.points.length - 1][0] : 0;
          if (last > end && last - end < this.windowMs / 10) end = last;
        }
        return [end - this.windowMs, end];
      }
      let lo = Infinity;
      let hi = -Infinity;
      for (const s of visible) {
        if (!s.points.length) continue;
        lo = Math.min(lo, s.points[0][0]);
        hi = Math.max(hi, s.points[s.points.length - 1][0]);
      }
      if (lo === Infinity) {
        const now = this.now();
        return [now - 5 * MIN, now];
      }
      return lo === hi ? [lo - MIN / 2, hi + MIN / 2] : [lo, hi];
    }

    render() {
      const canvas = this.canvas;
      const dpr = window.devicePixelRatio || 1;
      const cssW = canvas.clientWidth;
      const cssH = canvas.clientHeight;
      if (!cssW || !cssH) return; // hidden tab; the ResizeObserver redraws when shown
      if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
        canvas.width = Math.round(cssW * dpr);
        canvas.height = Math.round(cssH * dpr);
      }
      const ctx = canvas.getContext('2d');
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, cssW, cssH);
      ctx.font = FONT;

      const visible = [...this.series.values()].filter((s) => s.visible);
      const [x0, x1] = this.domainX(visible);
      // Points in the window (one outside on each side so lines reach the edges).
      const slices = visible.map((s) => {
        const a = Math.max(0, lowerBound(s.points, x0) - 1);
        const b = Math.min(s.points.length, lowerBound(s.points, x1 + 1) + 1);
        return { s, a, b };
      });
      let yMin = Infinity;
      let yMax = -Infinity;
      let inWindow = 0;
      for (const { s, a, b } of slices) {
        for (let i = a; i < b; i++) {
          const [ts, v] = s.points[i];
          if (ts < x0 || ts > x1) continue;
          inWindow++;
          if (v < yMin) yMin = v;
          if (v > yMax) yMax = v;
        }
      }
      const summary = visible.map((s) => s.key).join(', ');
      canvas.dataset.points = String(inWindow);
      canvas.dataset.series = visible.map((s) => s.key).join(',');
      canvas.setAttribute('aria-label', inWindow
        ? `Chart of ${summary}: ${inWindow} points` : 'Chart: no data in the time window');

      if (yMin === Infinity) {
        yMin = 0;
        yMax = 1;
      } else if (yMin === yMax) {
        const d = Math.abs(yMin) * 0.1 || 1;
        yMin -= d;
        yMax += d;
      }
      const plotH0 = cssH - 10 - 24;
      const yStep = niceStep(yMax - yMin, Math.max(2, Math.floor(plotH0 / 42)));
      yMin = Math.floor(yMin / yStep) * yStep;
      yMax = Math.ceil(yMax / yStep) * yStep;
      const yTicks = [];
      for (let v = yMin; v <= yMax + yStep / 2; v += yStep) yTicks.push(v);
      const yLabels = yTicks.map((v) => formatNumber(Math.abs(v) < yStep / 1e6 ? 0 : v, yStep));
      const left = Math.ceil(Math.max(...yLabels.map((t) => ctx.measureText(t).width))) + 14;
      const plot = { l: left, t: 10, r: cssW - 14, b: cssH - 24 };
      const pw = plot.r - plot.l;
      const ph = plot.b - plot.t;
      if (pw < 20 || ph < 20) return;
      const sx = (ts) => plot.l + ((ts - x0) / (x1 - x0)) * pw;
      const sy = (v) => plot.b - ((v - yMin) / (yMax - yMin)) * ph;

      // grid and y labels
      ctx.strokeStyle = '#e6e9ed';
      ctx.fillStyle = '#6b7785';
      ctx.lineWidth = 1;
      ctx.textAlign = 'right';
      ctx.textBaseline = 'middle';
      yTicks.forEach((v, i) => {
        const y = Math.round(sy(v)) + 0.5;
        ctx.beginPath();
        ctx.moveTo(plot.l, y);
        ctx.lineTo(plot.r, y);
        ctx.stroke();
        ctx.fillText(yLabels[i], plot.l - 6, y);
      });
      // x ticks aligned to local time
      const xStep = TIME_STEPS.find((st) => (x1 - x0) / st <= pw / 80) || TIME_STEPS.at(-1);
      const offset = -new Date(x0).getTimezoneOffset() * MIN;
      ctx.textAlign = 'center';
      ctx.textBaseline = 'top';
      for (let t = Math.ceil((x0 + offset) / xStep) * xStep - offset; t <= x1; t += xStep) {
        const x = Math.round(sx(t)) + 0.5;
        ctx.beginPath();
        ctx.moveTo(x, plot.t);
        ctx.lineTo(x, plot.b + 4);
        ctx.stroke();
        const label = formatTick(t, xStep);
        const half = ctx.measureText(label).width / 2;
        if (x - half >= 0 && x + half <= cssW) ctx.fillText(label, x, plot.b + 7);
      }
      // axes
      ctx.strokeStyle = '#9aa5b1';
      ctx.beginPath();
      ctx.moveTo(plot.l + 0.5, plot.t);
      ctx.lineTo(plot.l + 0.5, plot.b + 0.5);
      ctx.lineTo(plot.r, plot.b + 0.5);
      ctx.stroke();

      // series, clipped to the plot
      ctx.save();
      ctx.beginPath();
      ctx.rect(plot.l, plot.t - 2, pw, ph + 4);
      ctx.clip();
      ctx.lineWidth = 1.6;
      ctx.lineJoin = 'round';
      for (const { s, a, b } of slices) {
        if (b <= a) continue;
        ctx.strokeStyle = s.color;
        ctx.fillStyle = s.color;
        this.line(ctx, s.points, a, b, sx, sy);
        if (b - a <= pw / 8) {
          for (let i = a; i < b; i++) {
            ctx.beginPath();
            ctx.arc(sx(s.points[i][0]), sy(s.points[i][1]), 2.5, 0, 2 * Math.PI);
            ctx.fill();
          }
        }
      }
      ctx.restore();

      if (!inWindow) {
        ctx.fillStyle = '#9aa5b1';
        ctx.textAlign = 'center';
        ctx.textBaseline = 'middle';
        ctx.font = '13px Roboto, "Helvetica Neue", Arial, sans-serif';
        ctx.fillText(this.series.size ? 'No data in this time window' : this.emptyText,
          plot.l + pw / 2, plot.t + ph / 2);
      } else if (this.hoverX !== null && this.hoverX >= plot.l && this.hoverX <= plot.r) {
        this.readout(ctx, plot, slices, x0 + ((this.hoverX - plot.l) / pw) * (x1 - x0), sx, sy);
      }
    }

    /** The polyline; with more points than pixels, min/max per pixel column (same shape). */
    line(ctx, pts, a, b, sx, sy) {
      ctx.beginPath();
      if (b - a < 4 * (ctx.canvas.clientWidth || 1)) {
        ctx.moveTo(sx(pts[a][0]), sy(pts[a][1]));
        for (let i = a + 1; i < b; i++) ctx.lineTo(sx(pts[i][0]), sy(pts[i][1]));
      } else {
        let col = Math.floor(sx(pts[a][0]));
        let lo = pts[a][1];
        let hi = lo;
        let last = lo;
        ctx.moveTo(sx(pts[a][0]), sy(lo));
        for (let i = a + 1; i < b; i++) {
          const c = Math.floor(sx(pts[i][0]));
          const v = pts[i][1];
          if (c !== col) {
            ctx.lineTo(col, sy(lo));
            ctx.lineTo(col, sy(hi));
            ctx.lineTo(col, sy(last));
            col = c;
            lo = hi = v;
          } else {
            lo = Math.min(lo, v);
            hi = Math.max(hi, v);
          }
          last = v;
        }
        ctx.lineTo(col, sy(last));
      }
      ctx.stroke();
    }

    /** A vertical line at the mouse and each series' nearest value. */
    readout(ctx, plot, slices, ts, sx, sy) {
      const rows = [];
      let at = null;
      for (const { s } of slices) {
        const i = lowerBound(s.points, ts);
        const cands = [s.points[i - 1], s.points[i]].filter(Boolean);
        if (!cands.length) continue;
        const p = cands.reduce((m, q) => (Math.abs(q[0] - ts) < Math.abs(m[0] - ts) ? q : m));
        if (Math.abs(sx(p[0]) - sx(ts)) > 40) continue;
        rows.push({ s, p });
        if (at === null || Math.abs(p[0] - ts) < Math.abs(at - ts)) at = p[0];
      }
      if (!rows.length) return;
      const x = Math.round(sx(at)) + 0.5;
      ctx.strokeStyle = '#9aa5b1';
      ctx.setLineDash([3, 3]);
      ctx.beginPath();
      ctx.moveTo(x, plot.t);
      ctx.lineTo(x, plot.b);
      ctx.stroke();
      ctx.setLineDash([]);
      const d = new Date(at);
      const lines = [`${formatTick(at, SEC)}.${String(d.getMilliseconds()).padStart(3, '0')}`]
        .concat(rows.map(({ s, p }) => `${s.key}: ${p[1]}`));
      ctx.font = FONT;
      const w = Math.max(...lines.map((l) => ctx.measureText(l).width)) + 16;
      const h = lines.length * 15 + 8;
      const bx = x + 10 + w > plot.r ? x - 10 - w : x + 10;
      ctx.fillStyle = 'rgba(255,255,255,.94)';
      ctx.strokeStyle = '#c5ccd4';
      ctx.fillRect(bx, plot.t + 4, w, h);
      ctx.strokeRect(bx + 0.5, plot.t + 4.5, w, h);
      ctx.textAlign = 'left';
      ctx.textBaseline = 'top';
      lines.forEach((l, i) => {
        ctx.fillStyle = i === 0 ? '#6b7785' : rows[i - 1].s.color;
        ctx.fillText(l, bx + 8, plot.t + 8 + i * 15);
      });
      for (const { s, p } of rows) {
        ctx.fillStyle = s.color;
        ctx.beginPath();
        ctx.arc(sx(p[0]), sy(p[1]), 3.5, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
  }

  TB.TimeChart = TimeChart;
  TB.chartMath = { niceStep, formatNumber, formatTick, lowerBound };
})();
