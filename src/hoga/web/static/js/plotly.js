// plotly.js is large (several MB), so it is loaded only when a page draws a chart. It is served
// by hoga itself from the installed plotly Python package (/vendor/plotly.min.js) - no CDN.

let loading = null;

/** Resolve to window.Plotly, loading the script on first use. */
export function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (loading) return loading;
  loading = new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = "/vendor/plotly.min.js";
    script.async = true;
    script.onload = () => (window.Plotly ? resolve(window.Plotly) : reject(new Error("plotly did not load")));
    script.onerror = () => {
      loading = null;
      script.remove();
      reject(new Error("plotly could not be loaded"));
    };
    document.head.append(script);
  });
  return loading;
}

/** Colours for charts: Korean convention, rises red and falls blue. */
export const UP = "#d4212b";
export const DOWN = "#1a5ad7";

/** Layout defaults shared by the dashboard's charts. */
export function baseLayout(extra = {}) {
  return {
    margin: { l: 56, r: 16, t: 8, b: 36 },
    paper_bgcolor: "#ffffff",
    plot_bgcolor: "#ffffff",
    font: { family: 'system-ui, "Apple SD Gothic Neo", "Malgun Gothic", "NanumGothic", sans-serif', size: 12 },
    showlegend: false,
    hovermode: "x unified",
    separators: ".,",
    ...extra,
  };
}

export const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
