// Chart building blocks on plotly: candles with volume and the user's fills, and the equity /
// drawdown curves of a backtest. Times are drawn as KST wall-clock time.

import { t } from "./i18n.js";
import { num, price } from "./format.js";
import { baseLayout, CONFIG, DOWN, loadPlotly, UP } from "./plotly.js";

const KST_OFFSET_MS = 9 * 3600 * 1000;

/** An ISO time or epoch milliseconds as "YYYY-MM-DD HH:MM:SS" in KST (what plotly draws). */
export function kstWall(value) {
  const ms = typeof value === "number" ? value : Date.parse(value);
  return new Date(ms + KST_OFFSET_MS).toISOString().slice(0, 19).replace("T", " ");
}

/** Start (epoch ms) of the bucket of ``interval`` seconds holding ``ms``; days start at KST midnight. */
export function bucketStart(ms, interval) {
  const step = interval * 1000;
  if (interval >= 86400) return Math.floor((ms + KST_OFFSET_MS) / step) * step - KST_OFFSET_MS;
  return Math.floor(ms / step) * step;
}

/**
 * A live candle chart in ``el``. ``setBars(bars)`` replaces the candles (API shape),
 * ``onQuote(q)`` folds a trade into the last candle, ``setFills(fills)`` marks the user's fills.
 */
export async function candleChart(el, { interval }) {
  const Plotly = await loadPlotly();
  let candles = []; // {t: epoch ms, o, h, l, c, v}
  let fills = [];
  let pending = false;

  function traces() {
    const x = candles.map((c) => kstWall(c.t));
    const buys = fills.filter((f) => f.side === "buy");
    const sells = fills.filter((f) => f.side === "sell");
    const fillTrace = (list, name, colour, symbol) => ({
      type: "scatter",
      mode: "markers",
      name,
      x: list.map((f) => kstWall(f.ts)),
      y: list.map((f) => f.price),
      text: list.map((f) => `${t(`side.${f.side}`)} ${num(f.qty)}${t("unit.shares")} @ ${price(f.price)}`),
      hovertemplate: "%{text}<extra></extra>",
      marker: { color: colour, size: 12, symbol, line: { color: "#ffffff", width: 1 } },
      yaxis: "y",
    });
    return [
      {
        type: "candlestick",
        name: t("chart.price"),
        x,
        open: candles.map((c) => c.o),
        high: candles.map((c) => c.h),
        low: candles.map((c) => c.l),
        close: candles.map((c) => c.c),
        increasing: { line: { color: UP }, fillcolor: UP },
        decreasing: { line: { color: DOWN }, fillcolor: DOWN },
        yaxis: "y",
      },
      {
        type: "bar",
        name: t("chart.volume"),
        x,
        y: candles.map((c) => c.v),
        marker: { color: candles.map((c) => (c.c >= c.o ? "rgba(212,33,43,.35)" : "rgba(26,90,215,.35)")) },
        yaxis: "y2",
        hovertemplate: `${t("chart.volume")} %{y:,}<extra></extra>`,
      },
      fillTrace(buys, "fills-buy", UP, "triangle-up"),
      fillTrace(sells, "fills-sell", DOWN, "triangle-down"),
    ];
  }

  const layout = baseLayout({
    margin: { l: 12, r: 72, t: 8, b: 36 },
    xaxis: {
      type: "date",
      rangeslider: { visible: false },
      showgrid: false,
      tickformat: interval >= 86400 ? "%m/%d" : "%H:%M",
      tickangle: 0,
      nticks: 8,
      hoverformat: interval >= 86400 ? "%Y-%m-%d" : "%m/%d %H:%M",
    },
    yaxis: { domain: [0.25, 1], tickformat: ",d", side: "right" },
    yaxis2: { domain: [0, 0.2], showticklabels: false, showgrid: false },
    dragmode: "pan",
  });

  /** With only a few candles, show a fixed window of intervals so each is drawn at its width. */
  const MIN_WINDOW = 40;
  function fitRange() {
    const step = interval * 1000;
    const last = candles.length ? candles[candles.length - 1].t : bucketStart(Date.now(), interval);
    if (candles.length >= MIN_WINDOW) {
      layout.xaxis.autorange = true;
      delete layout.xaxis.range;
      return;
    }
    layout.xaxis.autorange = false;
    layout.xaxis.range = [kstWall(last - (MIN_WINDOW - 2) * step), kstWall(last + 2 * step)];
  }

  function draw() {
    pending = false;
    fitRange();
    Plotly.react(el, traces(), layout, CONFIG);
  }

  /** Redraw at most a few times a second however fast quotes come. */
  function schedule() {
    if (pending) return;
    pending = true;
    setTimeout(draw, 300);
  }

  fitRange();
  await Plotly.newPlot(el, traces(), layout, CONFIG);

  return {
    setBars(bars) {
      candles = bars.map((b) => ({ t: Date.parse(b.start), o: b.open, h: b.high, l: b.low, c: b.close, v: b.volume }));
      draw();
    },
    onQuote(q) {
      const ms = Date.parse(q.ts);
      const start = bucketStart(ms, interval);
      const last = candles[candles.length - 1];
      if (last && last.t === start) {
        last.h = Math.max(last.h, q.price);
        last.l = Math.min(last.l, q.price);
        last.c = q.price;
        last.v += q.volume || 0;
      } else if (!last || start > last.t) {
        candles.push({ t: start, o: q.price, h: q.price, l: q.price, c: q.price, v: q.volume || 0 });
      }
      schedule();
    },
    setFills(list) {
      fills = list;
      draw();
    },
    addFill(f) {
      fills = [f, ...fills];
      draw();
    },
    count: () => candles.length,
    destroy() {
      Plotly.purge(el);
    },
  };
}

