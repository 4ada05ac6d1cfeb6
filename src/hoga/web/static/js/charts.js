// Charts on TradingView lightweight-charts (Apache-2.0, vendored under /static/vendor with its
// LICENSE and NOTICE; ~62 KB gzipped, loaded only by the pages that draw charts): live candles
// with volume and the user's fills, backtest equity and drawdown, overlaid equity curves, and
// daily P&L bars. Times are drawn as KST wall-clock time (the library draws UTC, so every
// timestamp is shifted by +9 h before it is handed over).

import { h } from "./dom.js";
import { t } from "./i18n.js";
import { num, price } from "./format.js";

const KST_OFFSET_MS = 9 * 3600 * 1000;
// Whole won: ticks on integer steps, so a flat or short series never repeats a label.
const WON = { type: "price", precision: 0, minMove: 1 };
const LIB = "../vendor/lightweight-charts-5.3.0/lightweight-charts.js";

/** Colours: Korean convention, rises red and falls blue. */
export const UP = "#d4212b";
export const DOWN = "#1a5ad7";
export const PALETTE = ["#0b4f8a", "#d4212b", "#178a3a", "#8a4fd4", "#c77800", "#1a5ad7", "#555555"];

let lib = null;
function load() {
  lib ??= import(LIB);
  return lib;
}

/** An ISO time or epoch milliseconds as "YYYY-MM-DD HH:MM:SS" in KST. */
export function kstWall(value) {
  const ms = typeof value === "number" ? value : Date.parse(value);
  return new Date(ms + KST_OFFSET_MS).toISOString().slice(0, 19).replace("T", " ");
}

/** Seconds since the epoch of the KST wall-clock time (what the chart's UTC axis shows). */
export function chartTime(value) {
  const ms = typeof value === "number" ? value : Date.parse(value);
  return Math.floor((ms + KST_OFFSET_MS) / 1000);
}

/** Start (epoch ms) of the bucket of ``interval`` seconds holding ``ms``; days start at KST midnight. */
export function bucketStart(ms, interval) {
  const step = interval * 1000;
  if (interval >= 86400) return Math.floor((ms + KST_OFFSET_MS) / step) * step - KST_OFFSET_MS;
  return Math.floor(ms / step) * step;
}

/** Keep one point per time (the last), ascending: the library refuses anything else. */
export function strictlyAscending(points) {
  const byTime = new Map();
  for (const p of points) byTime.set(p.time, p);
  return [...byTime.values()].sort((a, b) => a.time - b.time);
}

function pad(n) {
  return String(n).padStart(2, "0");
}

/** Axis and crosshair labels from the shifted time (read as UTC = KST wall time). */
function timeLabel(seconds, withTime) {
  const d = new Date(seconds * 1000);
  const day = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  return withTime ? `${day} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}` : day;
}

function baseOptions(el, { intraday = true, height = 360 } = {}) {
  return {
    autoSize: true,
    height,
    layout: {
      background: { color: "#ffffff" },
      textColor: "#333333",
      fontFamily: 'system-ui, "Apple SD Gothic Neo", "Malgun Gothic", "NanumGothic", sans-serif',
      attributionLogo: false, // named under the chart instead (no link out, no inline style)
    },
    grid: { vertLines: { visible: false }, horzLines: { color: "#eeeeee" } },
    rightPriceScale: { borderVisible: false },
    timeScale: {
      borderVisible: false,
      timeVisible: intraday,
      secondsVisible: false,
      tickMarkFormatter: (time, type) => {
        const d = new Date(time * 1000);
        // 0 year, 1 month, 2 day of month, 3 time, 4 time with seconds
        if (type === 0) return String(d.getUTCFullYear());
        if (type === 1) return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}`;
        if (type === 2) return `${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
        return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
      },
    },
    localization: {
      locale: "ko-KR",
      priceFormatter: (p) => num(Math.round(p)),
      timeFormatter: (time) => timeLabel(time, intraday),
    },
    handleScale: { axisPressedMouseMove: true },
  };
}

