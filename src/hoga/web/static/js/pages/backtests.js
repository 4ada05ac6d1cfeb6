// Backtests: run a catalog strategy on stored bars or an uploaded CSV (date,open,high,low,close,
// volume), follow the background job, and show the report - figures, equity curve, drawdown and
// fills.

import { get, post } from "../api.js";
import { h, replace, table, toast } from "../dom.js";
import { busy, clearErrors, errorBox, errorText, field, input, setFieldError, showApiError, showBox, showFixErrors } from "../forms.js";
import { dateTime, dir, num, parseInteger, price, ratioPct, signedWon, won } from "../format.js";
import { pick, speak, t } from "../i18n.js";
import { instrument } from "../names.js";
import { schemaForm } from "../schema-form.js";
import { equityChart, linesChart } from "../charts.js";
import { symbolPicker } from "../components/symbol-picker.js";
import { sideLabel } from "../components/orders-table.js";

const CSV_HEADER = ["date", "open", "high", "low", "close", "volume"];
const MAX_CSV_BYTES = 5 * 1024 * 1024;
const POLL_MS = 1000;

/** Check a CSV's header and first rows before sending; returns an error message or null. */
export function checkCsv(text) {
  const lines = String(text).split(/\r?\n/).filter((l) => l.trim());
  if (lines.length < 3) return t("bt.err_csv_short");
  const header = lines[0].split(",").map((x) => x.trim().toLowerCase());
  const missing = CSV_HEADER.filter((c) => !header.includes(c));
  if (missing.length) return t("bt.err_csv_header", { cols: missing.join(", ") });
  for (const [i, line] of lines.slice(1, 6).entries()) {
    if (line.split(",").length < CSV_HEADER.length) return t("bt.err_csv_row", { n: i + 2 });
  }
  return null;
}