/** Equity and drawdown of a backtest, one above the other. */
export async function equityChart(el, curve, fills = []) {
  const Plotly = await loadPlotly();
  const x = curve.map((p) => kstWall(p.ts));
  const data = [
    {
      type: "scatter",
      mode: "lines",
      name: "equity",
      x,
      y: curve.map((p) => p.equity),
      line: { color: "#0b4f8a", width: 2 },
      hovertemplate: `${t("bt.equity")} ₩%{y:,}<extra></extra>`,
      yaxis: "y",
    },
    {
      type: "scatter",
      mode: "lines",
      name: "drawdown",
      x,
      y: curve.map((p) => -Math.abs(p.drawdown) * 100), // drawn below zero: a loss from the peak
      fill: "tozeroy",
      line: { color: DOWN, width: 1 },
      hovertemplate: `${t("bt.drawdown")} %{y:.2f}%<extra></extra>`,
      yaxis: "y2",
    },
  ];
  const byTs = new Map(curve.map((p) => [kstWall(p.ts), p.equity]));
  for (const [side, colour, symbol] of [["buy", UP, "triangle-up"], ["sell", DOWN, "triangle-down"]]) {
    const list = fills.filter((f) => f.side === side);
    data.push({
      type: "scatter",
      mode: "markers",
      name: `fills-${side}`,
      x: list.map((f) => kstWall(f.ts)),
      y: list.map((f) => byTs.get(kstWall(f.ts)) ?? null),
      marker: { color: colour, size: 9, symbol },
      text: list.map((f) => `${t(`side.${side}`)} ${num(f.qty)}${t("unit.shares")} @ ${price(f.price)}`),
      hovertemplate: "%{text}<extra></extra>",
      yaxis: "y",
    });
  }
  const layout = baseLayout({
    margin: { l: 88, r: 16, t: 8, b: 40 },
    xaxis: { type: "date", showgrid: false, tickformat: "%Y-%m-%d", hoverformat: "%Y-%m-%d %H:%M", anchor: "y2", tickangle: 0, nticks: 6 },
    yaxis: { domain: [0.35, 1], tickformat: ",d", title: { text: t("bt.equity") } },
    yaxis2: { domain: [0, 0.28], ticksuffix: "%", title: { text: t("bt.drawdown") } },
  });
  await Plotly.newPlot(el, data, layout, CONFIG);
  return { destroy: () => Plotly.purge(el) };
}