/** The library's name under every chart (its NOTICE asks for attribution). */
function credit(el) {
  if (el.nextElementSibling?.classList.contains("chart-credit")) return;
  el.after(h("p", { class: "chart-credit" }, "TradingView Lightweight Charts™"));
}

/**
 * A live candle chart in ``el``. ``setBars(bars)`` replaces the candles (API shape),
 * ``onQuote(q)`` folds a trade into the last candle, ``setFills(fills)`` marks the user's fills.
 */
export async function candleChart(el, { interval }) {
  const L = await load();
  const chart = L.createChart(el, baseOptions(el, { intraday: interval < 86400, height: 420 }));
  const candles = chart.addSeries(L.CandlestickSeries, {
    upColor: UP, downColor: DOWN, borderUpColor: UP, borderDownColor: DOWN, wickUpColor: UP, wickDownColor: DOWN,
    priceFormat: WON,
  });
  const volume = chart.addSeries(L.HistogramSeries, {
    priceScaleId: "volume", priceFormat: { type: "volume" }, lastValueVisible: false, priceLineVisible: false,
  });
  chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  candles.priceScale().applyOptions({ scaleMargins: { top: 0.05, bottom: 0.25 } });
  const markers = L.createSeriesMarkers(candles, []);
  el.dataset.candles = "0";
  el.dataset.buys = "0";
  el.dataset.sells = "0";
  credit(el);
  let bars = []; // {t: epoch ms, o, h, l, c, v}
  let fills = [];

  const candle = (b) => ({ time: chartTime(b.t), open: b.o, high: b.h, low: b.l, close: b.c });
  const vol = (b) => ({ time: chartTime(b.t), value: b.v, color: b.c >= b.o ? "rgba(212,33,43,.35)" : "rgba(26,90,215,.35)" });

  function drawFills() {
    const list = fills
      .map((f) => ({
        time: chartTime(bucketStart(Date.parse(f.ts), interval)),
        position: f.side === "buy" ? "belowBar" : "aboveBar",
        shape: f.side === "buy" ? "arrowUp" : "arrowDown",
        color: f.side === "buy" ? UP : DOWN,
        text: `${t(`side.${f.side}`)} ${num(f.qty)} @ ${price(f.price)}`,
      }))
      .sort((a, b) => a.time - b.time);
    markers.setMarkers(list);
    // What is drawn, for people using the page's data and for tests (the canvas cannot say).
    el.dataset.buys = String(list.filter((m) => m.shape === "arrowUp").length);
    el.dataset.sells = String(list.filter((m) => m.shape === "arrowDown").length);
  }

  function drawAll() {
    el.dataset.candles = String(bars.length);
    candles.setData(strictlyAscending(bars.map(candle)));
    volume.setData(strictlyAscending(bars.map(vol)));
    drawFills();
  }

  return {
    setBars(list) {
      bars = list.map((b) => ({ t: Date.parse(b.start), o: b.open, h: b.high, l: b.low, c: b.close, v: b.volume }));
      drawAll();
      chart.timeScale().fitContent();
    },
    onQuote(q) {
      const ms = Date.parse(q.ts);
      const start = bucketStart(ms, interval);
      const last = bars[bars.length - 1];
      if (last && last.t === start) {
        last.h = Math.max(last.h, q.price);
        last.l = Math.min(last.l, q.price);
        last.c = q.price;
        last.v += q.volume || 0;
      } else if (!last || start > last.t) {
        bars.push({ t: start, o: q.price, h: q.price, l: q.price, c: q.price, v: q.volume || 0 });
      } else {
        return;
      }
      const b = bars[bars.length - 1];
      el.dataset.candles = String(bars.length);
      candles.update(candle(b));
      volume.update(vol(b));
    },
    setFills(list) {
      fills = list;
      drawFills();
    },
    addFill(f) {
      fills = [f, ...fills];
      drawFills();
    },
    count: () => bars.length,
    destroy() {
      chart.remove();
    },
  };
}