export function mount(el, params) {
  let catalog = [];
  let runs = [];
  let pollTimer = null;
  let chart = null;
  let destroyed = false;
  let paramsForm = null;
  let simulated = false;
  const chosen = new Set(); // run ids ticked for comparison
  let compareChart = null;

  const noticeEl = h("div");
  const formCard = h("section", { class: "card span-5", "aria-labelledby": "bt-form-h" });
  const reportEl = h("section", { class: "card span-7", "aria-labelledby": "bt-report-h" },
    h("h2", { id: "bt-report-h" }, t("bt.report")), h("p", { class: "muted" }, t("bt.no_report")));
  const listEl = h("div");
  const compareBtn = h("button", { type: "button", class: "small", onclick: () => compare() }, t("bt.compare"));
  const compareEl = h("section", { class: "card span-12 hidden", "aria-labelledby": "bt-cmp-h", dataset: { compare: "" } });
  el.append(
    h("h1", null, t("bt.title")),
    noticeEl,
    h("div", { class: "grid" }, formCard, reportEl,
      h("section", { class: "card span-12", "aria-labelledby": "bt-list-h" },
        h("div", { class: "card-head" }, h("h2", { id: "bt-list-h" }, t("bt.runs")), compareBtn), listEl),
      compareEl),
  );

  function kindName(kind) {
    const c = catalog.find((x) => x.kind === kind);
    return c ? pick(c.name, c.name_en) : kind;
  }

  // --- the form -----------------------------------------------------------------------------------
  function renderForm() {
    const kindSelect = h("select", null, catalog.map((c) => h("option", { value: c.kind }, pick(c.name, c.name_en))));
    const kind = field(t("bt.kind"), kindSelect, { name: "kind" });
    const picker = symbolPicker({ label: t("bt.symbol"), initial: instrument("005930") });
    const cash = field(t("bt.cash"), input({ inputmode: "numeric", value: "10000000" }), { name: "cash", help: t("bt.cash_help") });
    // On the simulated market (no past of its own) the default is its generated history, so a
    // fresh server backtests out of the box.
    const sourceGenerated = h("input", { type: "radio", name: "bt-source", value: "generated", checked: simulated });
    const sourceStored = h("input", { type: "radio", name: "bt-source", value: "stored", checked: !simulated });
    const sourceCsv = h("input", { type: "radio", name: "bt-source", value: "csv" });
    const source = h("fieldset", { class: "field", dataset: { field: "source" } }, h("legend", null, t("bt.source")),
      simulated ? h("label", { class: "checkbox" }, sourceGenerated, t("bt.source_generated")) : null,
      h("label", { class: "checkbox" }, sourceStored, t("bt.source_stored")),
      h("label", { class: "checkbox" }, sourceCsv, t("bt.source_csv")));
    const fileInput = h("input", { type: "file", accept: ".csv,text/csv" });
    const csvField = field(t("bt.csv_file"), fileInput, { name: "csv", help: t("bt.csv_help") });
    csvField.classList.add("hidden");
    const intervalSelect = h("select", null, h("option", { value: "1d" }, t("interval.1d")), h("option", { value: "1m" }, t("interval.1m")));
    const interval = field(t("bt.interval"), intervalSelect, { name: "interval" });
    const start = field(t("bt.start"), h("input", { type: "date" }), { name: "start" });
    const end = field(t("bt.end"), h("input", { type: "date" }), { name: "end" });
    const paramsBox = h("fieldset", null, h("legend", null, t("strategy.params")));
    const box = errorBox();
    const submit = h("button", { type: "submit", class: "primary" }, t("bt.run"));

    function renderParams() {
      const c = catalog.find((x) => x.kind === kindSelect.value);
      paramsForm = schemaForm(c?.params_schema || {}, { defaults: c?.defaults || {}, idPrefix: `bt-${c?.kind}` });
      replace(paramsBox, h("legend", null, t("strategy.params")), paramsForm.el);
    }
    kindSelect.addEventListener("change", renderParams);
    const syncSource = () => {
      const csv = sourceCsv.checked;
      csvField.classList.toggle("hidden", !csv);
      for (const f of [start, end]) f.classList.toggle("hidden", csv);
    };
    sourceStored.addEventListener("change", syncSource);
    sourceGenerated.addEventListener("change", syncSource);
    sourceCsv.addEventListener("change", syncSource);
    renderParams();

    const form = h("form", { novalidate: true }, box, kind, picker, paramsBox, cash, source, csvField,
      h("div", { class: "fields-inline" }, interval, start, end), h("div", { class: "row" }, submit));

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      const c = catalog.find((x) => x.kind === kindSelect.value);
      const p = paramsForm.read();
      const cashValue = parseInteger(cash.control.value);
      const problems = [];
      if (!c) problems.push(t("bt.err_kind"));
      if (!picker.value) {
        setFieldError(picker, t("ticket.err_symbol"));
        problems.push("symbol");
      }
      if (!Number.isInteger(cashValue) || cashValue < 1) {
        setFieldError(cash, t("bt.err_cash"));
        problems.push("cash");
      }
      let csvText = null;
      if (sourceCsv.checked) {
        const file = fileInput.files[0];
        if (!file) {
          setFieldError(csvField, t("bt.err_csv_missing"));
          problems.push("csv");
        } else if (file.size > MAX_CSV_BYTES) {
          setFieldError(csvField, t("bt.err_csv_big", { mb: MAX_CSV_BYTES / 1024 / 1024 }));
          problems.push("csv");
        } else {
          csvText = await file.text();
          const err = checkCsv(csvText);
          if (err) {
            setFieldError(csvField, err);
            problems.push("csv");
          }
        }
      } else if (start.control.value && end.control.value && start.control.value >= end.control.value) {
        setFieldError(end, t("bt.err_range"));
        problems.push("range");
      }
      if (problems.length || !p.ok) {
        showFixErrors(form, box);
        return;
      }
      const req = {
        kind: c.kind,
        symbol: picker.value.symbol,
        params: p.values,
        cash: cashValue,
        source: sourceCsv.checked ? "csv" : sourceGenerated.checked ? "generated" : "stored",
        interval: intervalSelect.value,
      };
      if (csvText !== null) req.csv = csvText;
      else {
        if (start.control.value) req.start = start.control.value;
        if (end.control.value) req.end = end.control.value;
      }
      await busy(submit, async () => {
        try {
          const job = await post("/api/backtests", req);
          toast(t("bt.queued", { id: job.id }), "ok");
          runs.unshift(job);
          renderRuns();
          follow(job.id);
        } catch (e) {
          const f = String(e.field || "").replace(/^params\./, "");
          if (f && paramsForm.showError(f, errorText(e))) {
            showBox(box, errorText(e));
            return;
          }
          showApiError(form, box, e, { symbol: picker, cash, csv: csvField, start, end, interval });
        }
      });
    });

    replace(formCard, h("h2", { id: "bt-form-h" }, t("bt.new")), form);
  }

  // --- following a run and drawing its report ---------------------------------------------------------
  function follow(id) {
    clearTimeout(pollTimer);
    const tick = async () => {
      if (destroyed) return;
      try {
        const run = await get(`/api/backtests/${id}`);
        const i = runs.findIndex((r) => r.id === id);
        if (i >= 0) runs[i] = { ...runs[i], status: run.status, error: run.error };
        renderRuns();
        renderReport(run);
        if (run.status === "queued" || run.status === "running") pollTimer = setTimeout(tick, POLL_MS);
      } catch (e) {
        replace(reportEl, h("h2", { id: "bt-report-h" }, t("bt.report")), h("p", { class: "form-error" }, errorText(e)));
      }
    };
    tick();
  }

  function renderReport(run) {
    chart?.destroy();
    chart = null;
    const head = h("div", { class: "card-head" }, h("h2", { id: "bt-report-h" }, t("bt.report_for", { id: run.id })),
      h("span", { class: `badge ${run.status === "done" ? "ok" : run.status === "error" ? "err" : "warn"}`, dataset: { btStatus: run.status } }, t(`bt.status.${run.status}`)));
    if (run.status === "error") {
      replace(reportEl, head, h("p", { class: "form-error", role: "alert" }, speak(run.error) || t("error.unknown")));
      return;
    }
    if (run.status !== "done" || !run.result) {
      replace(reportEl, head, h("p", { class: "muted", role: "status" }, t("bt.running")));
      return;
    }
    const r = run.result;
    const kv = (k, v, cls) => [h("dt", null, k), h("dd", { class: cls || null }, v)];
    const chartEl = h("div", { class: "chart", role: "img", "aria-label": t("bt.chart_aria") });
    const fillsRows = (r.fills || []).map((f) => [
      { content: dateTime(f.ts) },
      { content: sideLabel(f.side) },
      { content: num(f.qty), num: true },
      { content: price(f.price), num: true },
      { content: won(f.commission), num: true },
      { content: won(f.tax), num: true },
    ]);
    // Say plainly when a result means little: too few bars, or not a single trade.
    const warnings = [];
    for (const w of r.warnings || run.warnings || []) {
      if (w.code === "backtest.too_little_data") warnings.push(t("bt.too_little_data", { n: num(w.bars) }));
      else warnings.push(speak(w.message));
    }
    if (!r.num_fills) warnings.push(t("bt.no_trades"));
    replace(reportEl, head,
      h("p", { class: "muted small" }, `${kindName(run.kind)} · ${run.symbol}`),
      r.data === "generated" ? h("p", { class: "note", dataset: { generated: "" } }, t("bt.generated_note")) : null,
      warnings.map((w) => h("p", { class: "form-error", role: "alert", dataset: { btWarning: "" } }, w)),
      h("dl", { class: "kv", dataset: { report: "" } },
        kv(t("bt.final_equity"), won(r.final_equity)),
        kv(t("bt.total_return"), ratioPct(r.total_return), dir(r.total_return)),
        kv(t("bt.cagr"), ratioPct(r.cagr), dir(r.cagr)),
        kv(t("bt.max_drawdown"), ratioPct(-Math.abs(r.max_drawdown))),
        kv(t("bt.sharpe"), r.sharpe === null || r.sharpe === undefined ? "—" : Number(r.sharpe).toFixed(2)),
        kv(t("bt.win_rate"), r.win_rate === null || r.win_rate === undefined ? "—" : ratioPct(r.win_rate).replace("+", "")),
        kv(t("bt.fills"), num(r.num_fills)),
        kv(t("bt.round_trips"), num(r.num_round_trips)),
        kv(t("bt.commission"), won(r.commission)),
        kv(t("bt.tax"), won(r.tax)),
        kv(t("bt.pnl"), signedWon(r.final_equity - (run.cash ?? r.equity_curve?.[0]?.equity ?? r.final_equity)), dir(r.total_return))),
      chartEl,
      h("h3", null, t("bt.fills_title")),
      table([t("fills.time"), t("fills.side"), { text: t("fills.qty"), num: true }, { text: t("fills.price"), num: true },
        { text: t("bt.commission"), num: true }, { text: t("bt.tax"), num: true }], fillsRows, { empty: t("bt.no_fills") }));
    equityChart(chartEl, r.equity_curve || [], r.fills || []).then((c) => {
      if (destroyed) c.destroy();
      else chart = c;
    }).catch((e) => replace(chartEl, h("p", { class: "form-error" }, e.message)));
  }

  function renderRuns() {
    replace(listEl, table(
      [t("bt.compare"), "#", t("bt.kind"), t("bt.symbol"), t("bt.status"), t("bt.created"), ""],
      runs.map((r) => [
        { content: r.status === "done" ? h("input", { type: "checkbox", checked: chosen.has(r.id), "aria-label": t("bt.compare_pick", { id: r.id }),
          onchange: (ev) => (ev.currentTarget.checked ? chosen.add(r.id) : chosen.delete(r.id)) }) : "" },
        { content: String(r.id) },
        { content: kindName(r.kind) },
        { content: h("span", { class: "mono" }, r.symbol) },
        { content: h("span", { class: `badge ${r.status === "done" ? "ok" : r.status === "error" ? "err" : "warn"}` }, t(`bt.status.${r.status}`)) },
        { content: r.created_at ? dateTime(r.created_at) : "—" },
        { content: h("button", { type: "button", class: "small", onclick: () => follow(r.id) }, t("bt.show")) },
      ]),
      { empty: t("bt.no_runs") },
    ));
  }

  // --- comparing runs side by side ---------------------------------------------------------------------
  async function compare() {
    compareChart?.destroy();
    compareChart = null;
    compareEl.classList.remove("hidden");
    const ids = [...chosen];
    if (ids.length < 2) {
      replace(compareEl, h("h2", { id: "bt-cmp-h" }, t("bt.compare_title")), h("p", { class: "form-error", role: "alert" }, t("bt.compare_hint")));
      return;
    }
    try {
      const full = await Promise.all(ids.map((id) => get(`/api/backtests/${id}`)));
      const label = (run) => `#${run.id} ${kindName(run.kind)} · ${run.symbol}`;
      const figures = [
        [t("bt.final_equity"), (r) => won(r.final_equity)],
        [t("bt.total_return"), (r) => ratioPct(r.total_return)],
        [t("bt.cagr"), (r) => ratioPct(r.cagr)],
        [t("bt.max_drawdown"), (r) => ratioPct(-Math.abs(r.max_drawdown))],
        [t("bt.sharpe"), (r) => (r.sharpe === null || r.sharpe === undefined ? "—" : Number(r.sharpe).toFixed(2))],
        [t("bt.fills"), (r) => num(r.num_fills)],
        [t("bt.commission"), (r) => won(r.commission)],
        [t("bt.tax"), (r) => won(r.tax)],
      ];
      const chartEl = h("div", { class: "chart", role: "img", "aria-label": t("bt.compare_title") });
      replace(compareEl, h("h2", { id: "bt-cmp-h" }, t("bt.compare_title")), chartEl,
        table([t("bt.figure"), ...full.map((run) => ({ text: label(run), num: true }))],
          figures.map(([name, fmt]) => [name, ...full.map((run) => ({ content: run.result ? fmt(run.result) : "—", num: true }))]),
          { caption: t("bt.compare_title") }));
      // Equity as a percentage of each run's starting cash, so different amounts compare.
      const lines = full.map((run) => {
        const curve = run.result?.equity_curve || [];
        const first = curve[0]?.equity || 1;
        return { label: label(run), points: curve.map((p) => ({ ts: p.ts, value: Math.round((p.equity / first) * 10000) / 100 })) };
      });
      compareChart = await linesChart(chartEl, lines, { height: 320, format: { type: "price", precision: 2, minMove: 0.01 } });
    } catch (e) {
      replace(compareEl, h("h2", { id: "bt-cmp-h" }, t("bt.compare_title")), h("p", { class: "form-error" }, errorText(e)));
    }
  }

  async function load() {
    try {
      // Signed in: /health says "simulated" only to a caller with a token (strangers get ok/down).
      simulated = Boolean((await get("/health").catch(() => ({}))).simulated);
      const [cat, list] = await Promise.all([get("/api/strategy-catalog"), get("/api/backtests")]);
      catalog = cat.strategies;
      runs = Array.isArray(list) ? list : list.backtests || list.runs || [];
      replace(noticeEl);
      renderForm();
      renderRuns();
      const id = params.get("id");
      if (id) follow(id);
    } catch (e) {
      replace(noticeEl, h("p", { class: "form-error", role: "alert" }, e.status === 404 ? t("strategies.unavailable") : errorText(e)));
    }
  }
  load();

  return {
    unmount() {
      destroyed = true;
      clearTimeout(pollTimer);
      chart?.destroy();
      compareChart?.destroy();
    },
    refresh: load,
  };
}