/** Equity (top pane) and drawdown (bottom pane) of a backtest, fills marked on the equity. */
export async function equityChart(el, curve, fills = []) {
  const L = await load();
  const chart = L.createChart(el, baseOptions(el, { intraday: true, height: 380 }));
  const equity = chart.addSeries(L.LineSeries, { color: "#0b4f8a", lineWidth: 2, title: t("bt.equity"), priceFormat: WON });
  const dd = chart.addSeries(L.AreaSeries, {
    lineColor: DOWN, topColor: "rgba(26,90,215,.05)", bottomColor: "rgba(26,90,215,.35)", lineWidth: 1,
    title: t("bt.drawdown"), priceFormat: { type: "custom", formatter: (v) => `${v.toFixed(2)}%` },
  }, 1);
  equity.setData(strictlyAscending(curve.map((p) => ({ time: chartTime(p.ts), value: p.equity }))));
  dd.setData(strictlyAscending(curve.map((p) => ({ time: chartTime(p.ts), value: -Math.abs(p.drawdown) * 100 }))));
  const times = new Set(curve.map((p) => chartTime(p.ts)));
  L.createSeriesMarkers(equity, fills
    .filter((f) => times.has(chartTime(f.ts)))
    .map((f) => ({
      time: chartTime(f.ts),
      position: f.side === "buy" ? "belowBar" : "aboveBar",
      shape: f.side === "buy" ? "arrowUp" : "arrowDown",
      color: f.side === "buy" ? UP : DOWN,
      text: "",
    }))
    .sort((a, b) => a.time - b.time));
  const panes = chart.panes();
  if (panes[1]) panes[1].setHeight(110);
  chart.timeScale().fitContent();
  credit(el);
  return { destroy: () => chart.remove() };
}

/**
 * Several lines on one chart (backtests compared, a strategy's equity): ``lines`` are
 * {label, points: [{ts, value}]}; each gets a colour from PALETTE in order.
 */
export async function linesChart(el, lines, { intraday = true, height = 320, format = WON } = {}) {
  const L = await load();
  const chart = L.createChart(el, baseOptions(el, { intraday, height }));
  lines.forEach((line, i) => {
    const s = chart.addSeries(L.LineSeries, { color: PALETTE[i % PALETTE.length], lineWidth: 2, title: line.label, priceFormat: format });
    s.setData(strictlyAscending(line.points.map((p) => ({ time: chartTime(p.ts), value: p.value }))));
  });
  chart.timeScale().fitContent();
  credit(el);
  return { destroy: () => chart.remove() };
}

/** Daily P&L as bars (red up, blue down) with equity as a line on its own scale. */
export async function dailyChart(el, days) {
  const L = await load();
  const chart = L.createChart(el, baseOptions(el, { intraday: false, height: 300 }));
  const pnl = chart.addSeries(L.HistogramSeries, { title: t("profit.daily_pnl"), priceFormat: WON });
  const eq = chart.addSeries(L.LineSeries, { color: "#0b4f8a", lineWidth: 2, priceScaleId: "left", title: t("profit.equity"), priceFormat: WON });
  chart.applyOptions({ leftPriceScale: { visible: true, borderVisible: false } });
  const at = (d) => chartTime(`${d.date}T00:00:00+09:00`);
  pnl.setData(strictlyAscending(days.map((d) => {
    const v = d.pnl ?? d.realized;
    return { time: at(d), value: v, color: v >= 0 ? UP : DOWN };
  })));
  eq.setData(strictlyAscending(days.map((d) => ({ time: at(d), value: d.equity }))));
  chart.timeScale().fitContent();
  credit(el);
  return { destroy: () => chart.remove() };
}
